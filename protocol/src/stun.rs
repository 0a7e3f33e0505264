//! STUN Binding (RFC 5389), the part a gateway's STUN server needs: check a
//! Binding request and build its success response, which tells the sender
//! the address and port its datagram came from (its NAT mapping).
//!
//! ```text
//!  0                   1                   2                   3
//! |0 0|  message type (14 bits) |        message length          |
//! |                    magic cookie 0x2112A442                   |
//! |                  transaction id (96 bits)                    |
//! | attribute type              | attribute length               |  × n,
//! | value, padded to 4 bytes ...                                 |  in order
//! ```
//!
//! [`answer`] accepts exactly one message filling the datagram: the top two
//! bits zero, the magic cookie, a length that is a multiple of 4 and
//! matches the datagram, attributes that each fit (padded) inside the
//! message, class request and method Binding, and a FINGERPRINT, if
//! present, that is the last attribute and correct. Everything else is
//! `None`: a server stays silent on what it does not understand (§7.3).
//! The answer is the header, XOR-MAPPED-ADDRESS and FINGERPRINT — at most
//! [`MAX_GROWTH`] bytes more than the smallest request it answers, so the
//! server cannot be used to amplify a spoofed flood.

use std::net::{IpAddr, SocketAddr};

/// The fixed magic cookie.
pub const MAGIC_COOKIE: u32 = 0x2112_A442;
/// Message type of a Binding request.
pub const BINDING_REQUEST: u16 = 0x0001;
/// Message type of a Binding success response.
pub const BINDING_SUCCESS: u16 = 0x0101;
/// XOR-MAPPED-ADDRESS attribute type.
pub const ATTR_XOR_MAPPED_ADDRESS: u16 = 0x0020;
/// FINGERPRINT attribute type.
pub const ATTR_FINGERPRINT: u16 = 0x8028;
/// Length of the STUN header.
pub const HEADER: usize = 20;
/// Largest datagram [`answer`] looks at.
pub const MAX_DATAGRAM: usize = 1500;
/// How much longer than its request an answer can be: 52 bytes (header,
/// IPv6 XOR-MAPPED-ADDRESS, FINGERPRINT) for a 20-byte request.
pub const MAX_GROWTH: usize = 32;

const FINGERPRINT_XOR: u32 = 0x5354_554E;

/// CRC-32 (IEEE 802.3, reflected), the checksum FINGERPRINT uses.
pub fn crc32(data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut t = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            t[i] = c;
            i += 1;
        }
        t
    };
    let mut crc = !0u32;
    for &b in data {
        crc = TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// A Binding request that passed every check of [`answer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindingRequest {
    /// Its transaction id, echoed in the response.
    pub transaction_id: [u8; 12],
}

impl BindingRequest {
    /// Checks `datagram` (see the module doc); `None` if it is not a
    /// well-formed Binding request.
    pub fn parse(datagram: &[u8]) -> Option<Self> {
        let n = datagram.len();
        if !(HEADER..=MAX_DATAGRAM).contains(&n) || datagram[0] & 0xc0 != 0 {
            return None;
        }
        let length = usize::from(be16(datagram, 2));
        if length % 4 != 0 || HEADER + length != n || be32(datagram, 4) != MAGIC_COOKIE {
            return None;
        }
        if be16(datagram, 0) != BINDING_REQUEST {
            return None;
        }
        let mut at = HEADER;
        while at < n {
            if n - at < 4 {
                return None;
            }
            let ty = be16(datagram, at);
            let len = usize::from(be16(datagram, at + 2));
            let padded = len.div_ceil(4) * 4;
            let value = at + 4;
            if n - value < padded {
                return None;
            }
            if ty == ATTR_FINGERPRINT {
                // Must be last, 4 bytes, and the CRC of everything before it.
                if len != 4 || value + 4 != n {
                    return None;
                }
                if be32(datagram, value) != crc32(&datagram[..at]) ^ FINGERPRINT_XOR {
                    return None;
                }
            }
            at = value + padded;
        }
        let mut transaction_id = [0u8; 12];
        transaction_id.copy_from_slice(&datagram[8..HEADER]);
        Some(Self { transaction_id })
    }

