//! The portal HTTP API (ALPN `h2` or `http/1.1` on the gateway's TLS port).
//!
//! Routing is a `match` on method and path segments; handlers live in
//! [`sessions`] (handing one over in [`transfers`]), [`login`],
//! [`password`] and [`public`]; the end user's
//! web page (PIN form, one-time links) in `web`, its words in `web_text`,
//! and channels' pages in `channel_page`. Request bodies are capped at
//! [`MAX_BODY`] and must arrive within the body timeout once the headers
//! have (a client that stalls mid-body gets 408 and loses its slot);
//! headers must arrive within the handshake timeout; a connection lives at
//! most [`MAX_CONNECTION`].

// Handlers return `Result<_, Resp>` so an early error *is* the response;
// a response is built once per request, so its size does not matter.
#![allow(clippy::result_large_err)]

mod channel_page;
mod login;
mod password;
mod public;
mod sessions;
pub use sessions::PIN_TTL_MS;
mod transfers;
mod web;
mod web_text;

use crate::state::Gateway;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use lifeline_protocol::portal::ApiError;
use lifeline_store::Technician;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Largest request body.
pub const MAX_BODY: usize = 64 * 1024;
/// Longest life of one portal connection.
pub const MAX_CONNECTION: Duration = Duration::from_secs(600);

/// A response body.
pub type Resp = Response<Full<Bytes>>;

/// Serves HTTP/2 (ALPN `h2`) or HTTP/1.1 on one TLS connection.
///
/// The handshake deadline runs until the first complete request has
/// arrived, whatever the protocol: a client that completes TLS and then
/// stalls, or sends half a request or half an HTTP/2 preface, is dropped
/// when it passes. HTTP/1.1 connections serve one request (our clients
/// make one per connection), so an idle keep-alive cannot hold a slot;
/// HTTP/2 peers are pinged and dropped when they stop answering.
pub async fn serve_connection(
    gw: Arc<Gateway>,
    tls: crate::state::ServerStream,
    peer: SocketAddr,
    alpn_h2: bool,
    deadline: tokio::time::Instant,
) {
    let got_request = Arc::new(AtomicBool::new(false));
    let header_timeout = gw.config.handshake_timeout;
    let seen = got_request.clone();
    let service = hyper::service::service_fn(move |req| {
        seen.store(true, Ordering::Relaxed);
        let gw = gw.clone();
        async move { Ok::<_, std::convert::Infallible>(route(&gw, req, peer).await) }
    });
    let io = TokioIo::new(tls);
    let conn: std::pin::Pin<Box<dyn Future<Output = Result<(), hyper::Error>> + Send>> = if alpn_h2
    {
        Box::pin(
            hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .max_concurrent_streams(32)
                .keep_alive_interval(Duration::from_secs(30))
                .keep_alive_timeout(Duration::from_secs(20))
                .serve_connection(io, service),
        )
    } else {
        Box::pin(
            hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .keep_alive(false)
                .serve_connection(io, service),
        )
    };
    tokio::pin!(conn);
    let result = tokio::select! {
        r = &mut conn => Some(r),
        _ = tokio::time::sleep_until(deadline) => None,
    };
    let result = match result {
        Some(r) => Ok(r),
        None if !got_request.load(Ordering::Relaxed) => {
            tracing::debug!(%peer, "no request within the handshake deadline");
            return;
        }
        None => tokio::time::timeout(MAX_CONNECTION, conn).await,
    };
    match result {
        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "portal connection error"),
        Err(_) => tracing::debug!(%peer, "portal connection reached its maximum age"),
        Ok(Ok(())) => {}
    }
}

