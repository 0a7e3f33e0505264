//! The end user's web page on the gateway's own port: `GET /` is a form
//! for the 6-digit PIN their technician reads to them
//! (`tech-console session new --pin`); `POST /` with a live PIN answers
//! with the session's personalized applet — the same one-time download,
//! and the same audit record, as the console's.
//!
//! No JavaScript, no inline style (the page's CSP forbids both), one
//! stylesheet; labels, a described input, an alert for errors, large
//! targets, usable on a phone. English, German or Dutch by the browser's
//! `Accept-Language`.
//!
//! Guessing: PINs are random, so a guesser is bounded by budgets of wrong
//! PINs, per source ([`crate::limits::PIN_PER_SOURCE`] a minute) and for
//! the node ([`crate::limits::PIN_GLOBAL`]); every wrong PIN is audited and
//! counted, and every refusal takes the same time ([`REFUSAL_TIME`]) and
//! says nothing about which part failed.

use super::web_text::{self, Words};
use super::{Resp, store_error};
use crate::state::Gateway;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use http_body_util::Full;
use lifeline_protocol::hex;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

/// Every refused PIN is answered this long after it arrived, whatever the
/// reason: the answer's timing says nothing about the store's work.
pub const REFUSAL_TIME: Duration = Duration::from_millis(300);

/// The key of the node-wide PIN budget.
const EVERYONE: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

const STYLE: &str = include_str!("web.css");

/// The page's security headers: nothing but this origin's stylesheet and
/// form, never framed, no referrer, not cached; HSTS once the operator
/// gave a browser-trusted certificate.
fn secure(r: &mut Response<Full<Bytes>>, gw: &Gateway) {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; \
             base-uri 'none'",
        ),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if gw.config.web_cert.is_some() {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
}

pub(super) fn respond(
    gw: &Gateway,
    status: StatusCode,
    content_type: &'static str,
    body: Vec<u8>,
) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    secure(&mut r, gw);
    r
}

/// `GET /style.css`.
pub(super) fn style(gw: &Gateway) -> Resp {
    respond(
        gw,
        StatusCode::OK,
        "text/css; charset=utf-8",
        STYLE.as_bytes().to_vec(),
    )
}

/// `GET /`: the PIN form.
pub(super) async fn page(gw: &Gateway, headers: &HeaderMap) -> Resp {
    let words = words(headers);
    let html = render(gw, words, headers, None, Form::Pin).await;
    respond(gw, StatusCode::OK, "text/html; charset=utf-8", html)
}

pub(super) fn words(headers: &HeaderMap) -> &'static Words {
    web_text::for_accept_language(
        headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
    )
}

/// The platforms this node has a stock applet for, in the page's order.
async fn offered(gw: &Gateway, words: &Words) -> Vec<(String, String)> {
    let mut ids: Vec<String> = gw.config.applets.iter().map(|(p, _)| p.clone()).collect();
    let own = crate::config::this_platform();
    if !ids.contains(&own) {
        ids.push(own);
    }
    let mut out = Vec::new();
    for (id, name) in words.platforms {
        if ids.iter().any(|i| i == id) {
            out.push((id.to_string(), name.to_string()));
        }
    }
    for id in ids {
        if !out.iter().any(|(i, _)| *i == id) {
            out.push((id.clone(), id));
        }
    }
    let mut available = Vec::new();
    for (id, name) in out {
        let there = match crate::personalize::stock_path(&gw.config, &id) {
            Some(p) => tokio::fs::metadata(&p).await.is_ok_and(|m| m.is_file()),
            None => false,
        };
        if there {
            available.push((id, name));
        }
    }
    available
}

