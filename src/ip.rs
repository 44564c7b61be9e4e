//! The `ip` argument kind (runbooks.md §0 types; SEC-3 blocks an address at
//! the firewall): one public IPv4 or IPv6 address. Refused: private
//! (10/8, 172.16/12, 192.168/16, 100.64/10 shared, fc00::/7), loopback,
//! link-local, unspecified, broadcast, multicast and reserved ranges
//! that no remote attacker connects from, and the ranges the catalog
//! protects (`protected = ["203.0.113.0/24"]`: our own offices, monitoring).
//! Errors say why and suggest the likely meant form. Pure.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

/// An address range: `203.0.113.0/24`, `2001:db8::/32` (a bare address is /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Cidr, String> {
        let (a, p) = s.split_once('/').unwrap_or((s, ""));
        let addr: IpAddr = a
            .parse()
            .map_err(|_| format!("`{s}` is not an address range (write e.g. 203.0.113.0/24)"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            "" => max,
            p => p
                .parse::<u8>()
                .ok()
                .filter(|n| *n <= max)
                .ok_or_else(|| format!("`{s}`: the prefix length must be 0 to {max}"))?,
        };
        Ok(Cidr { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Cidr {
    /// Whether `ip` is inside the range (an IPv4 range never holds an IPv6 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(a)) => prefix_eq(&net.octets(), &a.octets(), self.prefix),
            (IpAddr::V6(net), IpAddr::V6(a)) => prefix_eq(&net.octets(), &a.octets(), self.prefix),
            _ => false,
        }
    }
}

/// The first `bits` bits of `a` and `b` agree.
fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let (whole, rest) = ((bits / 8) as usize, bits % 8);
    if a[..whole] != b[..whole] {
        return false;
    }
    rest == 0 || (a[whole] ^ b[whole]) >> (8 - rest) == 0
}

