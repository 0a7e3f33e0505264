//! `POST /api/v1/login`: password check, lockout, disabled accounts, the
//! second factor (TOTP or a recovery code), token issue; and `POST
//! /api/v1/login/enroll`, which gives a technician who must use a second
//! factor and has none yet a new secret for their authenticator app.
//!
//! Enrollment happens at the login that needs it: the password opens
//! `enroll`, and the app's first code, sent with the next login, confirms
//! the secret and returns ten recovery codes once. Whoever knows the
//! password before the technician enrolls could enroll in their place —
//! as with every "set up at next login" scheme — so an operator who fears
//! that resets the password along with requiring the second factor. A
//! wrong code counts towards the same lockout as a wrong password.

use super::{Resp, error, error_retry, json, parse, store_error};
use crate::auth::AuthError;
use crate::config::MAX_LOGIN_FAILURES;
use crate::state::Gateway;
use crate::totp::Secret;
use http::StatusCode;
use lifeline_protocol::portal::{LoginRequest, LoginResponse, TechnicianInfo, TotpEnrollment};
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

/// The password check that login and enrollment share: the source's
/// budget, lockout, the password, disabled accounts, the group's
/// networks. On success the attempt still holds its place in the source's
/// budget; the caller gives it back once the whole login succeeds.
pub(super) async fn check_password(
    gw: &Gateway,
    req: &LoginRequest,
    peer: SocketAddr,
) -> Result<Technician, Resp> {
    let ip = peer.ip();
    // The attempt takes its place in the source's budget before anything
    // is hashed: of many parallel logins from one address, at most the
    // budget ever reach scrypt. A successful login gives it back.
    if let Err(retry) = gw.budgets.login.reserve(ip) {
        return Err(error_retry(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many failed logins from your address; wait a minute",
            Some(retry),
        ));
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
            return Err(store_error(e));
        }
    };
    let Some(tech) = tech else {
        // Spend the same time as a real check, so timing does not reveal
        // which e-mail addresses exist.
        if let Err(AuthError::Busy) = gw
            .hasher
            .verify(req.password.clone(), crate::auth::decoy_hash().to_owned())
            .await
        {
            return Err(busy());
        }
        // The store clamps the e-mail to 254 bytes: the login history is
        // not a way to write megabytes into the database.
        let _ = gw
            .store
            .record_unknown_login(&req.email, &source, now)
            .await;
        return Err(bad());
    };
    if let Some(until) = tech.locked_until_ms.filter(|u| *u > now) {
        gw.budgets.login.refund(ip);
        return Err(locked(until, now));
    }
    let ok = match gw
        .hasher
        .verify(req.password.clone(), tech.password_hash.clone())
        .await
    {
        Ok(ok) => ok,
        Err(AuthError::Busy) => return Err(busy()),
        Err(e) => {
            tracing::error!(email = %tech.email, error = %e, "password check failed");
            false
        }
    };
    if !ok {
        count_failure(gw, &tech, &source, now).await?;
        return Err(bad());
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
        return Err(error(
            StatusCode::FORBIDDEN,
            "disabled",
            "this account is disabled: ask the gateway's administrator to enable it",
        ));
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
        return Err(crate::portal::outside_networks(ip));
    }
    Ok(tech)
}

/// Counts a wrong password or code against the account: `Err` with the
/// answer when this one locked it (or the store failed).
async fn count_failure(
    gw: &Gateway,
    tech: &Technician,
    source: &str,
    now: i64,
) -> Result<(), Resp> {
    let lock_ms = gw.config.lockout.as_millis() as i64;
    match gw
        .store
        .record_login_failure(
            tech.id,
            &tech.email,
            source,
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
            Err(locked(until, now))
        }
        Ok(None) => Ok(()),
        Err(e) => Err(store_error(e)),
    }
}

/// What the second factor of a successful login was.
pub(super) enum SecondFactor {
    /// None needed.
    None,
    /// A code from the app.
    Code,
    /// A recovery code; this many are left.
    Recovery(i64),
    /// The app's first code: enrollment is confirmed, with these recovery
    /// codes (shown once).
    Enrolled(Vec<String>),
}

