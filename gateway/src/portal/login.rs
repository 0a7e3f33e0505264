//! `POST /api/v1/login`: password check, lockout, disabled accounts, token
//! issue.

use super::{Resp, error, error_retry, json, parse, store_error};
use crate::auth::AuthError;
use crate::config::MAX_LOGIN_FAILURES;
use crate::state::Gateway;
use http::StatusCode;
use lifeline_protocol::portal::{LoginRequest, LoginResponse, TechnicianInfo};
use lifeline_store::Technician;
use std::net::SocketAddr;

fn locked(until_ms: i64, now: i64) -> Resp {
    let secs = ((until_ms - now).max(0) as u64).div_ceil(1000);
    error_retry(
        StatusCode::FORBIDDEN,
        "locked",
        &format!(
            "too many failed logins: this account is locked until {} ({secs} s)",
            lifeline_protocol::time::rfc3339(until_ms)
        ),
        Some(secs),
    )
}

pub(super) async fn login(gw: &Gateway, body: &[u8], peer: SocketAddr) -> Resp {
    let ip = peer.ip();
    let req: LoginRequest = match parse(body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    // The attempt takes its place in the source's budget before anything
    // is hashed: of many parallel logins from one address, at most the
    // budget ever reach scrypt. A successful login gives it back.
    if let Err(retry) = gw.budgets.login.reserve(ip) {
        return error_retry(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many failed logins from your address; wait a minute",
            Some(retry),
        );
    }
    let busy = || {
        gw.budgets.login.refund(ip);
        error_retry(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "the gateway is checking many logins right now; try again in a second",
            Some(1),
        )
    };
    let bad = || {
        error(
            StatusCode::UNAUTHORIZED,
            "bad_credentials",
            "wrong e-mail or password",
        )
    };
    let now = lifeline_protocol::time::now_ms();
    let source = peer.to_string();
    let tech = match gw.store.technician_by_email(&req.email).await {
        Ok(t) => t,
        Err(e) => {
            gw.budgets.login.refund(ip);
            return store_error(e);
        }
    };
    let Some(tech) = tech else {
        // Spend the same time as a real check, so timing does not reveal
        // which e-mail addresses exist.
        if let Err(AuthError::Busy) = gw
            .hasher
            .verify(req.password, crate::auth::decoy_hash().to_owned())
            .await
        {
            return busy();
        }
        // The store clamps the e-mail to 254 bytes: the login history is
        // not a way to write megabytes into the database.
        let _ = gw
            .store
            .record_unknown_login(&req.email, &source, now)
            .await;
        return bad();
    };
    if let Some(until) = tech.locked_until_ms.filter(|u| *u > now) {
        gw.budgets.login.refund(ip);
        return locked(until, now);
    }
    let ok = match gw
        .hasher
        .verify(req.password, tech.password_hash.clone())
        .await
    {
        Ok(ok) => ok,
        Err(AuthError::Busy) => return busy(),
        Err(e) => {
            tracing::error!(email = %tech.email, error = %e, "password check failed");
            false
        }
    };
    if !ok {
        let lock_ms = gw.config.lockout.as_millis() as i64;
        return match gw
            .store
            .record_login_failure(
                tech.id,
                &tech.email,
                &source,
                now,
                MAX_LOGIN_FAILURES,
                lock_ms,
            )
            .await
        {
            Ok(Some(until)) => {
                crate::relay::audit(
                    gw,
                    None,
                    &tech.email,
                    "account locked",
                    &format!("{MAX_LOGIN_FAILURES} failed logins, last from {source}"),
                )
                .await;
                locked(until, now)
            }
            Ok(None) => bad(),
            Err(e) => store_error(e),
        };
    }
    if tech.disabled_at_ms.is_some() {
        // Said only to someone who knows the password: a wrong one above
        // got "wrong e-mail or password" and counted towards the lockout,
        // exactly as for an enabled account, after the same scrypt work —
        // so nobody without the password learns that the account exists,
        // let alone that it is disabled. The attempt keeps its place in
        // the source's budget (a refusal), and touches no failure count.
        let _ = gw
            .store
            .record_login_refused(&tech.email, &source, now)
            .await;
        crate::relay::audit(
            gw,
            None,
            &tech.email,
            "login refused",
            &format!("the account is disabled; from {source}"),
        )
        .await;
        return error(
            StatusCode::FORBIDDEN,
            "disabled",
            "this account is disabled: ask the gateway's administrator to enable it",
        );
    }
    // The group's networks: said, like "disabled", only to someone who
    // knows the password.
    if !crate::networks::allows(tech.networks.as_deref(), ip) {
        crate::relay::audit(
            gw,
            None,
            &tech.email,
            "login refused",
            &format!(
                "from {source}, outside the networks of group {}",
                tech.group
            ),
        )
        .await;
        return crate::portal::outside_networks(ip);
    }
    gw.budgets.login.refund(ip);
    if let Err(e) = gw
        .store
        .record_login_success(tech.id, &tech.email, &source, now)
        .await
    {
        return store_error(e);
    }
    let Ok((token, hash)) = crate::auth::new_token() else {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "could not create a token",
        );
    };
    let expires_at_ms = now + gw.config.token_ttl.as_millis() as i64;
    if let Err(e) = gw
        .store
        .insert_token(&hash, tech.id, now, expires_at_ms)
        .await
    {
        return store_error(e);
    }
    crate::relay::audit(gw, None, &tech.email, "login", &format!("from {source}")).await;
    json(
        StatusCode::OK,
        &LoginResponse {
            token,
            expires_at_ms,
            technician: TechnicianInfo {
                email: tech.email,
                name: tech.name,
                group: tech.group,
            },
        },
    )
}

/// `POST /api/v1/logout`: the presented token stops working at once.
pub(super) async fn logout(gw: &Gateway, tech: &Technician, token: &str) -> Resp {
    match gw.store.delete_token(&crate::auth::token_hash(token)).await {
        Ok(_) => {
            crate::relay::audit(gw, None, &tech.email, "logout", "token revoked").await;
            json(StatusCode::OK, &serde_json::json!({"logged_out": true}))
        }
        Err(e) => store_error(e),
    }
}
