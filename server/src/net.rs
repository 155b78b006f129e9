//! Address ranges (`10.0.0.0/8`, `fd00::/8`, a lone address) as an operator writes them in
//! Rampart's settings: the webhook egress allowance and the trusted proxies (a leaf).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// A block of addresses, `10.0.0.0/8` or `fd00::/8` (a lone address is its own block).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpRange {
    base: IpAddr,
    prefix: u8,
}

impl IpRange {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.base, unmapped(ip)) {
            (IpAddr::V4(base), IpAddr::V4(ip)) => prefix_match(u32::from(base).into(), u32::from(ip).into(), 32, self.prefix),
            (IpAddr::V6(base), IpAddr::V6(ip)) => prefix_match(u128::from(base), u128::from(ip), 128, self.prefix),
            _ => false,
        }
    }
}

fn prefix_match(base: u128, ip: u128, bits: u8, prefix: u8) -> bool {
    if prefix == 0 {
        return true;
    }
    let Some(shift) = bits.checked_sub(prefix).map(u32::from) else { return false };
    shift >= u32::from(bits) || base >> shift == ip >> shift
}

impl FromStr for IpRange {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (address, prefix) = text.split_once('/').unwrap_or((text, ""));
        let base: IpAddr = address.parse().map_err(|_| format!("`{text}` is not an address range like 10.0.0.0/8"))?;
        let bits = if base.is_ipv4() { 32 } else { 128 };
        let prefix = if prefix.is_empty() {
            bits
        } else {
            prefix.parse::<u8>().ok().filter(|p| *p <= bits).ok_or_else(|| format!("`{text}`: the prefix must be 0 to {bits}"))?
        };
        // `::ffff:10.0.0.2/120` is the IPv4 range 10.0.0.0/24: the mapped form is kept as IPv4,
        // with its prefix counted in IPv4 bits (a prefix inside the mapping prefix is refused).
        match (base, unmapped(base)) {
            (IpAddr::V6(_), IpAddr::V4(v4)) => {
                let prefix = prefix.checked_sub(96).ok_or_else(|| format!("`{text}`: an IPv4-mapped range needs a prefix of 96 to 128"))?;
                Ok(IpRange { base: IpAddr::V4(v4), prefix })
            }
            _ => Ok(IpRange { base, prefix }),
        }
    }
}

impl fmt::Display for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

/// `::ffff:10.0.0.1` is 10.0.0.1.
pub fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// A list of ranges: `10.0.0.0/8, 127.0.0.1` (empty: none).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IpRanges(pub Vec<IpRange>);

impl IpRanges {
    pub fn parse(list: &str) -> Result<IpRanges, String> {
        list.split(',').filter(|s| !s.trim().is_empty()).map(str::parse).collect::<Result<_, _>>().map(IpRanges)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|r| r.contains(ip))
    }
}

/// The client's address: the peer's, unless the peer is a trusted proxy; then the nearest
/// address in `X-Forwarded-For` (read from the right, the proxies' own end) that is not itself
/// a trusted proxy. A header a client wrote for itself is never believed: only what the trusted
/// proxies appended.
pub fn client_address(peer: IpAddr, forwarded_for: &[&str], proxies: &IpRanges) -> IpAddr {
    if !proxies.contains(peer) {
        return peer;
    }
    let chain: Vec<&str> = forwarded_for.iter().flat_map(|v| v.split(',')).map(str::trim).collect();
    let mut nearest = peer;
    for hop in chain.iter().rev() {
        // An address, or one with a port (`203.0.113.9:51234`, `[2001:db8::1]:443`), as some
        // load balancers write it.
        let Some(ip) = hop.parse::<IpAddr>().ok().or_else(|| hop.parse::<std::net::SocketAddr>().ok().map(|a| a.ip())) else { break };
        nearest = unmapped(ip);
        if !proxies.contains(nearest) {
            break;
        }
    }
    nearest
}

/// Whether the request came over HTTPS (the proxy in front says so): HSTS in
/// `http::headers`, the session cookie's name and `Secure` flag in `auth` and `http::auth`.
/// The header is believed because [`drop_untrusted_forwarding`] removed it from every request
/// that did not come from a trusted proxy.
pub fn over_https(headers: &axum::http::HeaderMap) -> bool {
    headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

/// Removes `X-Forwarded-Proto` from a request whose peer is not one of `proxies`: only a
/// proxy in front of Rampart may say the client came over HTTPS (and so choose HSTS and the
/// `__Host-` session cookie). `X-Forwarded-For` is weighed hop by hop in [`client_address`].
pub fn drop_untrusted_forwarding(headers: &mut axum::http::HeaderMap, peer: Option<IpAddr>, proxies: &IpRanges) {
    if !peer.is_some_and(|peer| proxies.contains(unmapped(peer))) {
        headers.remove("x-forwarded-proto");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forwarded_address_is_believed_only_from_a_trusted_proxy() {
        let proxies = IpRanges::parse("10.0.0.0/8").unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // Not from a proxy: the header is the client's own words.
        assert_eq!(client_address(ip("203.0.113.9"), &["1.2.3.4"], &proxies), ip("203.0.113.9"));
        // From the proxy: the nearest untrusted hop, whatever the client put before it.
        assert_eq!(client_address(ip("10.0.0.2"), &["1.2.3.4, 198.51.100.7"], &proxies), ip("198.51.100.7"));
        assert_eq!(client_address(ip("10.0.0.2"), &["1.2.3.4", "198.51.100.7, 10.0.0.3"], &proxies), ip("198.51.100.7"));
        // Garbage stops the walk at the last good hop; no header leaves the proxy's address.
        assert_eq!(client_address(ip("10.0.0.2"), &["nonsense, 198.51.100.7"], &proxies), ip("198.51.100.7"));
        assert_eq!(client_address(ip("10.0.0.2"), &[], &proxies), ip("10.0.0.2"));
        assert_eq!(client_address(ip("10.0.0.2"), &["::ffff:198.51.100.7"], &proxies), ip("198.51.100.7"));
        assert_eq!(client_address(ip("10.0.0.2"), &["198.51.100.7:51234"], &proxies), ip("198.51.100.7"));
        assert_eq!(client_address(ip("10.0.0.2"), &["[2001:db8::1]:443"], &proxies), ip("2001:db8::1"));
    }

    #[test]
    fn a_range_in_ipv4_mapped_form_is_the_ipv4_range_and_nothing_wider() {
        // Review: `::ffff:10.0.0.2` once parsed with an IPv6 prefix of 128 on an IPv4 base, and
        // matched every IPv4 address.
        let one = IpRanges::parse("::ffff:10.0.0.2").unwrap();
        assert!(one.contains("10.0.0.2".parse().unwrap()) && one.contains("::ffff:10.0.0.2".parse().unwrap()));
        assert!(!one.contains("10.0.0.3".parse().unwrap()) && !one.contains("169.254.169.254".parse().unwrap()));
        let block = IpRanges::parse("::ffff:10.0.0.0/120").unwrap();
        assert!(block.contains("10.0.0.77".parse().unwrap()) && !block.contains("10.0.1.1".parse().unwrap()));
        assert!(IpRanges::parse("::ffff:10.0.0.0/64").unwrap_err().contains("96 to 128"));
        assert!(IpRanges::parse("0.0.0.0/0").unwrap().contains("8.8.8.8".parse().unwrap()));
        assert!(!IpRanges::parse("10.0.0.0/8").unwrap().contains("::1".parse().unwrap()));
    }
}