/// Checks the second factor of a login whose password was right.
pub(super) async fn second_factor(
    gw: &Gateway,
    tech: &Technician,
    code: Option<&str>,
    peer: SocketAddr,
    now: i64,
) -> Result<SecondFactor, Resp> {
    let tf = &tech.two_factor;
    if !tf.needed() {
        return Ok(SecondFactor::None);
    }
    let source = peer.to_string();
    let Some(code) = code.map(str::trim).filter(|c| !c.is_empty()) else {
        // Not a failure: the client asks for the code and comes back.
        gw.budgets.login.refund(peer.ip());
        return Err(if tf.enrolled() {
            error(
                StatusCode::UNAUTHORIZED,
                "code_required",
                "this account logs in with a code from its authenticator app as well",
            )
        } else {
            enroll_required()
        });
    };
    let secret = match tf.secret.as_deref() {
        None if !tf.enrolled() => return Err(enroll_required()),
        None => None,
        Some(hex) => lifeline_protocol::hex::decode_array::<20>(hex).map(Secret),
    };
    let Some(secret) = secret else {
        tracing::error!(email = %tech.email, "the stored TOTP secret is unreadable");
        return Err(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "this account's second factor is damaged: ask the gateway's administrator to reset it",
        ));
    };
    let store = |e| store_error(e);
    if tf.enrolled() {
        if code.len() == crate::totp::DIGITS as usize {
            if let Some(step) = secret.verify(code, now, tf.last_step)
                && gw
                    .store
                    .take_totp_step(tech.id, step)
                    .await
                    .map_err(store)?
            {
                return Ok(SecondFactor::Code);
            }
        } else if let Some(left) = gw
            .store
            .use_recovery_code(tech.id, &crate::totp::recovery_hash(code))
            .await
            .map_err(store)?
        {
            crate::relay::audit(
                gw,
                None,
                &tech.email,
                "recovery code used",
                &format!("from {source}; {left} left"),
            )
            .await;
            return Ok(SecondFactor::Recovery(left));
        }
    } else if let Some(step) = secret.verify(code, now, None) {
        let codes = crate::totp::recovery_codes().map_err(|_| {
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "could not create recovery codes",
            )
        })?;
        let hashes: Vec<String> = codes
            .iter()
            .map(|c| crate::totp::recovery_hash(c))
            .collect();
        let hex = lifeline_protocol::hex::encode(&secret.0);
        if gw
            .store
            .confirm_totp(tech.id, &hex, step, &hashes, now)
            .await
            .map_err(store)?
        {
            crate::relay::audit(
                gw,
                None,
                &tech.email,
                "two-factor enrolled",
                &format!("from {source}; {} recovery codes issued", codes.len()),
            )
            .await;
            return Ok(SecondFactor::Enrolled(codes));
        }
    }
    crate::relay::audit(
        gw,
        None,
        &tech.email,
        "login failed",
        &format!("wrong or reused second-factor code, from {source}"),
    )
    .await;
    count_failure(gw, tech, &source, now).await?;
    Err(error(
        StatusCode::UNAUTHORIZED,
        "bad_code",
        "wrong code, or a code already used: type the code your app shows now (each code works \
         once), or a recovery code",
    ))
}

fn enroll_required() -> Resp {
    error(
        StatusCode::UNAUTHORIZED,
        "enroll_required",
        "this account must log in with a second factor: set up an authenticator app first",
    )
}

/// `POST /api/v1/login/enroll`: the password opens a new pending secret
/// for a technician who must use a second factor and has none yet.
pub(super) async fn enroll(gw: &Gateway, body: &[u8], peer: SocketAddr) -> Resp {
    let req: LoginRequest = match parse(body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let tech = match check_password(gw, &req, peer).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    gw.budgets.login.refund(peer.ip());
    let tf = &tech.two_factor;
    if tf.enrolled() {
        return error(
            StatusCode::CONFLICT,
            "enrolled",
            "this account has a second factor already; if the phone is lost, the gateway's \
             administrator can reset it",
        );
    }
    if !tf.needed() {
        return error(
            StatusCode::CONFLICT,
            "not_required",
            "this account does not log in with a second factor",
        );
    }
    let Ok(secret) = Secret::generate() else {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "could not create a secret",
        );
    };
    let hex = lifeline_protocol::hex::encode(&secret.0);
    match gw.store.set_pending_totp(tech.id, &hex).await {
        Ok(true) => {}
        Ok(false) => {
            return error(
                StatusCode::CONFLICT,
                "enrolled",
                "this account has a second factor already",
            );
        }
        Err(e) => return store_error(e),
    }
    crate::relay::audit(
        gw,
        None,
        &tech.email,
        "two-factor enrollment started",
        &format!("from {peer}"),
    )
    .await;
    let issuer = gw.config.operator_name.as_deref().unwrap_or("Lifeline");
    json(
        StatusCode::OK,
        &TotpEnrollment {
            uri: secret.uri(issuer, &tech.email),
            secret: secret.base32(),
        },
    )
}

pub(super) async fn login(gw: &Gateway, body: &[u8], peer: SocketAddr) -> Resp {
    let req: LoginRequest = match parse(body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let tech = match check_password(gw, &req, peer).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let now = lifeline_protocol::time::now_ms();
    // Before the second factor, so that no code is spent on a login that
    // cannot finish: the change (`/api/v1/password`) takes the code.
    if let Some(days) = crate::passwords::expired(&tech, now) {
        gw.budgets.login.refund(peer.ip());
        crate::relay::audit(
            gw,
            None,
            &tech.email,
            "login refused",
            &format!(
                "the password is older than group {} allows; from {peer}",
                tech.group
            ),
        )
        .await;
        return error(
            StatusCode::FORBIDDEN,
            "password_expired",
            &format!(
                "your password is older than your group allows ({days} days): choose a new one"
            ),
        );
    }
    let second = match second_factor(gw, &tech, req.code.as_deref(), peer, now).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    finish(gw, tech, second, peer, now, "").await
}

/// Ends a successful login: the source's budget back, the success
/// recorded, a new token.
pub(super) async fn finish(
    gw: &Gateway,
    tech: Technician,
    second: SecondFactor,
    peer: SocketAddr,
    now: i64,
    what_else: &str,
) -> Resp {
    let source = peer.to_string();
    gw.budgets.login.refund(peer.ip());
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
    let how = match &second {
        SecondFactor::None => "",
        SecondFactor::Code => " with a code",
        SecondFactor::Recovery(_) => " with a recovery code",
        SecondFactor::Enrolled(_) => " with a new second factor",
    };
    crate::relay::audit(
        gw,
        None,
        &tech.email,
        "login",
        &format!("from {source}{how}{what_else}"),
    )
    .await;
    let (recovery_codes, recovery_codes_left) = match second {
        SecondFactor::Enrolled(codes) => (codes, None),
        SecondFactor::Recovery(left) => (Vec::new(), Some(left)),
        SecondFactor::None | SecondFactor::Code => (Vec::new(), None),
    };
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
            recovery_codes,
            recovery_codes_left,
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
