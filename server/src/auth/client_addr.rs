//! The client's real address behind the reverse proxies the operator trusts: `X-Forwarded-For`
//! is read only when the TCP peer is one of them, from the right, past the trusted hops. The
//! login throttle keys on this address.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use axum::http::HeaderMap;

/// The header a proxy appends the address it received the request from to.
pub const FORWARDED_FOR: &str = "x-forwarded-for";

/// An address block: `10.0.0.0/8`, `2001:db8::/32`, or one address (`192.0.2.7`, `::1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// The block's first address: host bits cleared, IPv4-mapped IPv6 written as IPv4.
    base: IpAddr,
    prefix: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an IP address or an address block like 10.0.0.0/8 or 2001:db8::/32")]
pub struct BadCidr(String);

impl FromStr for Cidr {
    type Err = BadCidr;

    fn from_str(s: &str) -> Result<Self, BadCidr> {
        let bad = || BadCidr(s.to_owned());
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s.trim(), None),
        };
        let addr = IpAddr::from_str(addr).map_err(|_| bad())?;
        let bits = bits_of(addr);
        let prefix = match prefix {
            // Digits only: `u8::from_str` would take a leading `+`.
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().map_err(|_| bad())?
            }
            Some(_) => return Err(bad()),
            None => bits,
        };
        if prefix > bits {
            return Err(bad());
        }
        // An IPv4-mapped block (`::ffff:10.0.0.0/104`) is the IPv4 block it maps.
        let (addr, prefix) = match addr {
            IpAddr::V6(v6) if prefix >= 96 => match v6.to_ipv4_mapped() {
                Some(v4) => (IpAddr::V4(v4), prefix - 96),
                None => (addr, prefix),
            },
            _ => (addr, prefix),
        };
        Ok(Cidr {
            base: masked(addr, prefix),
            prefix,
        })
    }
}

impl<'de> serde::Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

impl Cidr {
    pub fn contains(&self, addr: IpAddr) -> bool {
        let addr = addr.to_canonical();
        addr.is_ipv4() == self.base.is_ipv4() && masked(addr, self.prefix) == self.base
    }
}

fn bits_of(addr: IpAddr) -> u8 {
    if addr.is_ipv4() { 32 } else { 128 }
}

/// `addr` with every bit past the first `prefix` cleared.
fn masked(addr: IpAddr, prefix: u8) -> IpAddr {
    let prefix = u32::from(prefix);
    match addr {
        IpAddr::V4(v4) => {
            let mask = u32::MAX
                .checked_shl(32u32.saturating_sub(prefix))
                .unwrap_or(0);
            IpAddr::V4((u32::from(v4) & mask).into())
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX
                .checked_shl(128u32.saturating_sub(prefix))
                .unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
        }
    }
}

/// The proxies whose `X-Forwarded-For` the server believes. Empty (the default): the TCP peer
/// is the client, and the header is ignored, since anyone can send it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    pub fn new(blocks: Vec<Cidr>) -> Self {
        TrustedProxies(blocks)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn trusts(&self, addr: IpAddr) -> bool {
        self.0.iter().any(|block| block.contains(addr))
    }

    /// The client behind a request that arrived from `peer`. Each trusted proxy appends the
    /// address it heard from, so the list is read from the right, and the first address that
    /// is not a trusted proxy is the client; what lies left of it, the client could have
    /// written itself. A header that cannot be read where it matters leaves the peer: a
    /// misconfigured proxy costs its clients a shared throttle, never an error.
    pub fn client_addr(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return peer;
        }
        let mut leftmost = None;
        // Several header lines are one list, in order (RFC 9110 §5.3).
        for line in headers.get_all(FORWARDED_FOR).iter().rev() {
            let Ok(line) = line.to_str() else {
                return peer;
            };
            for hop in line.rsplit(',') {
                let Some(addr) = parse_hop(hop) else {
                    return peer;
                };
                if !self.trusts(addr) {
                    return addr;
                }
                leftmost = Some(addr);
            }
        }
        // Every hop is a trusted proxy: the request began inside, at the first of them.
        leftmost.unwrap_or(peer)
    }
}

