//! A channel's page on the end user's web page: `GET /c/TOKEN` offers the
//! support program (asking for a name and the problem if the channel
//! does); `POST /c/TOKEN` creates a session in the channel's group queue
//! and answers with its personalized applet, whose end user then waits
//! for the next free technician of the group.
//!
//! Each visit creates a session, so visits are budgeted per source
//! ([`crate::limits::CHANNEL_VISITS`] per ten minutes) whether they
//! succeed or not, unlike the budgets of wrong guesses.

use super::web::{self, Form, Refusal, Refused};
use super::{Resp, store_error};
use crate::state::Gateway;
use http::{HeaderMap, StatusCode};
use lifeline_protocol::SessionGuid;
use lifeline_store::{Channel, NewChannelSession};
use std::net::SocketAddr;
use std::time::Instant;

/// Longest name an end user may give (bytes; the page allows 60 characters).
const MAX_NAME: usize = 240;
/// Longest problem description (bytes; the page allows 300 characters).
const MAX_PROBLEM: usize = 1200;

async fn channel(gw: &Gateway, token: &str) -> Result<Option<Channel>, Resp> {
    if !web::token_ok(token) {
        return Ok(None);
    }
    gw.store.channel_by_token(token).await.map_err(store_error)
}

/// `GET /c/TOKEN`: the channel's page.
pub(super) async fn page(gw: &Gateway, headers: &HeaderMap, token: &str, peer: SocketAddr) -> Resp {
    let started = Instant::now();
    let ch = match channel(gw, token).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let Some(ch) = ch else {
        return web::refuse(gw, headers, Refused::DeadChannel, Form::None, peer, started).await;
    };
    let w = web::words(headers);
    let form = Form::Channel {
        token,
        ask_details: ch.ask_details,
        name: "",
        problem: "",
    };
    let html = web::render(gw, w, headers, None, form).await;
    web::respond(gw, StatusCode::OK, "text/html; charset=utf-8", html)
}

/// The form's fields, decoded: platform, name, problem.
fn fields(body: &[u8]) -> (String, String, String) {
    let (mut platform, mut name, mut problem) = (String::new(), String::new(), String::new());
    for (k, v) in form_urlencoded::parse(body) {
        match &*k {
            "platform" => platform = v.into_owned(),
            "name" => name = v.into_owned(),
            "problem" => problem = v.into_owned(),
            _ => {}
        }
    }
    (platform, name, problem)
}

/// What an end user typed, made fit for a technician's screen: one line,
/// no invisible or control characters.
fn tidy(s: &str) -> String {
    let one_line = s.split_whitespace().collect::<Vec<_>>().join(" ");
    lifeline_protocol::text::neutralize(&one_line).into_owned()
}

/// `POST /c/TOKEN`: a new session in the channel's queue, and its applet.
pub(super) async fn visit(
    gw: &Gateway,
    headers: &HeaderMap,
    token: &str,
    body: &[u8],
    peer: SocketAddr,
) -> Resp {
    let started = Instant::now();
    let (platform, name, problem) = fields(body);
    let (name, problem) = (tidy(&name), tidy(&problem));
    let ch = match channel(gw, token).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let form = Form::Channel {
        token,
        ask_details: ch.as_ref().is_some_and(|c| c.ask_details),
        name: &name,
        problem: &problem,
    };
    match create(gw, ch, &platform, &name, &problem, peer, headers).await {
        Ok(file) => file,
        Err(Err(resp)) => resp,
        Err(Ok(why)) => web::refuse(gw, headers, why, form, peer, started).await,
    }
}

async fn create(
    gw: &Gateway,
    ch: Option<Channel>,
    platform: &str,
    name: &str,
    problem: &str,
    peer: SocketAddr,
    headers: &HeaderMap,
) -> Result<Resp, Refusal> {
    if gw.budgets.channel_visits.reserve(peer.ip()).is_err() {
        return Err(Ok(Refused::TooMany));
    }
    let Some(ch) = ch else {
        return Err(Ok(Refused::DeadChannel));
    };
    // A channel that does not ask keeps nothing the end user might send.
    let (name, problem) = if ch.ask_details {
        (name, problem)
    } else {
        ("", "")
    };
    if name.len() > MAX_NAME || problem.len() > MAX_PROBLEM {
        return Err(Ok(Refused::TooLong));
    }
    let platform = if platform.is_empty() {
        web::platform("", headers)
    } else {
        platform.to_owned()
    };
    let Ok(stock) = crate::personalize::stock_applet(&gw.config, &platform).await else {
        return Err(Ok(Refused::NoProgram));
    };
    let rng = ring::rand::SystemRandom::new();
    let mut applet_secret = [0u8; 32];
    let (Ok(guid), Ok(())) = (
        SessionGuid::random(&rng),
        ring::rand::SecureRandom::fill(&rng, &mut applet_secret),
    ) else {
        return Err(Err(super::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "no randomness",
        )));
    };
    let now = lifeline_protocol::time::now_ms();
    let ttl_ms = i64::try_from(gw.config.session_ttl.as_millis()).unwrap_or(i64::MAX);
    let created = gw
        .store
        .create_channel_session(NewChannelSession {
            guid,
            channel_token: ch.token.clone(),
            name: name.to_owned(),
            problem: problem.to_owned(),
            applet_secret,
            admission_key: lifeline_protocol::proof::admission_public_key(&applet_secret),
            created_at_ms: now,
            expires_at_ms: now.saturating_add(ttl_ms),
        })
        .await;
    let rec = match created {
        Ok(r) => r,
        Err(lifeline_store::StoreError::NotFound(_)) => return Err(Ok(Refused::DeadChannel)),
        Err(e) => return Err(Err(store_error(e))),
    };
    crate::relay::audit(
        gw,
        Some(&guid),
        "web page",
        "created",
        &format!(
            "through channel {} from {}, for group {}'s queue{}",
            ch.name,
            peer.ip(),
            ch.group,
            if name.is_empty() {
                String::new()
            } else {
                format!(", name {name:?}")
            }
        ),
    )
    .await;
    let nodes = gw
        .directory_nodes()
        .await
        .map_err(|e| Err(store_error(e)))?;
    let how = format!("through channel {}", ch.name);
    Ok(web::send_applet(
        gw,
        &rec,
        applet_secret,
        &nodes,
        &platform,
        stock,
        &how,
        peer.ip(),
    )
    .await)
}