/// Answers a request, counted in the metrics by route and status.
async fn route(gw: &Arc<Gateway>, req: Request<Incoming>, peer: SocketAddr) -> Resp {
    let name = route_name(req.method(), req.uri().path());
    let resp = answer(gw, req, peer).await;
    let status = resp.status().as_u16();
    gw.metrics.portal_request(name, status);
    if name == "login" {
        // By the refusal's code (a closed set: anything else is "error").
        let code = resp.extensions().get::<ErrorCode>().map(|c| c.0.as_str());
        gw.metrics.login(match (status, code) {
            (200, _) => "ok",
            (_, Some("bad_credentials")) => "bad_credentials",
            (_, Some("bad_code")) => "bad_code",
            (_, Some("code_required")) => "code_required",
            (_, Some("enroll_required")) => "enroll_required",
            (_, Some("password_expired")) => "password_expired",
            (_, Some("locked")) => "locked",
            (_, Some("disabled")) => "disabled",
            (_, Some("network")) => "network",
            (_, Some("rate_limited")) => "rate_limited",
            (_, Some("busy")) => "busy",
            (_, Some("bad_request")) => "bad_request",
            _ => "error",
        });
    }
    resp
}

/// The route a request asks for, as the metrics name it: a closed set,
/// never the path itself (a GUID in it would make every session a series
/// of its own).
fn route_name(method: &Method, path: &str) -> &'static str {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method, segs.as_slice()) {
        (&Method::GET, [""]) => "web_page",
        (&Method::GET, ["style.css"]) => "web_style",
        (&Method::GET, ["s", _]) => "web_link",
        (&Method::GET, ["c", _]) => "web_channel",
        (&Method::POST, ["c", _]) => "web_channel_visit",
        (&Method::POST, ["s", _]) => "web_link_download",
        (&Method::POST, [""]) => "web_pin",
        (&Method::GET, ["api", "v1", "health"]) => "health",
        (&Method::GET, ["api", "v1", "directory"]) => "directory",
        (&Method::POST, ["api", "v1", "login"]) => "login",
        (&Method::POST, ["api", "v1", "login", "enroll"]) => "login_enroll",
        (&Method::POST, ["api", "v1", "password"]) => "password_change",
        (&Method::POST, ["api", "v1", "logout"]) => "logout",
        (_, ["api", "v1", "sessions", rest @ ..]) => match (method, rest) {
            (&Method::GET, []) => "sessions_list",
            (&Method::GET, ["waiting"]) => "sessions_waiting",
            (&Method::POST, ["pick"]) => "session_pick",
            (&Method::POST, []) => "session_create",
            (&Method::GET, [_]) => "session_show",
            (&Method::POST, [_, "end"]) => "session_end",
            (&Method::POST, [_, "reissue"]) => "session_reissue",
            (&Method::POST, [_, "interrupted"]) => "session_interrupted",
            (&Method::POST, [_, "path"]) => "session_path",
            (&Method::POST, [_, "work"]) => "session_work",
            (&Method::POST, [_, "transfer"]) => "session_transfer",
            (&Method::POST, [_, "accept"]) => "session_accept",
            (&Method::POST, [_, "handed-over"]) => "session_handed_over",
            (&Method::GET, [_, "applet"]) => "session_applet",
            _ => "unknown",
        },
        _ => "unknown",
    }
}

