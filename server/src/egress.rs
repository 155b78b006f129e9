//! Where Rampart may send a request of its own (a webhook delivery): never to this machine, its
//! private network or the cloud's metadata service unless an operator allows that range, and
//! to the very address that was checked (a host name is resolved once, checked, and the
//! connection pinned to that address, so DNS cannot be re-bound between the check and the
//! request). Redirects are never followed (the dispatcher's client refuses them).

use crate::net::{IpRanges, unmapped};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Why an address is not one to send to by default, if it is not.
pub fn special(ip: IpAddr) -> Option<&'static str> {
    match unmapped(ip) {
        IpAddr::V4(v4) => special_v4(v4),
        IpAddr::V6(v6) => special_v6(v6),
    }
}

fn special_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() {
        Some("a loopback address (this machine)")
    } else if ip.is_private() {
        Some("a private address")
    } else if ip.is_link_local() {
        Some("a link-local address (where cloud metadata services answer)")
    } else if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() || a == 0 {
        Some("not a host's address")
    } else if a == 100 && (64..128).contains(&b) {
        Some("a carrier-grade NAT address")
    } else if a >= 240 || (a == 192 && b == 0 && ip.octets()[2] == 0) || (a == 198 && (18..20).contains(&b)) {
        Some("a reserved or benchmarking address")
    } else {
        None
    }
}

fn special_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    if ip.is_loopback() {
        Some("a loopback address (this machine)")
    } else if ip.is_unspecified() || ip.is_multicast() {
        Some("not a host's address")
    } else if first & 0xfe00 == 0xfc00 {
        Some("a private (unique local) address")
    } else if first & 0xffc0 == 0xfe80 || first & 0xffc0 == 0xfec0 {
        Some("a link-local or site-local address")
    } else if ip.segments()[..6] == [0; 6]
        || (first == 0x64 && ip.segments()[1] == 0xff9b)
        || first == 0x2002
        || (first == 0x2001 && ip.segments()[1] == 0)
    {
        // IPv4-compatible, NAT64, 6to4 and Teredo addresses carry an IPv4 address (which may be
        // a private one) that a gateway will reach.
        Some("an address that embeds an IPv4 address (NAT64, 6to4, Teredo)")
    } else {
        None
    }
}

/// The ranges an operator allows beyond the public internet (`RAMPART_WEBHOOK_ALLOW`), and the
/// certificate authorities trusted besides the public ones (`RAMPART_WEBHOOK_CA`).
#[derive(Clone, Debug, Default)]
pub struct Egress {
    pub allowed: IpRanges,
    pub roots: Roots,
}

/// Certificate authorities a webhook receiver's certificate may chain to besides the public
/// (Mozilla) roots: an organisation's internal CA. Receivers are always verified.
#[derive(Clone, Debug, Default)]
pub struct Roots(Vec<reqwest::Certificate>);

impl Roots {
    /// Reads a PEM file of one or more certificates; an empty path is no extra root.
    pub fn read(path: &str) -> Result<Roots, String> {
        if path.trim().is_empty() {
            return Ok(Roots::default());
        }
        let pem = std::fs::read(path).map_err(|e| format!("RAMPART_WEBHOOK_CA: cannot read {path}: {e}"))?;
        match reqwest::Certificate::from_pem_bundle(&pem) {
            Ok(roots) if !roots.is_empty() => Ok(Roots(roots)),
            Ok(_) => Err(format!("RAMPART_WEBHOOK_CA: {path} holds no PEM certificate")),
            Err(e) => Err(format!("RAMPART_WEBHOOK_CA: {path}: {e}")),
        }
    }

    /// `builder`, trusting these roots too.
    pub fn trusted_by(&self, builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
        self.0.iter().cloned().fold(builder, reqwest::ClientBuilder::add_root_certificate)
    }
}

impl Egress {
    /// Parses `10.0.0.0/8, 127.0.0.1`.
    pub fn parse(list: &str) -> Result<Egress, String> {
        Ok(Egress { allowed: IpRanges::parse(list)?, roots: Roots::default() })
    }

    /// Whether `ip` may be sent to; the reason when not.
    pub fn check(&self, ip: IpAddr) -> Result<(), String> {
        match special(ip) {
            Some(why) if !self.allowed.contains(ip) => {
                Err(format!("{ip} is {why}: refused (an operator may allow its range with RAMPART_WEBHOOK_ALLOW)"))
            }
            _ => Ok(()),
        }
    }

