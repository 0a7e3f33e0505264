//! The network a test arranges: free ports, and paths that go silent.

use crate::*;
use std::process::Command;

/// A TCP port for a listener the test fixes in advance (the applet's
/// `--tcp-port`): outside the kernel's ephemeral range, so no outgoing
/// connection of a parallel test takes it between this check and the
/// listener's bind (which a port the kernel handed out could).
pub fn free_listen_port() -> u16 {
    use std::net::{Ipv4Addr, Ipv6Addr, TcpListener};
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut n = (u64::from(std::process::id()) << 32) ^ u64::from(nanos);
    for _ in 0..1000 {
        n = n
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let port = 20_000 + (n >> 33) as u16 % 12_000;
        if TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).is_ok()
            && TcpListener::bind((Ipv6Addr::UNSPECIFIED, port)).is_ok()
        {
            return port;
        }
    }
    panic!("no free TCP port in 20000..32000");
}

/// An nft table that drops every TCP packet to or from a port on this
/// machine while it lives: to the ends of a path on that port, the path
/// has gone silent (needs root and nftables).
#[derive(Debug)]
pub struct PortBlock(String);

impl PortBlock {
    /// Starts dropping `port`'s packets.
    pub fn new(port: u16) -> Self {
        let table = format!("lifeline_block_{port}");
        let script = format!(
            "table inet {table} {{\n\
               chain input {{ type filter hook input priority -10; \
                 tcp dport {port} drop; tcp sport {port} drop; }}\n\
               chain output {{ type filter hook output priority -10; \
                 tcp dport {port} drop; tcp sport {port} drop; }}\n\
             }}\n"
        );
        let out = run_with_stdin(Command::new("nft").args(["-f", "-"]), &script);
        assert!(
            out.status.success(),
            "nft (root and nftables are needed): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self(table)
    }
}

impl Drop for PortBlock {
    fn drop(&mut self) {
        let _ = Command::new("nft")
            .args(["delete", "table", "inet", &self.0])
            .status();
    }
}

/// `GET PATH` over plain HTTP/1.1 (the metrics listener): `(status, body)`.
pub fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_owned())
}