/// Ranges that are never a remote attacker's address, with what they are.
const NOT_PUBLIC: &[(&str, &str)] = &[
    ("0.0.0.0/8", "\"this network\" (unspecified)"),
    ("10.0.0.0/8", "private (RFC 1918)"),
    ("100.64.0.0/10", "shared address space (carrier-grade NAT)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("172.16.0.0/12", "private (RFC 1918)"),
    ("192.168.0.0/16", "private (RFC 1918)"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved (and broadcast)"),
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("fc00::/7", "private (unique local)"),
    ("fe80::/10", "link-local"),
    ("ff00::/8", "multicast"),
];

/// Checks `raw` as the `ip` argument `arg`: the canonical text of one public
/// address outside `protected`, or a sentence saying why not.
pub fn check(arg: &str, raw: &str, protected: &[Cidr]) -> Result<String, String> {
    let ip = parse(arg, raw)?;
    // `::ffff:10.0.0.1` is the IPv4 address 10.0.0.1.
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    for (range, what) in NOT_PUBLIC {
        let cidr: Cidr = range.parse().expect("a valid built-in range");
        if cidr.contains(ip) {
            return Err(format!(
                "{arg} `{ip}` is {what} ({cidr}): only a public address can be blocked"
            ));
        }
    }
    if let Some(c) = protected.iter().find(|c| c.contains(ip)) {
        return Err(format!(
            "{arg} `{ip}` is in the protected range {c} (the catalog never blocks it: offices, monitoring, our own hosts)"
        ));
    }
    Ok(ip.to_string())
}

/// One address, with a hint for the forms people paste (a range, a port,
/// brackets, zero-padded octets).
fn parse(arg: &str, raw: &str) -> Result<IpAddr, String> {
    let s = raw.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(ip);
    }
    let hint = likely_meant(s)
        .map(|m| format!(" (did you mean `{m}`?)"))
        .unwrap_or_default();
    let shown: String = s.chars().take(60).collect();
    Err(format!(
        "`{shown}` is not an IP address{hint}: {arg} takes one IPv4 (203.0.113.7) or IPv6 (2001:db8::7) address"
    ))
}

/// The address inside a pasted form: `1.2.3.4/32`, `1.2.3.4:443`,
/// `[2001:db8::1]:443`, `010.001.002.003`.
fn likely_meant(s: &str) -> Option<String> {
    let no_range = s.split_once('/').map_or(s, |(a, _)| a);
    let unbracketed = no_range
        .strip_prefix('[')
        .and_then(|r| r.split_once(']'))
        .map_or(no_range, |(a, _)| a);
    let candidates = [
        unbracketed.to_string(),
        unbracketed
            .rsplit_once(':')
            .map(|(a, _)| a.to_string())
            .unwrap_or_default(),
        unpadded(unbracketed).unwrap_or_default(),
    ];
    candidates
        .into_iter()
        .find(|c| !c.is_empty() && c != s && c.parse::<IpAddr>().is_ok())
}

/// `010.001.002.003` → `10.1.2.3` (zero padding, not octal).
fn unpadded(s: &str) -> Option<String> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() != 4 {
        return None;
    }
    let octets: Option<Vec<u8>> = parts.iter().map(|p| p.parse::<u8>().ok()).collect();
    let o = octets?;
    Some(Ipv4Addr::new(o[0], o[1], o[2], o[3]).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn protected() -> Vec<Cidr> {
        vec![
            "203.0.113.0/24".parse().unwrap(),
            "2001:db8:1::/48".parse().unwrap(),
        ]
    }

    fn ok(raw: &str) -> String {
        check("ip", raw, &protected()).unwrap_or_else(|e| panic!("{raw}: {e}"))
    }

    fn err(raw: &str) -> String {
        check("ip", raw, &protected()).expect_err(raw)
    }

    #[test]
    fn public_addresses_are_accepted_in_canonical_form() {
        assert_eq!(ok("198.51.100.7"), "198.51.100.7");
        assert_eq!(ok(" 8.8.8.8 "), "8.8.8.8");
        assert_eq!(ok("2001:0DB8:0002::0007"), "2001:db8:2::7");
        assert_eq!(ok("::ffff:8.8.4.4"), "8.8.4.4");
        assert_eq!(ok("172.32.0.1"), "172.32.0.1", "just outside 172.16/12");
        assert_eq!(ok("100.128.0.1"), "100.128.0.1", "just outside 100.64/10");
    }

    #[test]
    fn private_loopback_link_local_and_other_non_public_ranges_are_refused() {
        for (raw, what) in [
            ("10.1.2.3", "private (RFC 1918) (10.0.0.0/8)"),
            ("172.16.0.1", "private (RFC 1918) (172.16.0.0/12)"),
            ("172.31.255.255", "private (RFC 1918) (172.16.0.0/12)"),
            ("192.168.1.10", "private (RFC 1918) (192.168.0.0/16)"),
            (
                "100.64.0.1",
                "shared address space (carrier-grade NAT) (100.64.0.0/10)",
            ),
            ("127.0.0.1", "loopback (127.0.0.0/8)"),
            ("169.254.169.254", "link-local (169.254.0.0/16)"),
            ("0.0.0.0", "\"this network\" (unspecified) (0.0.0.0/8)"),
            ("255.255.255.255", "reserved (and broadcast) (240.0.0.0/4)"),
            ("239.1.1.1", "multicast (224.0.0.0/4)"),
            ("::1", "loopback (::1/128)"),
            ("::", "unspecified (::/128)"),
            ("fe80::1", "link-local (fe80::/10)"),
            ("fd12:3456::1", "private (unique local) (fc00::/7)"),
            ("ff02::1", "multicast (ff00::/8)"),
        ] {
            let ip = raw.parse::<IpAddr>().unwrap();
            assert_eq!(
                err(raw),
                format!("ip `{ip}` is {what}: only a public address can be blocked"),
                "{raw}"
            );
        }
        assert!(err("::ffff:192.168.0.1").starts_with("ip `192.168.0.1` is private"));
    }

    #[test]
    fn protected_ranges_are_refused_with_the_range() {
        assert_eq!(
            err("203.0.113.99"),
            "ip `203.0.113.99` is in the protected range 203.0.113.0/24 (the catalog never blocks it: offices, monitoring, our own hosts)"
        );
        assert!(err("2001:db8:1:ffff::1").contains("protected range 2001:db8:1::/48"));
        assert_eq!(ok("2001:db8:2::1"), "2001:db8:2::1");
    }

    #[test]
    fn pasted_forms_get_a_did_you_mean() {
        let hint = |raw: &str| {
            let e = err(raw);
            let rest = e.split("(did you mean ").nth(1)?;
            rest.split_once("?)").map(|(m, _)| m.to_string())
        };
        assert_eq!(hint("198.51.100.7/32").as_deref(), Some("`198.51.100.7`"));
        assert_eq!(hint("198.51.100.7:443").as_deref(), Some("`198.51.100.7`"));
        assert_eq!(hint("[2001:db8:2::1]:443").as_deref(), Some("`2001:db8:2::1`"));
        assert_eq!(hint("198.051.100.007").as_deref(), Some("`198.51.100.7`"));
        assert_eq!(
            err("198.51.100.7/32"),
            "`198.51.100.7/32` is not an IP address (did you mean `198.51.100.7`?): ip takes one IPv4 (203.0.113.7) or IPv6 (2001:db8::7) address"
        );
        assert_eq!(
            err("1.2.3.4; reboot"),
            "`1.2.3.4; reboot` is not an IP address: ip takes one IPv4 (203.0.113.7) or IPv6 (2001:db8::7) address"
        );
        assert_eq!(hint("example.com"), None);
        assert_eq!(hint("-1.2.3.4"), None);
    }

    #[test]
    fn ranges_parse_and_contain() {
        let c: Cidr = "10.20.0.0/16".parse().unwrap();
        assert!(c.contains("10.20.255.1".parse().unwrap()));
        assert!(!c.contains("10.21.0.1".parse().unwrap()));
        assert!(!c.contains("::1".parse().unwrap()));
        let c: Cidr = "1.2.3.4".parse().unwrap();
        assert_eq!(c.to_string(), "1.2.3.4/32");
        let c: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(c.contains("8.8.8.8".parse().unwrap()));
        assert_eq!(
            "10.0.0.0/33".parse::<Cidr>().unwrap_err(),
            "`10.0.0.0/33`: the prefix length must be 0 to 32"
        );
        assert!("nope/8".parse::<Cidr>().is_err());
    }
}
