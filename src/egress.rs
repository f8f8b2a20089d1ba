//! Outbound destination policy: the SSRF guard for customer-supplied URLs.
//!
//! authrelay sends requests to URLs its customers choose, from inside our network. Without a guard a
//! customer could point an action at `http://169.254.169.254/` (cloud metadata, which hands out instance
//! credentials), at `fd00:ec2::254`, at an admin port on loopback or at any private service next to us,
//! and read the answer back in the job result. So every address a request could reach is checked:
//!
//! - **Resolved addresses.** [`EgressPolicy::configure`] installs a DNS resolver that drops every
//!   non-public address before the connector sees it. The check happens on the very addresses the
//!   connector then dials, so a name that resolves differently on a second lookup (DNS rebinding)
//!   cannot slip past it.
//! - **IP literals.** reqwest (hyper-util's connector) never calls the resolver for a host that is
//!   already an IP address, so [`EgressPolicy::check_url`] must be called on every URL before sending.
//!   The redirect policy calls it on every hop.
//! - **Redirects.** Only same-origin redirects are followed (at most [`MAX_REDIRECTS`]); a redirect to
//!   another host is handed back as the 3xx response instead of being followed, so a public host
//!   cannot bounce us to an internal one.
//! - **Proxies.** Environment proxies (`HTTP_PROXY`, ...) are ignored: through a proxy the proxy does
//!   the resolving, and our resolver would only ever see the proxy's address.
//!
//! Operators can allow-list CIDRs (for example an internal API, or `127.0.0.1/32` in tests); the
//! allow-list wins over the block list.
//!
//! A client built with `configure` must not be given `ClientBuilder::resolve`/`resolve_to_addrs`
//! overrides or another `dns_resolver`: both bypass the filter.
//!
//! When a request fails because of this policy, [`find_egress_error`] digs the [`EgressError`] out
//! of the `reqwest::Error` so callers can classify the job as `destination_blocked` rather than as a
//! network failure worth retrying.

use std::error::Error as StdError;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::redirect;
use url::{Host, Url};

/// Redirects followed per request; a longer chain fails the request.
pub const MAX_REDIRECTS: usize = 5;

/// IPv4 ranges that are never a legitimate customer endpoint (RFC 6890 special-purpose registry and friends).
const BLOCKED_V4: &[Ipv4Net] = &[
    v4(0, 0, 0, 0, 8),          // "this network"; 0.0.0.0 reaches the local host on Linux
    v4(10, 0, 0, 0, 8),         // private
    v4(100, 64, 0, 0, 10),      // carrier-grade NAT, often internal infrastructure
    v4(127, 0, 0, 0, 8),        // loopback
    v4(169, 254, 0, 0, 16),     // link-local, including 169.254.169.254 cloud metadata
    v4(172, 16, 0, 0, 12),      // private
    v4(192, 0, 0, 0, 24),       // IETF protocol assignments
    v4(192, 0, 2, 0, 24),       // TEST-NET-1 documentation
    v4(192, 88, 99, 0, 24),     // deprecated 6to4 relay anycast
    v4(192, 168, 0, 0, 16),     // private
    v4(198, 18, 0, 0, 15),      // benchmarking
    v4(198, 51, 100, 0, 24),    // TEST-NET-2 documentation
    v4(203, 0, 113, 0, 24),     // TEST-NET-3 documentation
    v4(224, 0, 0, 0, 4),        // multicast
    v4(240, 0, 0, 0, 4),        // reserved
    v4(255, 255, 255, 255, 32), // limited broadcast (also inside 240/4; listed for the record)
];

/// IPv6 ranges that are never a legitimate customer endpoint. Anything outside 2000::/3 is refused as
/// well (see [`is_public_v6`]), so the entries outside it document intent more than they add coverage.
const BLOCKED_V6: &[Ipv6Net] = &[
    v6([0, 0, 0, 0, 0, 0, 0, 0], 128),         // unspecified
    v6([0, 0, 0, 0, 0, 0, 0, 1], 128),         // loopback
    v6([0, 0, 0, 0, 0, 0, 0, 0], 96),          // deprecated IPv4-compatible addresses
    v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48),  // local-use NAT64: translates into private networks
    v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64),      // discard-only
    v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 23),     // IETF special-purpose (Teredo, ORCHID, benchmarking, ...)
    v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32), // documentation
    v6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20),     // documentation (RFC 9637)
    v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7),      // unique local, including fd00:ec2::254 metadata
    v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10),     // link-local
    v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8),      // multicast
];