/// Text made safe inside HTML (the page holds only its own words, but the
/// platform names come from the operator's configuration).
pub(super) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Which form the page holds.
#[derive(Debug, Clone, Copy)]
pub(super) enum Form<'a> {
    /// The PIN form (`/`).
    Pin,
    /// A one-time link's download button (`/s/TOKEN`).
    Link(&'a str),
    /// A channel's download button (`/c/TOKEN`), with the end user's name
    /// and problem when the channel asks for them (as typed, when the page
    /// comes back with a problem).
    Channel {
        token: &'a str,
        ask_details: bool,
        name: &'a str,
        problem: &'a str,
    },
    /// Nothing to offer: a link that no longer works.
    None,
}

pub(super) async fn render(
    gw: &Gateway,
    w: &Words,
    headers: &HeaderMap,
    problem: Option<&str>,
    form: Form<'_>,
) -> Vec<u8> {
    let platforms = offered(gw, w).await;
    let guess = web_text::platform_of(
        headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok()),
    );
    let chosen = guess
        .filter(|g| platforms.iter().any(|(id, _)| id == g))
        .map(str::to_owned)
        .or_else(|| platforms.first().map(|(id, _)| id.clone()));
    let options: String = platforms
        .iter()
        .map(|(id, name)| {
            let selected = if Some(id) == chosen.as_ref() {
                " selected"
            } else {
                ""
            };
            format!(
                "<option value=\"{}\"{selected}>{}</option>",
                escape(id),
                escape(name)
            )
        })
        .collect();
    let problem = problem.or((platforms.is_empty()).then_some(w.no_program));
    let (alert, described) = match problem {
        Some(p) => (
            format!(
                "<p class=\"error\" role=\"alert\" id=\"problem\">{}</p>",
                escape(p)
            ),
            "pin-hint problem",
        ),
        None => (String::new(), "pin-hint"),
    };
    let steps: String = w
        .steps
        .iter()
        .map(|s| format!("<li>{}</li>", escape(s)))
        .collect();
    let platform = format!(
        "<label for=\"platform\">{}</label>\n<select id=\"platform\" name=\"platform\">{options}</select>\n\
         <button type=\"submit\">{}</button>\n",
        escape(w.platform_label),
        escape(w.download)
    );
    let (intro, form) = match form {
        Form::Pin => (
            w.intro,
            format!(
                "<form method=\"post\" action=\"/\">\n\
                 <label for=\"pin\">{pin_label}</label>\n\
                 <input id=\"pin\" name=\"pin\" type=\"text\" inputmode=\"numeric\" \
                 autocomplete=\"one-time-code\" pattern=\"[0-9]{{6}}\" minlength=\"6\" maxlength=\"6\" \
                 required aria-describedby=\"{described}\">\n\
                 <p class=\"hint\" id=\"pin-hint\">{pin_hint}</p>\n{platform}</form>\n",
                pin_label = escape(w.pin_label),
                pin_hint = escape(w.pin_hint),
            ),
        ),
        // The token is checked to be hex before a page holds it.
        Form::Link(token) => (
            w.link_intro,
            format!("<form method=\"post\" action=\"/s/{token}\">\n{platform}</form>\n"),
        ),
        Form::Channel {
            token,
            ask_details,
            name,
            problem,
        } => {
            let details = if ask_details {
                format!(
                    "<label for=\"name\">{name_label} <span class=\"hint\">{optional}</span></label>\n\
                     <input id=\"name\" name=\"name\" type=\"text\" autocomplete=\"name\" \
                     maxlength=\"60\" value=\"{name}\">\n\
                     <label for=\"problem\">{problem_label} <span class=\"hint\">{optional}</span></label>\n\
                     <textarea id=\"problem\" name=\"problem\" rows=\"3\" maxlength=\"300\">{problem}</textarea>\n",
                    name_label = escape(w.name_label),
                    problem_label = escape(w.problem_label),
                    optional = escape(w.optional),
                    name = escape(name),
                    problem = escape(problem),
                )
            } else {
                String::new()
            };
            (
                w.channel_intro,
                format!(
                    "<form method=\"post\" action=\"/c/{token}\">\n{details}{platform}</form>\n"
                ),
            )
        }
        Form::None => ("", String::new()),
    };
    let intro = if intro.is_empty() {
        String::new()
    } else {
        format!("<p>{}</p>\n", escape(intro))
    };
    format!(
        "<!DOCTYPE html>\n<html lang=\"{lang}\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n<link rel=\"stylesheet\" href=\"/style.css\">\n</head>\n\
         <body>\n<main>\n<h1>{heading}</h1>\n{intro}{alert}\n{form}\
         <h2>{then}</h2>\n<ol>{steps}</ol>\n</main>\n</body>\n</html>\n",
        lang = w.lang,
        title = escape(w.title),
        heading = escape(w.heading),
        then = escape(w.then),
    )
    .into_bytes()
}