async fn answer(gw: &Arc<Gateway>, req: Request<Incoming>, peer: SocketAddr) -> Resp {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let resp = match (&method, segs.as_slice()) {
        (&Method::GET, [""]) => web::page(gw, req.headers()).await,
        (&Method::GET, ["style.css"]) => web::style(gw),
        (&Method::GET, ["s", token]) => web::link_page(gw, req.headers(), token, peer).await,
        (&Method::POST, ["s", token]) => {
            let headers = req.headers().clone();
            let token = (*token).to_owned();
            match body(gw, req).await {
                Ok(b) => web::link_download(gw, &headers, &token, &b, peer).await,
                Err(r) => r,
            }
        }
        (&Method::GET, ["c", token]) => channel_page::page(gw, req.headers(), token, peer).await,
        (&Method::POST, ["c", token]) => {
            let headers = req.headers().clone();
            let token = (*token).to_owned();
            match body(gw, req).await {
                Ok(b) => channel_page::visit(gw, &headers, &token, &b, peer).await,
                Err(r) => r,
            }
        }
        (&Method::POST, [""]) => {
            let headers = req.headers().clone();
            match body(gw, req).await {
                Ok(b) => web::pin(gw, &headers, &b, peer).await,
                Err(r) => r,
            }
        }
        (&Method::GET, ["api", "v1", "health"]) => public::health(gw),
        (&Method::GET, ["api", "v1", "directory"]) => public::directory(gw).await,
        (&Method::POST, ["api", "v1", "login"]) => match body(gw, req).await {
            Ok(b) => login::login(gw, &b, peer).await,
            Err(r) => r,
        },
        (&Method::POST, ["api", "v1", "login", "enroll"]) => match body(gw, req).await {
            Ok(b) => login::enroll(gw, &b, peer).await,
            Err(r) => r,
        },
        (&Method::POST, ["api", "v1", "password"]) => match body(gw, req).await {
            Ok(b) => password::change(gw, &b, peer).await,
            Err(r) => r,
        },
        (&Method::POST, ["api", "v1", "logout"]) => match authenticate(gw, &req, peer).await {
            Ok((tech, token)) => login::logout(gw, &tech, &token).await,
            Err(r) => r,
        },
        (_, ["api", "v1", "sessions", ..]) => {
            let tech = match authenticate(gw, &req, peer).await {
                Ok((t, _)) => t,
                Err(r) => return r,
            };
            match (&method, &segs[3..]) {
                (&Method::GET, []) => sessions::list(gw, &tech, false).await,
                (&Method::GET, ["waiting"]) => sessions::list(gw, &tech, true).await,
                (&Method::POST, ["pick"]) => match body(gw, req).await {
                    Ok(b) => sessions::pick(gw, &tech, &b).await,
                    Err(r) => r,
                },
                (&Method::POST, []) => match body(gw, req).await {
                    Ok(b) => sessions::create(gw, &tech, &b).await,
                    Err(r) => r,
                },
                (&Method::GET, [guid]) => sessions::show(gw, &tech, guid).await,
                (&Method::POST, [guid, "end"]) => match body(gw, req).await {
                    Ok(b) => sessions::end(gw, &tech, guid, &b).await,
                    Err(r) => r,
                },
                (&Method::POST, [guid, "reissue"]) => match body(gw, req).await {
                    Ok(b) => sessions::reissue(gw, &tech, guid, &b).await,
                    Err(r) => r,
                },
                (&Method::POST, [guid, "interrupted"]) => match body(gw, req).await {
                    Ok(b) => sessions::interrupted(gw, &tech, guid, &b).await,
                    Err(r) => r,
                },
                (&Method::POST, [guid, "path"]) => match body(gw, req).await {
                    Ok(b) => sessions::path(gw, &tech, guid, &b).await,
                    Err(r) => r,
                },
                (&Method::POST, [guid, "transfer"]) => match body(gw, req).await {
                    Ok(b) => transfers::offer(gw, &tech, guid, &b).await,
                    Err(r) => r,
                },
                (&Method::POST, [guid, "accept"]) => match body(gw, req).await {
                    Ok(b) => transfers::accept(gw, &tech, guid, &b).await,
                    Err(r) => r,
                },
                (&Method::POST, [guid, "handed-over"]) => {
                    transfers::handed_over(gw, &tech, guid).await
                }
                (&Method::POST, [guid, "work"]) => match body(gw, req).await {
                    Ok(b) => sessions::work(gw, &tech, guid, &b).await,
                    Err(r) => r,
                },
                (&Method::GET, [guid, "applet"]) => {
                    sessions::download(gw, &tech, guid, &query).await
                }
                _ => not_found(),
            }
        }
        _ => not_found(),
    };
    tracing::debug!(%peer, %method, %path, status = resp.status().as_u16(), "portal request");
    resp
}

fn not_found() -> Resp {
    error(StatusCode::NOT_FOUND, "not_found", "no such API endpoint")
}