const GLOBAL_UNICAST_V6: Ipv6Net = v6([0x2000, 0, 0, 0, 0, 0, 0, 0], 3);
const MAPPED_V4: Ipv6Net = v6([0, 0, 0, 0, 0, 0xffff, 0, 0], 96);
const NAT64_WELL_KNOWN: Ipv6Net = v6([0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96);
const SIX_TO_FOUR: Ipv6Net = v6([0x2002, 0, 0, 0, 0, 0, 0, 0], 16);

const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> Ipv4Net {
    Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), prefix)
}

const fn v6(s: [u16; 8], prefix: u8) -> Ipv6Net {
    Ipv6Net::new_assert(Ipv6Addr::new(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]), prefix)
}

/// Why a destination was refused. Carried inside `reqwest::Error`s; see [`find_egress_error`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EgressError {
    #[error("destination address {0} is not allowed (private, loopback, link-local or reserved)")]
    Blocked(IpAddr),
    #[error("scheme `{0}` is not allowed; use http or https")]
    Scheme(String),
    #[error("URLs must not carry credentials")]
    Userinfo,
    #[error("the URL has no host")]
    NoHost,
    #[error("host `{0}` did not resolve to any address")]
    Unresolvable(String),
}

/// Which destinations outbound requests may reach: public unicast addresses, plus the allow-list.
#[derive(Debug, Clone)]
pub struct EgressPolicy {
    // Shared because every client's resolver and redirect policy hold a copy.
    allow: Arc<[IpNet]>,
}

impl EgressPolicy {
    pub fn new(allow: Vec<IpNet>) -> Self {
        Self { allow: allow.into() }
    }

    /// True for public unicast addresses, and for any address inside the allow-list.
    pub fn is_allowed(&self, ip: IpAddr) -> bool {
        if self.allow.iter().any(|net| net.contains(&ip)) {
            return true;
        }
        match ip {
            IpAddr::V4(v4) => is_public_v4(v4),
            // The packet really goes to the embedded IPv4 address, so that is what gets judged
            // (and what the allow-list is matched against).
            IpAddr::V6(v6) => match embedded_v4(v6) {
                Some(v4) => self.is_allowed(IpAddr::V4(v4)),
                None => is_public_v6(v6),
            },
        }
    }

    /// Checks what can be checked without resolving: scheme http/https, no userinfo, a host, and an
    /// IP-literal host against [`is_allowed`](Self::is_allowed) (reqwest skips the resolver for those,
    /// so this is the only check they get).
    pub fn check_url(&self, url: &Url) -> Result<(), EgressError> {
        match url.scheme() {
            "http" | "https" => {}
            other => return Err(EgressError::Scheme(other.to_owned())),
        }
        // Credentials in the URL would be sent as Basic auth behind the back of the Auth Profile.
        if !url.username().is_empty() || url.password().is_some() {
            return Err(EgressError::Userinfo);
        }
        let ip = match url.host() {
            None => return Err(EgressError::NoHost),
            Some(Host::Domain("")) => return Err(EgressError::NoHost),
            Some(Host::Domain(_)) => return Ok(()),
            Some(Host::Ipv4(v4)) => IpAddr::V4(v4),
            Some(Host::Ipv6(v6)) => IpAddr::V6(v6),
        };
        if self.is_allowed(ip) { Ok(()) } else { Err(EgressError::Blocked(ip)) }
    }

    /// Applies the policy to a reqwest client: no environment proxies, the filtering resolver, and the
    /// same-origin redirect policy. Callers must still run [`check_url`](Self::check_url) before each send.
    pub fn configure(&self, builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
        builder.no_proxy().dns_resolver(FilteringResolver { policy: self.clone() }).redirect(self.redirect_policy())
    }

    /// The client for target APIs: this policy, bounded connects, pooled connections.
    pub fn target_client(&self, connect_timeout: Duration) -> reqwest::Result<reqwest::Client> {
        self.target_client_builder(connect_timeout).build()
    }

