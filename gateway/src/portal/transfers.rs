//! Handing a running session to another technician of the holder's group:
//! `POST /api/v1/sessions/{guid}/transfer` (the holder offers, or
//! withdraws), `…/accept` (the technician offered it takes it with a fresh
//! console key and receives the applet secret), `…/handed-over` (the
//! holder's console has told the applet the new key inside the end-to-end
//! channel: the session becomes the new technician's).
//!
//! The gateway never vouches for the new key to the applet: only the
//! console the applet already trusts introduces it (see ARCHITECTURE.md).

use super::sessions::{guid_of, info};
use super::{Resp, error, json, parse, store_error};
use crate::state::Gateway;
use http::StatusCode;
use lifeline_protocol::hex;
use lifeline_protocol::portal::{AcceptTransfer, OfferTransfer, PickedSession};
use lifeline_store::{Technician, Transfer};

/// `POST …/transfer`: offers the holder's running session to a technician
/// of the same group (by e-mail), or withdraws the offer (`to` absent).
pub(super) async fn offer(gw: &Gateway, tech: &Technician, guid: &str, body: &[u8]) -> Resp {
    let guid = match guid_of(guid) {
        Ok(g) => g,
        Err(r) => return r,
    };
    let req: OfferTransfer = match parse(body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let secret = match req.check() {
        Ok(s) => s,
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad_request", &e.0),
    };
    let to = match (&req.to, secret) {
        (Some(email), Some(secret)) => {
            let email = email.trim().to_lowercase();
            let to = match gw.store.technician_by_email(&email).await {
                Ok(t) => t,
                Err(e) => return store_error(e),
            };
            // One answer for "no such technician" and "not in your group":
            // the list of another group's people is not the caller's.
            let Some(to) = to.filter(|t| t.group_id == tech.group_id && t.id != tech.id) else {
                return error(
                    StatusCode::NOT_FOUND,
                    "no_such_technician",
                    &format!("there is no other technician {email:?} in your group"),
                );
            };
            if to.disabled_at_ms.is_some() {
                return error(
                    StatusCode::CONFLICT,
                    "disabled",
                    &format!("{email} is disabled and cannot take sessions"),
                );
            }
            Some((to, secret))
        }
        _ => None,
    };
    let outcome = gw
        .store
        .offer_transfer(&guid, tech.id, to.as_ref().map(|(t, s)| (t.id, *s)))
        .await;
    match outcome {
        Ok(Transfer::Done(r)) => {
            let what = match &to {
                Some((t, _)) => format!("offered to {}", t.email),
                None => "offer withdrawn".into(),
            };
            crate::relay::audit(gw, Some(&guid), &tech.email, "transfer", &what).await;
            json(StatusCode::OK, &info(&r))
        }
        Ok(Transfer::NotYours) => not_running(),
        Err(e) => store_error(e),
    }
}

fn not_running() -> Resp {
    error(
        StatusCode::CONFLICT,
        "not_running",
        "only a session of yours that is connected right now can be handed over",
    )
}

/// `POST …/accept`: the technician offered the session takes it with their
/// new console key; the answer carries the applet secret (erased here).
pub(super) async fn accept(gw: &Gateway, tech: &Technician, guid: &str, body: &[u8]) -> Resp {
    let guid = match guid_of(guid) {
        Ok(g) => g,
        Err(r) => return r,
    };
    let req: AcceptTransfer = match parse(body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let pin = match req.check() {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad_request", &e.0),
    };
    let record = match gw.store.accept_transfer(&guid, tech.id, &pin).await {
        Ok(Transfer::Done(r)) => r,
        Ok(Transfer::NotYours) => {
            return error(
                StatusCode::NOT_FOUND,
                "not_offered",
                "this session is not (or no longer) offered to you",
            );
        }
        Err(e) => return store_error(e),
    };
    let secret = match gw.store.take_applet_secret(&guid).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            return error(
                StatusCode::CONFLICT,
                "already_accepted",
                "this offer was already accepted by a console of yours; ask for it again",
            );
        }
        Err(e) => return store_error(e),
    };
    let from = record.technician_email.as_deref().unwrap_or("?");
    crate::relay::audit(
        gw,
        Some(&guid),
        &tech.email,
        "transfer",
        &format!("accepted from {from}"),
    )
    .await;
    json(
        StatusCode::OK,
        &PickedSession {
            session: info(&record),
            applet_secret: hex::encode(&secret),
        },
    )
}

/// `POST …/handed-over`: the holder's console has handed the session to
/// the accepting console; it is theirs from now on.
pub(super) async fn handed_over(gw: &Gateway, tech: &Technician, guid: &str) -> Resp {
    let guid = match guid_of(guid) {
        Ok(g) => g,
        Err(r) => return r,
    };
    match gw.store.complete_transfer(&guid, tech.id).await {
        Ok(Transfer::Done(r)) => {
            let to = r.technician_email.as_deref().unwrap_or("?");
            crate::relay::audit(
                gw,
                Some(&guid),
                &tech.email,
                "transfer",
                &format!("handed over to {to}"),
            )
            .await;
            json(StatusCode::OK, &info(&r))
        }
        Ok(Transfer::NotYours) => error(
            StatusCode::CONFLICT,
            "not_accepted",
            "this session is not yours, or its offer has not been accepted",
        ),
        Err(e) => store_error(e),
    }
}
