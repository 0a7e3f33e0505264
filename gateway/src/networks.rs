//! The networks a group's technicians may log in and connect consoles
//! from (`gateway admin group networks NAME CIDR,…|any`): a list of CIDR
//! blocks, IPv4 and IPv6 (an IPv4 client seen through an IPv6 socket, as
//! `::ffff:a.b.c.d`, counts as its IPv4 address).

use std::net::IpAddr;

/// One CIDR block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    addr: IpAddr,
    prefix: u8,
}

impl Block {
    /// Whether `ip` is in the block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for Block {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Parses `10.0.0.0/8, 2001:db8::/32, 192.0.2.7` (an address alone is a
/// block of one). Refuses bits set beyond the prefix (`10.0.0.1/8`: a
/// slip, not a network).
pub fn parse(list: &str) -> Result<Vec<Block>, String> {
    let mut out = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (addr, prefix) = match item.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (item, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| {
            format!("{item:?} is not an IP network (like 10.0.0.0/8 or 2001:db8::/32)")
        })?;
        let addr = addr.to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{item:?}: the prefix must be 0 to {max}"))?,
        };
        let block = Block { addr, prefix };
        if !block.contains(addr) || masked(addr, prefix) != addr {
            return Err(format!(
                "{item:?} has bits set beyond its prefix: did you mean {}?",
                Block {
                    addr: masked(addr, prefix),
                    prefix
                }
            ));
        }
        out.push(block);
    }
    if out.is_empty() {
        return Err("no network given (give CIDRs like 10.0.0.0/8, or `any`)".into());
    }
    Ok(out)
}

fn masked(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((u32::from(a) & mask).into())
        }
        IpAddr::V6(a) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((u128::from(a) & mask).into())
        }
    }
}

/// Whether `ip` may be used for a group whose stored list is `stored`
/// (`None`: any). A stored list that no longer parses allows nothing.
pub fn allows(stored: Option<&str>, ip: IpAddr) -> bool {
    match stored {
        None => true,
        Some(list) => parse(list).is_ok_and(|blocks| blocks.iter().any(|b| b.contains(ip))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_contain_what_they_should() {
        let b = parse("10.0.0.0/8, 192.0.2.7, 2001:db8::/32").unwrap();
        assert_eq!(b.len(), 3);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(b[0].contains(ip("10.200.1.1")));
        assert!(!b[0].contains(ip("11.0.0.1")));
        assert!(b[1].contains(ip("192.0.2.7")) && !b[1].contains(ip("192.0.2.8")));
        assert!(b[2].contains(ip("2001:db8:1::5")));
        // An IPv4 client through an IPv6 socket.
        assert!(b[0].contains(ip("::ffff:10.1.2.3")));
        assert!(allows(Some("127.0.0.2/32"), ip("127.0.0.2")));
        assert!(!allows(Some("127.0.0.2/32"), ip("127.0.0.1")));
        assert!(allows(None, ip("203.0.113.1")));
        assert!(parse("0.0.0.0/0").unwrap()[0].contains(ip("8.8.8.8")));
    }

    #[test]
    fn slips_are_refused_with_a_hint() {
        assert!(
            parse("10.0.0.1/8")
                .unwrap_err()
                .contains("did you mean 10.0.0.0/8")
        );
        assert!(parse("10.0.0.0/33").is_err());
        assert!(parse("ten").is_err());
        assert!(parse(" , ").is_err());
    }
}