    /// A builder for target API clients (a client certificate may still be added).
    pub fn target_client_builder(&self, connect_timeout: Duration) -> reqwest::ClientBuilder {
        self.configure(reqwest::Client::builder())
            .connect_timeout(connect_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(256)
            .user_agent(concat!("authrelay/", env!("CARGO_PKG_VERSION")))
    }

    /// The client for OAuth 2.0 token endpoints: this policy and no redirects
    /// at all, so a token request (with its client secret) is never re-sent elsewhere.
    pub fn token_endpoint_client(&self, connect_timeout: Duration) -> reqwest::Result<reqwest::Client> {
        self.token_endpoint_client_builder(connect_timeout).build()
    }

    /// A builder for token endpoint clients (a client certificate may still be added).
    pub fn token_endpoint_client_builder(&self, connect_timeout: Duration) -> reqwest::ClientBuilder {
        self.configure(reqwest::Client::builder()).redirect(redirect::Policy::none()).connect_timeout(connect_timeout)
    }

    fn redirect_policy(&self) -> redirect::Policy {
        let policy = self.clone();
        redirect::Policy::custom(move |attempt| {
            // reqwest always passes the original URL first; without it the origin is unknown, so fail closed.
            let Some(origin) = attempt.previous().first() else {
                return attempt.stop();
            };
            if !same_origin(origin, attempt.url()) {
                // Handing the 3xx back lets the caller see where it pointed without us going there.
                return attempt.stop();
            }
            if let Err(err) = policy.check_url(attempt.url()) {
                return attempt.error(err);
            }
            // `previous` holds the original URL plus every redirect already followed.
            if attempt.previous().len() > MAX_REDIRECTS {
                return attempt.error(TooManyRedirects);
            }
            attempt.follow()
        })
    }
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme() && a.host() == b.host() && a.port_or_known_default() == b.port_or_known_default()
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    !BLOCKED_V4.iter().any(|net| net.contains(&ip))
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    // Outside 2000::/3 everything is either special-purpose or unassigned; neither is a customer endpoint.
    GLOBAL_UNICAST_V6.contains(&ip) && !BLOCKED_V6.iter().any(|net| net.contains(&ip))
}

/// The IPv4 address a v6 address actually delivers to: IPv4-mapped (the kernel sends it as plain IPv4),
/// well-known NAT64 (the translator forwards to it) and 6to4 (the tunnel endpoint).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = ip.to_bits();
    if MAPPED_V4.contains(&ip) || NAT64_WELL_KNOWN.contains(&ip) {
        Some(Ipv4Addr::from_bits(bits as u32))
    } else if SIX_TO_FOUR.contains(&ip) {
        Some(Ipv4Addr::from_bits((bits >> 80) as u32))
    } else {
        None
    }
}

#[derive(Debug, thiserror::Error)]
#[error("too many redirects (more than {MAX_REDIRECTS})")]
struct TooManyRedirects;

/// Resolves through the system resolver and keeps only the addresses the policy allows, so the
/// connector can only ever dial addresses that passed the check.
struct FilteringResolver {
    policy: EgressPolicy,
}