    /// What can be known of a URL before sending: an address in it must be allowed, and
    /// `localhost` is this machine whatever DNS says.
    pub fn check_url(&self, url: &reqwest::Url) -> Result<(), String> {
        let host = host(url)?;
        match host.parse::<IpAddr>() {
            Ok(ip) => self.check(ip),
            Err(_) if is_localhost(host) => self.check(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            Err(_) => Ok(()),
        }
    }

    /// Resolves the URL's host once and returns the first address allowed, to connect to.
    pub async fn resolve(&self, url: &reqwest::Url) -> Result<SocketAddr, String> {
        self.check_url(url)?;
        let port = url.port_or_known_default().ok_or("the URL has no port")?;
        let addresses: Vec<SocketAddr> =
            tokio::net::lookup_host((host(url)?, port)).await.map_err(|_| "the host name does not resolve".to_string())?.collect();
        let mut refused = None;
        for address in addresses {
            match self.check(address.ip()) {
                Ok(()) => return Ok(address),
                Err(why) => refused = Some(why),
            }
        }
        Err(refused.unwrap_or_else(|| "the host name has no address".into()))
    }
}

/// The URL's host as an address or a name (an IPv6 address without its brackets).
fn host(url: &reqwest::Url) -> Result<&str, String> {
    let host = url.host_str().ok_or("the URL has no host")?;
    Ok(host.trim_start_matches('[').trim_end_matches(']'))
}

fn is_localhost(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_addresses_are_refused_unless_their_range_is_allowed() {
        let none = Egress::default();
        for refused in [
            "127.0.0.1",
            "127.8.9.10",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:5",
            "::127.0.0.1",
            "2002:a00:1::1",
            "2001:0:4136:e378::1",
            "fec0::1",
            "240.0.0.1",
            "198.18.0.1",
            "192.0.0.8",
        ] {
            let ip: IpAddr = refused.parse().unwrap();
            assert!(none.check(ip).is_err(), "{refused} must be refused");
        }
        for allowed in ["93.184.216.34", "172.32.0.1", "100.128.0.1", "2606:4700::1111", "8.8.8.8"] {
            assert_eq!(none.check(allowed.parse().unwrap()), Ok(()), "{allowed}");
        }
        let lab = Egress::parse("10.0.0.0/8, 127.0.0.1").unwrap();
        assert_eq!(lab.check("10.200.0.1".parse().unwrap()), Ok(()));
        assert_eq!(lab.check("127.0.0.1".parse().unwrap()), Ok(()));
        assert_eq!(lab.check("::ffff:127.0.0.1".parse().unwrap()), Ok(()), "the mapped form is the same address");
        assert!(lab.check("127.0.0.2".parse().unwrap()).is_err());
        assert!(lab.check("192.168.0.1".parse().unwrap()).unwrap_err().contains("192.168.0.1 is a private address: refused"));
        assert_eq!(Egress::parse("10.0.0.0/33").unwrap_err(), "`10.0.0.0/33`: the prefix must be 0 to 32");
        assert!(Egress::parse("ten").unwrap_err().contains("not an address range"));
        assert_eq!(Egress::parse("").unwrap().allowed, IpRanges::default());
        assert_eq!("fd00::/8".parse::<crate::net::IpRange>().unwrap().to_string(), "fd00::/8");
        assert!("0.0.0.0/0".parse::<crate::net::IpRange>().unwrap().contains("1.2.3.4".parse().unwrap()));
    }

    #[test]
    fn a_url_naming_this_machine_is_refused_before_anything_is_sent() {
        let none = Egress::default();
        let url = |u: &str| reqwest::Url::parse(u).unwrap();
        assert!(none.check_url(&url("http://localhost:8080/hook")).is_err());
        assert!(none.check_url(&url("http://LOCALHOST./hook")).is_err());
        assert!(none.check_url(&url("http://api.localhost/hook")).is_err());
        assert!(none.check_url(&url("http://[::1]/hook")).is_err());
        assert!(none.check_url(&url("http://169.254.169.254/latest/meta-data")).is_err());
        assert!(none.check_url(&url("http://2130706433/")).is_err(), "127.0.0.1 written as a number");
        assert_eq!(none.check_url(&url("https://chat.example/hook")), Ok(()));
    }
}