    /// The success response telling the sender it came from `from`.
    pub fn respond(&self, from: SocketAddr) -> Vec<u8> {
        // An IPv4 client on a dual-stack socket shows up as ::ffff:a.b.c.d;
        // its NAT mapping is an IPv4 address and must be reported as one.
        let ip = from.ip().to_canonical();
        let mut out = Vec::with_capacity(HEADER + 24 + 8);
        out.extend_from_slice(&BINDING_SUCCESS.to_be_bytes());
        out.extend_from_slice(&[0, 0]); // length, filled in below
        out.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        out.extend_from_slice(&self.transaction_id);
        let x_port = from.port() ^ (MAGIC_COOKIE >> 16) as u16;
        let mut key = MAGIC_COOKIE.to_be_bytes().to_vec();
        key.extend_from_slice(&self.transaction_id);
        let (family, addr): (u8, Vec<u8>) = match ip {
            IpAddr::V4(v4) => (1, v4.octets().to_vec()),
            IpAddr::V6(v6) => (2, v6.octets().to_vec()),
        };
        out.extend_from_slice(&ATTR_XOR_MAPPED_ADDRESS.to_be_bytes());
        out.extend_from_slice(&((4 + addr.len()) as u16).to_be_bytes());
        out.extend_from_slice(&[0, family]);
        out.extend_from_slice(&x_port.to_be_bytes());
        out.extend(addr.iter().zip(&key).map(|(a, k)| a ^ k));
        // FINGERPRINT covers the header with a length that already counts it.
        let length = (out.len() - HEADER + 8) as u16;
        out[2..4].copy_from_slice(&length.to_be_bytes());
        let fp = crc32(&out) ^ FINGERPRINT_XOR;
        out.extend_from_slice(&ATTR_FINGERPRINT.to_be_bytes());
        out.extend_from_slice(&4u16.to_be_bytes());
        out.extend_from_slice(&fp.to_be_bytes());
        out
    }
}

/// The answer to one datagram from `from`, or `None` to stay silent.
pub fn answer(datagram: &[u8], from: SocketAddr) -> Option<Vec<u8>> {
    let out = BindingRequest::parse(datagram)?.respond(from);
    // True by construction (see the module doc); checked so that a change
    // to what goes into the answer cannot quietly make us an amplifier.
    (out.len() <= datagram.len() + MAX_GROWTH).then_some(out)
}

/// A Binding success response as a client reads it: the transaction id
/// and the address the server saw. For tests and the fuzz check; the ends'
/// ICE agents have their own STUN client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindingResponse {
    /// The request's transaction id.
    pub transaction_id: [u8; 12],
    /// XOR-MAPPED-ADDRESS, decoded.
    pub mapped: SocketAddr,
}

impl BindingResponse {
    /// Parses a response with a correct FINGERPRINT as its last attribute
    /// and an XOR-MAPPED-ADDRESS.
    pub fn parse(msg: &[u8]) -> Option<Self> {
        let n = msg.len();
        if n < HEADER
            || be16(msg, 0) != BINDING_SUCCESS
            || usize::from(be16(msg, 2)) + HEADER != n
            || be32(msg, 4) != MAGIC_COOKIE
        {
            return None;
        }
        let mut transaction_id = [0u8; 12];
        transaction_id.copy_from_slice(&msg[8..HEADER]);
        let mut key = MAGIC_COOKIE.to_be_bytes().to_vec();
        key.extend_from_slice(&transaction_id);
        let (mut mapped, mut fingerprinted) = (None, false);
        let mut at = HEADER;
        while at + 4 <= n {
            let ty = be16(msg, at);
            let len = usize::from(be16(msg, at + 2));
            let value = msg.get(at + 4..at + 4 + len)?;
            match ty {
                ATTR_XOR_MAPPED_ADDRESS if len == 8 || len == 20 => {
                    let port = be16(value, 2) ^ (MAGIC_COOKIE >> 16) as u16;
                    let raw: Vec<u8> = value[4..].iter().zip(&key).map(|(a, k)| a ^ k).collect();
                    let ip = match (value[1], raw.len()) {
                        (1, 4) => IpAddr::from(<[u8; 4]>::try_from(raw.as_slice()).ok()?),
                        (2, 16) => IpAddr::from(<[u8; 16]>::try_from(raw.as_slice()).ok()?),
                        _ => return None,
                    };
                    mapped = Some(SocketAddr::new(ip, port));
                }
                ATTR_FINGERPRINT => {
                    fingerprinted = len == 4
                        && at + 8 == n
                        && be32(value, 0) == crc32(&msg[..at]) ^ FINGERPRINT_XOR;
                }
                _ => {}
            }
            at += 4 + len.div_ceil(4) * 4;
        }
        fingerprinted.then_some(Self {
            transaction_id,
            mapped: mapped?,
        })
    }
}