/// A form field's value (`application/x-www-form-urlencoded`): only what a
/// PIN or a platform name can hold is accepted, so nothing needs decoding
/// beyond that.
fn field<'a>(body: &'a str, name: &str) -> Option<&'a str> {
    body.split('&')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
        .filter(|v| {
            v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Why a PIN, link or channel visit was not taken.
#[derive(Debug, Clone, Copy)]
pub(super) enum Refused {
    NotAPin,
    Wrong,
    DeadLink,
    DeadChannel,
    TooLong,
    TooMany,
    Busy,
    NoProgram,
}

/// A refusal: the page again with what went wrong, counted, audited if
/// it was a guess, and answered [`REFUSAL_TIME`] after the request came.
pub(super) async fn refuse(
    gw: &Gateway,
    headers: &HeaderMap,
    why: Refused,
    form: Form<'_>,
    peer: SocketAddr,
    started: Instant,
) -> Resp {
    let w = words(headers);
    let (status, words, result) = match why {
        Refused::NotAPin => (StatusCode::BAD_REQUEST, w.not_a_pin, "bad_request"),
        Refused::Wrong => (StatusCode::BAD_REQUEST, w.wrong_pin, "wrong"),
        Refused::DeadLink => (StatusCode::NOT_FOUND, w.dead_link, "dead_link"),
        Refused::DeadChannel => (StatusCode::NOT_FOUND, w.dead_channel, "dead_channel"),
        Refused::TooLong => (StatusCode::BAD_REQUEST, w.too_long, "bad_request"),
        Refused::TooMany => (StatusCode::TOO_MANY_REQUESTS, w.too_many, "rate_limited"),
        Refused::Busy => (StatusCode::SERVICE_UNAVAILABLE, w.busy, "busy"),
        Refused::NoProgram => (StatusCode::SERVICE_UNAVAILABLE, w.no_program, "no_applet"),
    };
    gw.metrics.pin_attempt(result);
    match why {
        Refused::Wrong => {
            crate::relay::audit(gw, None, "web page", "PIN refused", &format!("from {peer}")).await;
        }
        Refused::DeadLink => {
            crate::relay::audit(
                gw,
                None,
                "web page",
                "link refused",
                &format!("from {peer}"),
            )
            .await;
        }
        _ => {}
    }
    let form = if matches!(why, Refused::DeadLink | Refused::DeadChannel) {
        Form::None
    } else {
        form
    };
    let html = render(gw, w, headers, Some(words), form).await;
    tokio::time::sleep(REFUSAL_TIME.saturating_sub(started.elapsed())).await;
    respond(gw, status, "text/html; charset=utf-8", html)
}

/// `POST /`: a PIN (and the platform): the applet, or the page again with
/// what went wrong.
pub(super) async fn pin(gw: &Gateway, headers: &HeaderMap, body: &[u8], peer: SocketAddr) -> Resp {
    let started = Instant::now();
    let form = std::str::from_utf8(body).unwrap_or("");
    match take_pin(gw, form, peer, headers).await {
        Ok(file) => file,
        Err(Err(resp)) => resp,
        Err(Ok(why)) => refuse(gw, headers, why, Form::Pin, peer, started).await,
    }
}

/// What a refused download is: one the page explains, or a store failure.
pub(super) type Refusal = Result<Refused, Resp>;

/// Takes one attempt from the source's and the node's budgets of
/// guesses; [`give_back`] returns them when the guess was right.
fn spend(gw: &Gateway, ip: IpAddr) -> Result<(), Refused> {
    if gw.budgets.pin.reserve(ip).is_err() {
        return Err(Refused::TooMany);
    }
    if gw.budgets.pin_global.reserve(EVERYONE).is_err() {
        gw.budgets.pin.refund(ip);
        return Err(Refused::Busy);
    }
    Ok(())
}

fn give_back(gw: &Gateway, ip: IpAddr) {
    gw.budgets.pin.refund(ip);
    gw.budgets.pin_global.refund(EVERYONE);
}

/// The platform a form asks for, else the browser's, else the gateway's.
pub(super) fn platform(form: &str, headers: &HeaderMap) -> String {
    field(form, "platform")
        .map(str::to_owned)
        .or_else(|| {
            web_text::platform_of(
                headers
                    .get(header::USER_AGENT)
                    .and_then(|v| v.to_str().ok()),
            )
            .map(str::to_owned)
        })
        .unwrap_or_else(crate::config::this_platform)
}

async fn take_pin(
    gw: &Gateway,
    form: &str,
    peer: SocketAddr,
    headers: &HeaderMap,
) -> Result<Resp, Refusal> {
    let Some(pin) = field(form, "pin")
        .map(str::trim)
        .filter(|p| p.len() == 6 && p.bytes().all(|b| b.is_ascii_digit()))
    else {
        return Err(Ok(Refused::NotAPin));
    };
    redeem(gw, Key::Pin(pin), form, peer.ip(), headers).await
}

/// What an end user presents for a download.
#[derive(Debug, Clone, Copy)]
enum Key<'a> {
    Pin(&'a str),
    Link(&'a str),
}

/// The download a PIN or link is for, once: both budgets are taken
/// before the store is asked (a right key gives them back), and the stock
/// applet is read before the key is used (a missing applet does not burn
/// it).
async fn redeem(
    gw: &Gateway,
    key: Key<'_>,
    form: &str,
    ip: IpAddr,
    headers: &HeaderMap,
) -> Result<Resp, Refusal> {
    spend(gw, ip).map_err(Ok)?;
    let (wrong, how) = match key {
        Key::Pin(_) => (Refused::Wrong, "with the PIN"),
        Key::Link(_) => (Refused::DeadLink, "with the link"),
    };
    if let Key::Link(token) = key
        && !token_ok(token)
    {
        return Err(Ok(wrong));
    }
    let platform = platform(form, headers);
    let Ok(stock) = crate::personalize::stock_applet(&gw.config, &platform).await else {
        give_back(gw, ip);
        return Err(Ok(Refused::NoProgram));
    };
    let now = lifeline_protocol::time::now_ms();
    let taken = match key {
        Key::Pin(pin) => gw.store.take_session_pin(pin, now).await,
        Key::Link(token) => {
            let hash = super::sessions::link_hash(token);
            gw.store.take_session_link(&hash, now).await
        }
    };
    let guid = match taken {
        Ok(Some(g)) => g,
        Ok(None) => return Err(Ok(wrong)),
        Err(e) => {
            give_back(gw, ip);
            return Err(Err(store_error(e)));
        }
    };
    give_back(gw, ip);
    deliver(gw, guid, &platform, stock, how, ip, wrong).await
}

/// A link's token as it may appear in a path: 32 hex digits.
pub(super) fn token_ok(token: &str) -> bool {
    token.len() == 32 && token.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `GET /s/TOKEN`: a one-time link's page. Opening it uses nothing (mail
/// scanners open links): the download is the button's `POST`.
pub(super) async fn link_page(
    gw: &Gateway,
    headers: &HeaderMap,
    token: &str,
    peer: SocketAddr,
) -> Resp {
    let started = Instant::now();
    let now = lifeline_protocol::time::now_ms();
    let alive = if token_ok(token) {
        match gw
            .store
            .session_by_link(&super::sessions::link_hash(token), now)
            .await
        {
            Ok(found) => found.is_some(),
            Err(e) => return store_error(e),
        }
    } else {
        false
    };
    if !alive {
        if let Err(why) = spend(gw, peer.ip()) {
            return refuse(gw, headers, why, Form::None, peer, started).await;
        }
        return refuse(gw, headers, Refused::DeadLink, Form::None, peer, started).await;
    }
    gw.metrics.pin_attempt("link_opened");
    let w = words(headers);
    let html = render(gw, w, headers, None, Form::Link(token)).await;
    respond(gw, StatusCode::OK, "text/html; charset=utf-8", html)
}

/// `POST /s/TOKEN`: the link's download (once).
pub(super) async fn link_download(
    gw: &Gateway,
    headers: &HeaderMap,
    token: &str,
    body: &[u8],
    peer: SocketAddr,
) -> Resp {
    let started = Instant::now();
    let form = std::str::from_utf8(body).unwrap_or("");
    match redeem(gw, Key::Link(token), form, peer.ip(), headers).await {
        Ok(file) => file,
        Err(Err(resp)) => resp,
        Err(Ok(why)) => refuse(gw, headers, why, Form::Link(token), peer, started).await,
    }
}

/// The personalized applet of `guid`, taken once, audited with `how`;
/// `gone` if it was taken meanwhile (by the technician's console).
pub(super) async fn deliver(
    gw: &Gateway,
    guid: lifeline_protocol::SessionGuid,
    platform: &str,
    stock: Vec<u8>,
    how: &str,
    ip: IpAddr,
    gone: Refused,
) -> Result<Resp, Refusal> {
    let rec = match gw.store.session(&guid).await {
        Ok(Some(r)) => r,
        Ok(None) => return Err(Ok(gone)),
        Err(e) => return Err(Err(store_error(e))),
    };
    let nodes = match gw.directory_nodes().await {
        Ok(n) => n,
        Err(e) => return Err(Err(store_error(e))),
    };
    let secret = match gw.store.take_applet_secret(&guid).await {
        Ok(Some(s)) => s,
        Ok(None) => return Err(Ok(gone)),
        Err(e) => return Err(Err(store_error(e))),
    };
    Ok(send_applet(gw, &rec, secret, &nodes, platform, stock, how, ip).await)
}

/// The personalized applet as a download, audited with `how`.
#[allow(clippy::too_many_arguments)]
pub(super) async fn send_applet(
    gw: &Gateway,
    rec: &lifeline_store::SessionRecord,
    secret: [u8; 32],
    nodes: &[lifeline_protocol::directory::DirectoryNode],
    platform: &str,
    stock: Vec<u8>,
    how: &str,
    ip: IpAddr,
) -> Resp {
    let guid = rec.guid;
    let file = crate::personalize::personalize(gw, rec, secret, nodes, stock);
    let digest = hex::encode(&lifeline_tls::sha256(&file));
    crate::relay::audit(
        gw,
        Some(&guid),
        "web page",
        "applet downloaded",
        &format!(
            "{how}, from {ip}; platform {platform}, {} bytes, sha256 {digest}",
            file.len()
        ),
    )
    .await;
    gw.metrics.pin_attempt("ok");
    let name = if platform.starts_with("windows") {
        "lifeline-support.exe"
    } else {
        "lifeline-support"
    };
    let mut r = respond(gw, StatusCode::OK, "application/octet-stream", file);
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_fields_hold_only_what_a_pin_or_platform_can() {
        let body = "pin=123456&platform=linux-x86_64";
        assert_eq!(field(body, "pin"), Some("123456"));
        assert_eq!(field(body, "platform"), Some("linux-x86_64"));
        assert_eq!(field("pin=12%3C&x=1", "pin"), None);
        assert_eq!(field("platform=x", "pin"), None);
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