impl Resolve for FilteringResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            // Port 0: reqwest replaces it with the URL's port.
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let (allowed, blocked): (Vec<SocketAddr>, Vec<SocketAddr>) =
                resolved.into_iter().partition(|addr| policy.is_allowed(addr.ip()));
            if allowed.is_empty() {
                // The error is boxed as EgressError itself (not wrapped), so find_egress_error can
                // downcast it out of reqwest's error chain.
                let err = match blocked.first() {
                    Some(addr) => EgressError::Blocked(addr.ip()),
                    None => EgressError::Unresolvable(host),
                };
                tracing::debug!(error = %err, "egress: refused destination");
                return Err(Box::new(err) as Box<dyn StdError + Send + Sync>);
            }
            if !blocked.is_empty() {
                tracing::debug!(host = %host, dropped = blocked.len(), "egress: dropped non-allowed addresses");
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// Finds the [`EgressError`] inside an error's `source()` chain, e.g. in the `reqwest::Error` returned by
/// `send()` when the resolver or the redirect policy refused the destination.
pub fn find_egress_error<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a EgressError> {
    let mut current = Some(err);
    // Bounded in case some error type's source() ever cycles.
    for _ in 0..64 {
        let e = current?;
        if let Some(found) = e.downcast_ref::<EgressError>() {
            return Some(found);
        }
        // io::Error::source() returns its payload's *source*, skipping the payload itself; an
        // EgressError wrapped directly in an io::Error would otherwise be invisible.
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(payload) = io.get_ref()
            && let Some(found) = payload.downcast_ref::<EgressError>()
        {
            return Some(found);
        }
        current = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("bad test address {s}: {e}"))
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap_or_else(|e| panic!("bad test network {s}: {e}"))
    }

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap_or_else(|e| panic!("bad test URL {s}: {e}"))
    }

    fn no_allow_list() -> EgressPolicy {
        EgressPolicy::new(vec![])
    }

    fn loopback_allowed() -> EgressPolicy {
        EgressPolicy::new(vec![net("127.0.0.1/32")])
    }

    /// Asserts every address in `addrs` is refused by `policy`, naming all offenders at once.
    fn assert_refused(policy: &EgressPolicy, addrs: &[&str]) {
        let wrongly_allowed: Vec<_> = addrs.iter().filter(|a| policy.is_allowed(ip(a))).collect();
        assert!(wrongly_allowed.is_empty(), "allowed but must be refused: {wrongly_allowed:?}");
    }

    fn assert_allowed(policy: &EgressPolicy, addrs: &[&str]) {
        let wrongly_refused: Vec<_> = addrs.iter().filter(|a| !policy.is_allowed(ip(a))).collect();
        assert!(wrongly_refused.is_empty(), "refused but must be allowed: {wrongly_refused:?}");
    }

    fn client(policy: &EgressPolicy) -> reqwest::Client {
        policy.configure(reqwest::Client::builder()).build().expect("client builds")
    }

    #[test]
    fn public_unicast_addresses_are_allowed() {
        assert_allowed(
            &no_allow_list(),
            &["8.8.8.8", "1.1.1.1", "93.184.215.14", "2606:4700:4700::1111", "2a00:1450:4001:82b::200e"],
        );
    }

    #[test]
    fn every_blocked_ipv4_range_is_refused_at_both_edges() {
        assert_refused(
            &no_allow_list(),
            &[
                "0.0.0.0",
                "0.255.255.255",
                "10.0.0.0",
                "10.255.255.255",
                "100.64.0.0",
                "100.127.255.255",
                "127.0.0.0",
                "127.0.0.1",
                "127.255.255.255",
                "169.254.0.0",
                "169.254.255.255",
                "172.16.0.0",
                "172.31.255.255",
                "192.0.0.0",
                "192.0.0.255",
                "192.0.2.0",
                "192.0.2.255",
                "192.168.0.0",
                "192.168.255.255",
                "198.18.0.0",
                "198.19.255.255",
                "198.51.100.0",
                "198.51.100.255",
                "203.0.113.0",
                "203.0.113.255",
                "224.0.0.0",
                "239.255.255.255",
                "240.0.0.0",
                "255.255.255.254",
                "255.255.255.255",
            ],
        );
    }

    #[test]
    fn addresses_just_outside_the_blocked_ipv4_ranges_are_allowed() {
        assert_allowed(
            &no_allow_list(),
            &[
                "1.0.0.0",
                "9.255.255.255",
                "11.0.0.0",
                "100.63.255.255",
                "100.128.0.0",
                "126.255.255.255",
                "128.0.0.0",
                "169.253.255.255",
                "169.255.0.0",
                "172.15.255.255",
                "172.32.0.0",
                "192.0.1.0",
                "192.0.3.0",
                "192.167.255.255",
                "192.169.0.0",
                "198.17.255.255",
                "198.20.0.0",
                "198.51.99.255",
                "198.51.101.0",
                "203.0.112.255",
                "203.0.114.0",
                "223.255.255.255",
            ],
        );
    }

    #[test]
    fn cloud_metadata_addresses_are_refused() {
        assert_refused(&no_allow_list(), &["169.254.169.254", "fd00:ec2::254", "::ffff:169.254.169.254"]);
    }

    #[test]
    fn every_blocked_ipv6_range_is_refused_at_both_edges() {
        assert_refused(
            &no_allow_list(),
            &[
                "::",
                "::1",
                "100::",
                "100::ffff:ffff:ffff:ffff",
                "2001::",
                "2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff",
                "2001::1",   // Teredo
                "2001:2::1", // benchmarking
                "2001:db8::",
                "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
                "3fff::1",
                "fc00::",
                "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                "fe80::",
                "fe80::1",
                "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                "ff00::",
                "ff02::1",
                "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            ],
        );
    }

    #[test]
    fn ipv6_outside_global_unicast_is_refused() {
        assert_refused(&no_allow_list(), &["::2", "1::1", "4000::1", "8000::1", "fec0::1", "64:ff9b:1::a00:1"]);
        assert_allowed(&no_allow_list(), &["2000::1", "2001:200::1", "2400:cb00::1", "3ffe::1"]);
    }

    #[test]
    fn ipv4_mapped_ipv6_is_judged_by_its_ipv4_address() {
        let policy = no_allow_list();
        assert_refused(
            &policy,
            &["::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:192.168.1.1", "::ffff:0.0.0.0", "::ffff:100.64.0.1"],
        );
        assert_allowed(&policy, &["::ffff:8.8.8.8", "::ffff:1.1.1.1"]);
    }

    #[test]
    fn nat64_addresses_are_judged_by_their_embedded_ipv4_address() {
        let policy = no_allow_list();
        assert_refused(&policy, &["64:ff9b::127.0.0.1", "64:ff9b::169.254.169.254", "64:ff9b::10.1.2.3"]);
        assert_allowed(&policy, &["64:ff9b::8.8.8.8"]);
    }

    #[test]
    fn six_to_four_addresses_are_judged_by_their_embedded_ipv4_address() {
        let policy = no_allow_list();
        // 2002:AABB:CCDD::/48 tunnels to AA.BB.CC.DD.
        assert_refused(&policy, &["2002:7f00:1::1", "2002:a9fe:a9fe::1", "2002:c0a8:101::1"]);
        assert_allowed(&policy, &["2002:808:808::1"]);
    }

    #[test]
    fn deprecated_ipv4_compatible_addresses_are_refused() {
        assert_refused(&no_allow_list(), &["::127.0.0.1", "::8.8.8.8", "::a9fe:a9fe"]);
    }

    #[test]
    fn loopback_is_refused_unless_allow_listed() {
        assert_refused(&no_allow_list(), &["127.0.0.1", "::1"]);
        let policy = loopback_allowed();
        assert_allowed(&policy, &["127.0.0.1"]);
        // Only the listed /32, not the rest of 127/8 nor IPv6 loopback.
        assert_refused(&policy, &["127.0.0.2", "::1"]);
    }

    #[test]
    fn the_allow_list_wins_over_the_block_list() {
        let policy = EgressPolicy::new(vec![net("10.1.2.0/24"), net("fd12:3456::/32"), net("169.254.169.254/32")]);
        assert_allowed(&policy, &["10.1.2.0", "10.1.2.255", "fd12:3456::1", "169.254.169.254", "8.8.8.8"]);
        assert_refused(&policy, &["10.1.3.0", "10.1.1.255", "fd12:3457::1", "169.254.169.253", "127.0.0.1"]);
    }

    #[test]
    fn an_ipv4_mapped_address_is_allowed_when_its_ipv4_address_is_allow_listed() {
        let policy = loopback_allowed();
        assert_allowed(&policy, &["::ffff:127.0.0.1", "64:ff9b::127.0.0.1"]);
        assert_refused(&policy, &["::ffff:127.0.0.2"]);
    }

    #[test]
    fn check_url_refuses_blocked_ip_literals() {
        let policy = no_allow_list();
        assert_eq!(policy.check_url(&url("http://127.0.0.2/")), Err(EgressError::Blocked(ip("127.0.0.2"))));
        assert_eq!(policy.check_url(&url("http://[::1]/")), Err(EgressError::Blocked(ip("::1"))));
        assert_eq!(
            policy.check_url(&url("http://169.254.169.254/latest/meta-data/")),
            Err(EgressError::Blocked(ip("169.254.169.254")))
        );
        assert_eq!(policy.check_url(&url("https://[fd00:ec2::254]/")), Err(EgressError::Blocked(ip("fd00:ec2::254"))));
        assert_eq!(
            policy.check_url(&url("http://[::ffff:127.0.0.1]:8080/")),
            Err(EgressError::Blocked(ip("::ffff:127.0.0.1")))
        );
    }

    #[test]
    fn check_url_sees_through_obfuscated_ipv4_literals() {
        // The URL parser normalises these to 127.0.0.1, and so does reqwest, which then skips the resolver.
        let policy = no_allow_list();
        for literal in
            ["http://0x7f000001/", "http://2130706433/", "http://127.1/", "http://0177.0.0.1/", "http://127.0.0.1./"]
        {
            assert_eq!(policy.check_url(&url(literal)), Err(EgressError::Blocked(ip("127.0.0.1"))), "{literal}");
        }
    }

    #[test]
    fn check_url_refuses_schemes_other_than_http_and_https() {
        let policy = no_allow_list();
        assert_eq!(policy.check_url(&url("ftp://x/")), Err(EgressError::Scheme("ftp".into())));
        assert_eq!(policy.check_url(&url("file:///etc/passwd")), Err(EgressError::Scheme("file".into())));
        assert_eq!(policy.check_url(&url("gopher://x/")), Err(EgressError::Scheme("gopher".into())));
    }

    #[test]
    fn check_url_refuses_credentials_in_the_url() {
        let policy = no_allow_list();
        assert_eq!(policy.check_url(&url("http://user:pw@example.com/")), Err(EgressError::Userinfo));
        assert_eq!(policy.check_url(&url("http://user@example.com/")), Err(EgressError::Userinfo));
        assert_eq!(policy.check_url(&url("http://:pw@example.com/")), Err(EgressError::Userinfo));
    }

    #[test]
    fn a_url_without_a_host_never_passes() {
        // http(s) URLs always have a host once parsed (`http:/path` even becomes host `path`), so a
        // host-less URL can only arrive with another scheme and is refused for that first.
        assert!(Url::parse("http://").is_err());
        assert_eq!(no_allow_list().check_url(&url("mailto:a@example.com")), Err(EgressError::Scheme("mailto".into())));
        assert_eq!(no_allow_list().check_url(&url("data:text/plain,hi")), Err(EgressError::Scheme("data".into())));
    }

    #[test]
    fn check_url_accepts_public_hosts_names_and_allow_listed_literals() {
        let policy = loopback_allowed();
        for ok in [
            "https://example.com/path?q=1",
            "http://8.8.8.8/",
            "https://[2606:4700:4700::1111]:8443/",
            "http://localhost/", // names are judged by the resolver, after resolution
            "http://127.0.0.1:8080/",
        ] {
            assert_eq!(policy.check_url(&url(ok)), Ok(()), "{ok}");
        }
    }

    #[test]
    fn find_egress_error_looks_inside_an_io_error_payload() {
        // io::Error::source() skips its own payload, so a plain source() walk would miss this one.
        let io = std::io::Error::other(EgressError::Blocked(ip("10.0.0.1")));
        assert_eq!(find_egress_error(&io), Some(&EgressError::Blocked(ip("10.0.0.1"))));
    }

    #[test]
    fn find_egress_error_finds_nothing_in_unrelated_errors() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(find_egress_error(&io), None);
        let parse = Url::parse("not a url").unwrap_err();
        assert_eq!(find_egress_error(&parse), None);
    }

    #[tokio::test]
    async fn the_resolver_keeps_only_allowed_addresses() {
        let resolver = FilteringResolver { policy: loopback_allowed() };
        let addrs: Vec<SocketAddr> =
            resolver.resolve(Name::from_str("localhost").unwrap()).await.expect("localhost resolves").collect();
        assert!(!addrs.is_empty());
        assert!(addrs.iter().all(|a| a.ip() == ip("127.0.0.1")), "{addrs:?}");
    }

    #[tokio::test]
    async fn the_resolver_refuses_a_name_with_only_blocked_addresses() {
        let resolver = FilteringResolver { policy: no_allow_list() };
        let err = match resolver.resolve(Name::from_str("localhost").unwrap()).await {
            Ok(addrs) => panic!("resolved to {:?}", addrs.collect::<Vec<_>>()),
            Err(err) => err,
        };
        assert!(matches!(find_egress_error(&*err), Some(EgressError::Blocked(a)) if a.is_loopback()), "{err:?}");
    }

    #[tokio::test]
    async fn a_request_to_allow_listed_loopback_reaches_the_server() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/hook"))
            .respond_with(ResponseTemplate::new(200))
            .expect(1)
            .mount(&server)
            .await;
        let policy = loopback_allowed();
        let target = url(&format!("{}/hook", server.uri()));
        policy.check_url(&target).expect("allow-listed literal passes");

        let response = client(&policy).get(target).send().await.expect("request succeeds");

        assert_eq!(response.status(), 200);
        server.verify().await;
    }

    #[tokio::test]
    async fn a_hostname_resolving_to_loopback_is_blocked_before_anything_is_sent() {
        let server = MockServer::start().await;
        Mock::given(method("GET")).respond_with(ResponseTemplate::new(200)).expect(0).mount(&server).await;
        let policy = no_allow_list();
        let port = server.address().port();
        let target = url(&format!("http://localhost:{port}/hook"));
        assert_eq!(policy.check_url(&target), Ok(()), "names pass check_url and are judged after resolution");

        let err = client(&policy).get(target).send().await.expect_err("must be refused");

        assert!(matches!(find_egress_error(&err), Some(EgressError::Blocked(a)) if a.is_loopback()), "{err:?}");
        server.verify().await;
    }

    #[tokio::test]
    async fn a_redirect_to_a_blocked_address_is_not_followed() {
        let server = MockServer::start().await;
        let port = server.address().port();
        Mock::given(method("GET"))
            .and(path("/start"))
            .respond_with(ResponseTemplate::new(302).insert_header("Location", format!("http://127.0.0.2:{port}/")))
            .expect(1)
            .mount(&server)
            .await;
        let policy = loopback_allowed();

        let response = client(&policy).get(format!("{}/start", server.uri())).send().await.expect("3xx is returned");

        // Cross-host redirects are handed back untouched; nothing listens on 127.0.0.2 either, so a
        // followed redirect would have failed to connect instead of returning the 302.
        assert_eq!(response.status(), 302);
        assert_eq!(response.url().path(), "/start");
        assert_eq!(response.headers()["location"], format!("http://127.0.0.2:{port}/").as_str());
        server.verify().await;
    }

    #[tokio::test]
    async fn a_redirect_to_another_host_is_returned_even_when_that_host_is_allowed() {
        let server = MockServer::start().await;
        let port = server.address().port();
        // `localhost` is another host by name, though it reaches the same allow-listed server.
        Mock::given(method("GET"))
            .and(path("/start"))
            .respond_with(
                ResponseTemplate::new(301).insert_header("Location", format!("http://localhost:{port}/other")),
            )
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/other"))
            .respond_with(ResponseTemplate::new(200))
            .expect(0)
            .mount(&server)
            .await;

        let response = client(&loopback_allowed()).get(format!("{}/start", server.uri())).send().await.expect("3xx");

        assert_eq!(response.status(), 301);
        server.verify().await;
    }

    #[tokio::test]
    async fn a_same_host_redirect_is_followed() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/old"))
            .respond_with(ResponseTemplate::new(302).insert_header("Location", "/new"))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/new"))
            .respond_with(ResponseTemplate::new(200))
            .expect(1)
            .mount(&server)
            .await;

        let response = client(&loopback_allowed()).get(format!("{}/old", server.uri())).send().await.expect("ok");

        assert_eq!(response.status(), 200);
        assert_eq!(response.url().path(), "/new");
        server.verify().await;
    }

    #[tokio::test]
    async fn a_same_host_redirect_that_fails_check_url_surfaces_the_egress_error() {
        let server = MockServer::start().await;
        let port = server.address().port();
        Mock::given(method("GET"))
            .and(path("/start"))
            .respond_with(
                ResponseTemplate::new(302).insert_header("Location", format!("http://user:pw@127.0.0.1:{port}/next")),
            )
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/next"))
            .respond_with(ResponseTemplate::new(200))
            .expect(0)
            .mount(&server)
            .await;

        let err = client(&loopback_allowed())
            .get(format!("{}/start", server.uri()))
            .send()
            .await
            .expect_err("redirect carrying credentials must fail");

        assert!(err.is_redirect(), "{err:?}");
        assert_eq!(find_egress_error(&err), Some(&EgressError::Userinfo), "{err:?}");
        server.verify().await;
    }

    #[tokio::test]
    async fn redirect_chains_longer_than_five_hops_fail() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/loop"))
            .respond_with(ResponseTemplate::new(302).insert_header("Location", "/loop"))
            // The original request plus five followed redirects.
            .expect(1 + MAX_REDIRECTS as u64)
            .mount(&server)
            .await;

        let err = client(&loopback_allowed()).get(format!("{}/loop", server.uri())).send().await.expect_err("loop");

        assert!(err.is_redirect(), "{err:?}");
        assert_eq!(find_egress_error(&err), None, "too many redirects is not a blocked destination");
        server.verify().await;
    }
}
