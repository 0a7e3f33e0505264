//! `POST /api/v1/password`: a technician changes their own password —
//! when their group's maximum age has run out (login answers
//! `password_expired`), or whenever they like. It takes the whole login
//! (password, and the second factor where the account has one), judges
//! the new password against the group's policy, refuses the current one
//! again, ends every earlier login and answers with a new one.

use super::login::{check_password, finish, second_factor};
use super::{Resp, error, parse, store_error};
use crate::auth::AuthError;
use crate::state::Gateway;
use http::StatusCode;
use lifeline_protocol::portal::PasswordChange;
use std::net::SocketAddr;

/// Why a new password was not taken.
enum Refusal {
    Policy(String),
    Same,
    Busy,
    Internal,
}

pub(super) async fn change(gw: &Gateway, body: &[u8], peer: SocketAddr) -> Resp {
    let req: PasswordChange = match parse(body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let tech = match check_password(gw, &req.login, peer).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let now = lifeline_protocol::time::now_ms();
    let second = match second_factor(gw, &tech, req.login.code.as_deref(), peer, now).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    // Judged and hashed under the hasher's bounds, off the runtime.
    let policy = tech.password_policy;
    let current = tech.password_hash.clone();
    let inputs = [tech.email.clone(), tech.name.clone(), tech.group.clone()];
    let new = req.new_password;
    let judged = gw
        .hasher
        .run(move || {
            let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
            if let Err(why) = crate::passwords::judge(&policy, &new, &inputs) {
                return Ok(Err(Refusal::Policy(why)));
            }
            if crate::auth::verify_password(&new, &current)? {
                return Ok(Err(Refusal::Same));
            }
            Ok(Ok(crate::auth::hash_password(&new)?))
        })
        .await;
    let hash = match judged {
        Ok(Ok(hash)) => hash,
        Ok(Err(refusal)) => return refused(gw, &tech.email, refusal, peer).await,
        Err(AuthError::Busy) => return refused(gw, &tech.email, Refusal::Busy, peer).await,
        Err(e) => {
            tracing::error!(email = %tech.email, error = %e, "hashing a new password failed");
            return refused(gw, &tech.email, Refusal::Internal, peer).await;
        }
    };
    let ended = match gw.store.reset_password(tech.id, &hash, now).await {
        Ok(n) => n,
        Err(e) => return store_error(e),
    };
    crate::relay::audit(
        gw,
        None,
        &tech.email,
        "password changed",
        &format!("by the technician, from {peer}; {ended} earlier logins ended"),
    )
    .await;
    finish(gw, tech, second, peer, now, ", after changing the password").await
}

async fn refused(gw: &Gateway, email: &str, why: Refusal, peer: SocketAddr) -> Resp {
    // The password and code were right: the attempt gives its place in
    // the source's budget back whatever the new password's fate.
    gw.budgets.login.refund(peer.ip());
    let (status, code, message) = match why {
        Refusal::Policy(m) => (StatusCode::UNPROCESSABLE_ENTITY, "weak_password", m),
        Refusal::Same => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "same_password",
            "the new password is the current one: choose another".to_owned(),
        ),
        Refusal::Busy => (
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "the gateway is checking many logins right now; try again in a second".to_owned(),
        ),
        Refusal::Internal => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "could not store the new password".to_owned(),
        ),
    };
    if matches!(code, "weak_password" | "same_password") {
        crate::relay::audit(
            gw,
            None,
            email,
            "password change refused",
            &format!("{code}, from {peer}"),
        )
        .await;
    }
    error(status, code, &message)
}
