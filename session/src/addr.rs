//! `host:port` and `https://host:port/path` parsing.

use rustls::pki_types::ServerName;
use std::fmt;

/// A gateway address as a client dials it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    /// Host name or IP literal (without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
}

/// Error for a malformed address or URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AddrError(String);

impl HostPort {
    /// Parses `host:port`, `[v6]:port`, or `host` with `default_port`.
    pub fn parse(s: &str, default_port: u16) -> Result<Self, AddrError> {
        let s = s.trim();
        let bad = || AddrError(format!("{s:?} is not a host:port address"));
        if s.is_empty() {
            return Err(bad());
        }
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (h, after) = rest.split_once(']').ok_or_else(bad)?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| bad())?,
                None if after.is_empty() => default_port,
                None => return Err(bad()),
            };
            (h.to_owned(), port)
        } else {
            match s.rsplit_once(':') {
                Some((h, p)) if !h.contains(':') => (h.to_owned(), p.parse().map_err(|_| bad())?),
                Some(_) => (s.to_owned(), default_port), // bare IPv6
                None => (s.to_owned(), default_port),
            }
        };
        if host.is_empty() || port == 0 {
            return Err(bad());
        }
        Ok(Self { host, port })
    }

    /// The TLS server name for this host.
    pub fn server_name(&self) -> Result<ServerName<'static>, AddrError> {
        ServerName::try_from(self.host.clone())
            .map_err(|_| AddrError(format!("{:?} is not a valid host name", self.host)))
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Splits `https://host[:port]/path` into the address and the path.
pub fn parse_https_url(url: &str) -> Result<(HostPort, String), AddrError> {
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| AddrError(format!("{url:?} is not an https:// URL")))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    Ok((HostPort::parse(authority, 443)?, path.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_forms() {
        assert_eq!(
            HostPort::parse("127.0.0.1:8443", 1).unwrap().to_string(),
            "127.0.0.1:8443"
        );
        assert_eq!(HostPort::parse("[::1]:9", 1).unwrap().host, "::1");
        assert_eq!(HostPort::parse("example.org", 443).unwrap().port, 443);
        assert!(HostPort::parse("host:x", 1).is_err());
        let (hp, path) = parse_https_url("https://gw.example:8443/api/v1/directory").unwrap();
        assert_eq!((hp.port, path.as_str()), (8443, "/api/v1/directory"));
        assert!(parse_https_url("http://x/").is_err());
    }
}