/// Reads a request body up to [`MAX_BODY`] within the body timeout.
async fn body(gw: &Gateway, req: Request<Incoming>) -> Result<Bytes, Resp> {
    let read = Limited::new(req.into_body(), MAX_BODY).collect();
    match tokio::time::timeout(gw.config.body_timeout, read).await {
        Ok(Ok(b)) => Ok(b.to_bytes()),
        Ok(Err(_)) => Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            &format!("request body larger than {MAX_BODY} bytes or unreadable"),
        )),
        Err(_) => {
            let mut r = error(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                &format!(
                    "the request body did not arrive within {} s",
                    gw.config.body_timeout.as_secs()
                ),
            );
            // The rest of the body may still be on its way: this
            // connection cannot serve another request.
            r.headers_mut().insert(
                header::CONNECTION,
                header::HeaderValue::from_static("close"),
            );
            Err(r)
        }
    }
}

/// Parses a JSON body.
fn parse<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T, Resp> {
    serde_json::from_slice(b).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            &format!("invalid JSON body: {e}"),
        )
    })
}

/// The technician behind the request's bearer token, and the token.
/// The refusal of a technician outside their group's networks.
pub(crate) fn outside_networks(ip: std::net::IpAddr) -> Resp {
    error(
        StatusCode::FORBIDDEN,
        "network",
        &format!(
            "your group may log in and work only from its own networks, and {ip} is not one of \
             them: connect from there, or ask the gateway's administrator"
        ),
    )
}

async fn authenticate(
    gw: &Gateway,
    req: &Request<Incoming>,
    peer: SocketAddr,
) -> Result<(Technician, String), Resp> {
    let unauthorized = || {
        error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "not logged in, or the login has ended (expired, logged out, or unused longer than \
             your group allows); run `tech-console login` again",
        )
    };
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| lifeline_protocol::portal::bearer_token(v.as_bytes()))
        .ok_or_else(unauthorized)?;
    match gw
        .store
        .technician_by_token(
            &crate::auth::token_hash(token),
            lifeline_protocol::time::now_ms(),
        )
        .await
    {
        Ok(Some(t)) if !crate::networks::allows(t.networks.as_deref(), peer.ip()) => {
            crate::relay::audit(
                gw,
                None,
                &t.email,
                "request refused",
                &format!("from {peer}, outside the networks of group {}", t.group),
            )
            .await;
            Err(outside_networks(peer.ip()))
        }
        Ok(Some(t)) => Ok((t, token.to_owned())),
        Ok(None) => Err(unauthorized()),
        Err(e) => Err(store_error(e)),
    }
}

/// A JSON response.
pub fn json<T: serde::Serialize>(status: StatusCode, v: &T) -> Resp {
    let body = serde_json::to_vec(v).unwrap_or_default();
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    r
}

/// An [`ApiError`] response.
pub fn error(status: StatusCode, code: &str, message: &str) -> Resp {
    error_retry(status, code, message, None)
}

/// The `code` of an error response, kept beside it for the metrics.
#[derive(Debug, Clone)]
struct ErrorCode(String);

/// An [`ApiError`] response with a retry hint.
pub fn error_retry(
    status: StatusCode,
    code: &str,
    message: &str,
    retry_after_secs: Option<u64>,
) -> Resp {
    let mut r = json(
        status,
        &ApiError {
            code: code.into(),
            error: message.into(),
            retry_after_secs,
        },
    );
    // For the metrics, which count some refusals by their code.
    r.extensions_mut().insert(ErrorCode(code.to_owned()));
    if let Some(v) =
        retry_after_secs.and_then(|s| header::HeaderValue::from_str(&s.to_string()).ok())
    {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

/// A store failure: logged in full, reported generically.
pub fn store_error(e: lifeline_store::StoreError) -> Resp {
    match e {
        lifeline_store::StoreError::Conflict(msg) => error(StatusCode::CONFLICT, "conflict", &msg),
        lifeline_store::StoreError::NotFound(msg) => {
            error(StatusCode::NOT_FOUND, "not_found", &msg)
        }
        e => {
            tracing::error!(error = %e, "store failure");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the gateway's store failed; try again",
            )
        }
    }
}