/// The blocks, comma-separated; `none` when empty.
impl fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        let blocks: Vec<String> = self.0.iter().map(Cidr::to_string).collect();
        f.write_str(&blocks.join(","))
    }
}

/// One `X-Forwarded-For` entry: an address, with or without a port (`[v6]:port`, `v4:port`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    let addr = IpAddr::from_str(hop)
        .ok()
        .or_else(|| SocketAddr::from_str(hop).ok().map(|s| s.ip()))
        .or_else(|| {
            let inner = hop.strip_prefix('[')?.strip_suffix(']')?;
            Ipv6Addr::from_str(inner).ok().map(IpAddr::V6)
        })?;
    Some(addr.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use proptest::prelude::*;

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    fn proxies(blocks: &[&str]) -> TrustedProxies {
        TrustedProxies::new(blocks.iter().map(|b| cidr(b)).collect())
    }

    fn forwarded(lines: &[&[u8]]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append(
                FORWARDED_FOR,
                HeaderValue::from_bytes(line).expect("header value"),
            );
        }
        headers
    }

    #[test]
    fn blocks_and_single_addresses_parse_and_contain_what_they_should() {
        let block = cidr("10.1.0.0/16");
        assert!(block.contains(ip("10.1.255.3")));
        assert!(!block.contains(ip("10.2.0.1")));
        assert!(block.contains(ip("::ffff:10.1.0.9")), "IPv4-mapped");
        assert_eq!(cidr("10.1.2.3/16"), block, "host bits are ignored");
        assert!(cidr("192.0.2.7").contains(ip("192.0.2.7")));
        assert!(!cidr("192.0.2.7").contains(ip("192.0.2.8")));
        assert!(cidr("2001:db8::/32").contains(ip("2001:db8:ffff::1")));
        assert!(!cidr("2001:db8::/32").contains(ip("2001:db9::1")));
        assert!(cidr("::1").contains(ip("::1")));
        assert!(cidr("0.0.0.0/0").contains(ip("203.0.113.1")));
        assert!(
            !cidr("0.0.0.0/0").contains(ip("2001:db8::1")),
            "no family mixing"
        );
        assert!(cidr("::/0").contains(ip("2001:db8::1")));
        assert_eq!(cidr("::ffff:10.0.0.0/104"), cidr("10.0.0.0/8"));
        assert_eq!(cidr(" 10.0.0.0/8 ").to_string(), "10.0.0.0/8");
    }

    #[test]
    fn malformed_blocks_are_refused() {
        for bad in [
            "",
            " ",
            "/8",
            "10.0.0.0/",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/8/8",
            "10.0.0.0/+8",
            "10.0.0.0/-1",
            "10.0.0.0/ 8",
            "10.0.0.0/0008",
            "10.0.0",
            "10.0.0.256",
            "localhost",
            "10.0.0.0/999999999999999999999",
            "[::1]",
            "::1%eth0",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn the_header_of_an_untrusted_peer_is_ignored() {
        let trusted = proxies(&["10.0.0.1"]);
        let headers = forwarded(&[b"198.51.100.7"]);
        assert_eq!(
            trusted.client_addr(ip("203.0.113.5"), &headers),
            ip("203.0.113.5")
        );
        assert_eq!(
            TrustedProxies::default().client_addr(ip("10.0.0.1"), &headers),
            ip("10.0.0.1"),
            "no proxies configured"
        );
    }

    #[test]
    fn the_rightmost_address_that_is_no_trusted_proxy_is_the_client() {
        let trusted = proxies(&["10.0.0.0/24", "2001:db8:1::/48"]);
        let peer = ip("10.0.0.1");
        let cases: &[(&[&[u8]], &str)] = &[
            (&[b"198.51.100.7"], "198.51.100.7"),
            // What the client wrote itself sits left of what the proxy appended.
            (&[b"1.2.3.4, 198.51.100.7"], "198.51.100.7"),
            (&[b"garbage, 198.51.100.7"], "198.51.100.7"),
            (&[b"198.51.100.7, 10.0.0.9"], "198.51.100.7"),
            (&[b"1.2.3.4", b"198.51.100.7, 10.0.0.9"], "198.51.100.7"),
            (&[b"1.2.3.4, 10.0.0.9", b"10.0.0.8"], "1.2.3.4"),
            (&[b"198.51.100.7:5123"], "198.51.100.7"),
            (&[b"[2001:db8:9::5]:443"], "2001:db8:9::5"),
            (&[b"[2001:db8:9::5]"], "2001:db8:9::5"),
            (&[b"2001:db8:9::5,2001:db8:1::2"], "2001:db8:9::5"),
            (&[b"::ffff:198.51.100.7"], "198.51.100.7"),
            (&[b"  198.51.100.7  "], "198.51.100.7"),
            // Only trusted hops: the first of them.
            (&[b"10.0.0.7, 10.0.0.9"], "10.0.0.7"),
        ];
        for (lines, want) in cases {
            assert_eq!(
                trusted.client_addr(peer, &forwarded(lines)),
                ip(want),
                "{lines:?}"
            );
        }
    }

    #[test]
    fn a_hostile_or_broken_header_falls_back_to_the_peer() {
        let trusted = proxies(&["10.0.0.0/24"]);
        let peer = ip("10.0.0.1");
        let long = "9".repeat(100_000);
        let many = vec!["10.0.0.2"; 10_000].join(",");
        let hostile: &[&[u8]] = &[
            b"",
            b",",
            b" , ",
            b"unknown",
            b"_hidden",
            b"198.51.100.7, ",
            b"198.51.100.7,,",
            b"198.51.100.7 garbage",
            b"999.1.1.1",
            b"198.51.100.7:99999",
            b"[198.51.100.7]",
            b"[::1",
            b"::1]",
            b"fe80::1%eth0",
            b"for=198.51.100.7",
            b"\"198.51.100.7\"",
            b"198.51.100.7\t;drop",
            b"\xff\xfe198.51.100.7",
            long.as_bytes(),
        ];
        for value in hostile {
            assert_eq!(
                trusted.client_addr(peer, &forwarded(&[value])),
                peer,
                "{:?}",
                String::from_utf8_lossy(value)
            );
        }
        assert_eq!(trusted.client_addr(peer, &HeaderMap::new()), peer);
        assert_eq!(
            trusted.client_addr(peer, &forwarded(&[many.as_bytes()])),
            ip("10.0.0.2")
        );
        assert_eq!(
            trusted.client_addr(ip("::ffff:10.0.0.1"), &forwarded(&[b"198.51.100.7"])),
            ip("198.51.100.7"),
            "an IPv4 proxy seen on a dual-stack socket"
        );
    }

    proptest! {
        #[test]
        fn any_header_yields_the_peer_or_an_address_it_names(value in proptest::collection::vec(any::<u8>(), 0..200)) {
            let trusted = proxies(&["10.0.0.0/8"]);
            let peer = ip("10.0.0.1");
            let Ok(header) = HeaderValue::from_bytes(&value) else {
                return Ok(());
            };
            let mut headers = HeaderMap::new();
            headers.insert(FORWARDED_FOR, header);
            let got = trusted.client_addr(peer, &headers);
            let text = String::from_utf8_lossy(&value);
            prop_assert!(
                got == peer || text.split(',').filter_map(parse_hop).any(|a| a == got),
                "{got} from {text:?}"
            );
        }

        #[test]
        fn the_client_is_the_address_the_last_untrusted_hop_appended(
            spoofed in "[ -~]{0,40}",
            client in any::<[u8; 4]>().prop_filter("not a proxy", |a| a[0] != 10),
        ) {
            let trusted = proxies(&["10.0.0.0/8"]);
            let client = IpAddr::from(client);
            let value = format!("{spoofed},{client}, 10.1.2.3");
            let headers = forwarded(&[value.as_bytes()]);
            prop_assert_eq!(trusted.client_addr(ip("10.0.0.1"), &headers), client);
        }
    }
}