/// The STUN server's second port: the one after its own. An end asks
/// both from one socket; two different mapped ports mean its NAT maps
/// anew for every destination (a symmetric NAT). `None` for port 65535.
pub fn alternate_port(port: u16) -> Option<u16> {
    port.checked_add(1)
}

/// A Binding request with `transaction_id`, with or without FINGERPRINT
/// (what an ICE agent sends a STUN server).
pub fn binding_request(transaction_id: [u8; 12], fingerprint: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + 8);
    out.extend_from_slice(&BINDING_REQUEST.to_be_bytes());
    out.extend_from_slice(&(if fingerprint { 8u16 } else { 0 }).to_be_bytes());
    out.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
    out.extend_from_slice(&transaction_id);
    if fingerprint {
        let fp = crc32(&out) ^ FINGERPRINT_XOR;
        out.extend_from_slice(&ATTR_FINGERPRINT.to_be_bytes());
        out.extend_from_slice(&4u16.to_be_bytes());
        out.extend_from_slice(&fp.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_known_answer() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn binding_round_trip_v4_v6_and_mapped_v4() {
        for from in [
            "198.51.100.7:40000",
            "[2001:db8::1]:5",
            "[::ffff:203.0.113.9]:3478",
        ] {
            let from: SocketAddr = from.parse().unwrap();
            for fp in [false, true] {
                let req = binding_request([7; 12], fp);
                let out = answer(&req, from).unwrap();
                assert!(out.len() <= req.len() + MAX_GROWTH);
                let r = BindingResponse::parse(&out).unwrap();
                assert_eq!(r.transaction_id, [7; 12]);
                assert_eq!(
                    r.mapped,
                    SocketAddr::new(from.ip().to_canonical(), from.port())
                );
            }
        }
    }

    #[test]
    fn everything_else_is_silence() {
        let from: SocketAddr = "192.0.2.1:1".parse().unwrap();
        let good = binding_request([1; 12], true);
        assert!(answer(&good, from).is_some());
        assert!(answer(b"", from).is_none());
        assert!(answer(&[0u8; 20], from).is_none(), "no magic cookie");
        let mut longer = good.clone();
        longer.extend_from_slice(&[0; 4]);
        assert!(answer(&longer, from).is_none(), "length mismatch");
        assert!(answer(&good[..good.len() - 4], from).is_none());
        let mut bad_fp = good.clone();
        *bad_fp.last_mut().unwrap() ^= 1;
        assert!(answer(&bad_fp, from).is_none());
        let mut top = good.clone();
        top[0] |= 0x80;
        assert!(answer(&top, from).is_none());
        let mut response = good.clone();
        response[1] = 0x01;
        response[0] = 0x01;
        assert!(answer(&response, from).is_none(), "not a request");
        // An attribute whose length runs past the message.
        let mut overrun = good[..HEADER].to_vec();
        overrun[3] = 8;
        overrun.extend_from_slice(&[0x80, 0x22, 0x00, 0x40, 0, 0, 0, 0]);
        assert!(answer(&overrun, from).is_none());
        // FINGERPRINT that is not the last attribute.
        let mut not_last = good.clone();
        not_last[3] += 8;
        not_last.extend_from_slice(&[0x80, 0x22, 0, 4, b'a', b'b', b'c', b'd']);
        assert!(answer(&not_last, from).is_none());
        assert!(answer(&vec![0u8; MAX_DATAGRAM + 4], from).is_none());
    }
}
