//! A small client for the gateway's portal API (JSON over HTTP/1.1 on the
//! gateway's TLS port, ALPN `http/1.1`).
//!
//! One connection per request keeps it simple and stateless; the API is
//! used a few times per session, not per byte.

use crate::addr::HostPort;
use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use lifeline_protocol::portal::ApiError;
use rustls::ClientConfig;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::Duration;

/// Largest JSON answer accepted.
const MAX_JSON: usize = 4 << 20;
/// Largest download accepted (a personalized applet).
pub const MAX_DOWNLOAD: usize = 512 << 20;

/// Why a portal call failed.
#[derive(Debug, thiserror::Error)]
pub enum PortalError {
    /// The portal answered with an error.
    #[error("{}", .error.error)]
    Api {
        /// HTTP status.
        status: StatusCode,
        /// The error body.
        error: ApiError,
    },
    /// Could not reach or talk to the portal.
    #[error(transparent)]
    Link(#[from] crate::gateway_conn::LinkError),
    /// HTTP-level failure.
    #[error("portal request failed: {0}")]
    Http(String),
    /// The answer was not what the API promises.
    #[error("portal answered something unexpected: {0}")]
    Decode(String),
    /// Too slow.
    #[error("the portal did not answer within {0:?}")]
    Timeout(Duration),
}

/// A portal client for one gateway.
#[derive(Debug, Clone)]
pub struct PortalClient {
    addr: HostPort,
    tls: Arc<ClientConfig>,
    token: Option<String>,
    timeout: Duration,
}

impl PortalClient {
    /// A client for `addr`; `tls` must offer ALPN `http/1.1`.
    pub fn new(addr: HostPort, tls: Arc<ClientConfig>) -> Self {
        Self {
            addr,
            tls,
            token: None,
            timeout: Duration::from_secs(30),
        }
    }

    /// Adds a bearer token to every request.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// The gateway address.
    pub fn addr(&self) -> &HostPort {
        &self.addr
    }

    /// GET returning JSON.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, PortalError> {
        let body = self.request(Method::GET, path, None, MAX_JSON).await?;
        decode(&body)
    }

    /// POST JSON returning JSON.
    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, PortalError> {
        let json = serde_json::to_vec(body).map_err(|e| PortalError::Decode(e.to_string()))?;
        let body = self
            .request(Method::POST, path, Some(json), MAX_JSON)
            .await?;
        decode(&body)
    }

    /// GET returning raw bytes (up to [`MAX_DOWNLOAD`]).
    pub async fn download(&self, path: &str) -> Result<Bytes, PortalError> {
        self.request(Method::GET, path, None, MAX_DOWNLOAD).await
    }

    async fn request(
        &self,
        method: Method,
        path: &str,
        json: Option<Vec<u8>>,
        limit: usize,
    ) -> Result<Bytes, PortalError> {
        let work = async {
            let tls =
                crate::gateway_conn::connect(&self.addr, self.tls.clone(), self.timeout).await?;
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                .await
                .map_err(|e| PortalError::Http(e.to_string()))?;
            tokio::spawn(conn);
            let mut req = Request::builder()
                .method(method)
                .uri(path)
                .header(header::HOST, self.addr.to_string());
            if let Some(t) = &self.token {
                req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
            }
            if json.is_some() {
                req = req.header(header::CONTENT_TYPE, "application/json");
            }
            let req = req
                .body(Full::new(Bytes::from(json.unwrap_or_default())))
                .map_err(|e| PortalError::Http(e.to_string()))?;
            let resp = sender
                .send_request(req)
                .await
                .map_err(|e| PortalError::Http(e.to_string()))?;
            let status = resp.status();
            let body = Limited::new(resp.into_body(), limit)
                .collect()
                .await
                .map_err(|e| PortalError::Http(e.to_string()))?
                .to_bytes();
            if status.is_success() {
                Ok(body)
            } else {
                let error =
                    serde_json::from_slice::<ApiError>(&body).unwrap_or_else(|_| ApiError {
                        code: "http".into(),
                        error: format!("portal answered {status}"),
                        retry_after_secs: None,
                    });
                Err(PortalError::Api { status, error })
            }
        };
        // Downloads get more time than JSON calls.
        let limit_time = if limit > MAX_JSON {
            self.timeout * 10
        } else {
            self.timeout
        };
        tokio::time::timeout(limit_time, work)
            .await
            .map_err(|_| PortalError::Timeout(limit_time))?
    }
}

fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, PortalError> {
    serde_json::from_slice(body).map_err(|e| PortalError::Decode(e.to_string()))
}
