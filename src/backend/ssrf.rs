//! Server-side request forgery (SSRF) protection for live sync: before a
//! `ferry serve` instance contacts a caller-supplied *source* URL, this
//! module parses it, applies the `[sync]` rules (HTTPS only, no private or
//! metadata addresses unless configured, allow-listed origins exempt),
//! resolves the host once and classifies every address. The result, a
//! [`CheckedSource`], carries the vetted addresses that the client in
//! [`super::source`] is pinned to, so DNS is never consulted twice.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};

use url::{Host, Url};

use super::sync_config::{normalise_origin, SyncConfig};

/// A source URL that passed every check, with the addresses to dial.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedSource {
    /// The parsed URL (no credentials, query or fragment; may carry a path
    /// prefix that requests are joined under).
    pub url: Url,
    /// The host as written in the URL, lower-cased, without IPv6 brackets.
    pub host: String,
    /// The port, with the scheme's default filled in.
    pub port: u16,
    /// The vetted addresses (port set to [`CheckedSource::port`]); the only
    /// ones a connection may go to.
    pub addrs: Vec<SocketAddr>,
    /// Whether the origin is in `allowed_sources` (and so skipped the HTTPS
    /// and address rules).
    pub allow_listed: bool,
}

impl CheckedSource {
    /// The normalised origin, `scheme://host[:port]` without a default port.
    pub fn origin(&self) -> String {
        self.url.origin().ascii_serialization()
    }
}

/// Why an address may not be contacted without explicit configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Blocked {
    /// 127.0.0.0/8, `::1`.
    Loopback,
    /// RFC 1918 private ranges: 10/8, 172.16/12, 192.168/16 (and the
    /// deprecated IPv6 site-local fec0::/10).
    Private,
    /// 169.254/16, fe80::/10.
    LinkLocal,
    /// 100.64/10 shared address space (RFC 6598).
    CarrierGradeNat,
    /// fc00::/7 IPv6 unique-local addresses.
    UniqueLocal,
    /// 224/4, ff00::/8.
    Multicast,
    /// 0/8, `::`.
    Unspecified,
    /// A cloud instance-metadata or platform address (the table
    /// [`PLATFORM_ADDRESSES`]).
    CloudMetadata,
    /// 255.255.255.255.
    Broadcast,
    /// 240/4, 192.0.0/24, 198.18/15 and other ranges never used publicly.
    Reserved,
    /// 192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32.
    Documentation,
}

impl Blocked {
    /// A short human-readable name of the address class.
    pub fn name(&self) -> &'static str {
        match self {
            Blocked::Loopback => "loopback",
            Blocked::Private => "private",
            Blocked::LinkLocal => "link-local",
            Blocked::CarrierGradeNat => "carrier-grade NAT",
            Blocked::UniqueLocal => "unique-local",
            Blocked::Multicast => "multicast",
            Blocked::Unspecified => "unspecified",
            Blocked::CloudMetadata => "cloud metadata",
            Blocked::Broadcast => "broadcast",
            Blocked::Reserved => "reserved",
            Blocked::Documentation => "documentation",
        }
    }
}

impl fmt::Display for Blocked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a source URL was refused. Every check happens before any connection.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SsrfError {
    /// The URL does not parse, has no host, or has an unsupported scheme.
    #[error("source URL `{url}` is invalid: {reason}")]
    InvalidUrl {
        /// The URL (credentials redacted).
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The URL carries `user:password@`; credentials go in
    /// `X-Source-Authorization`, never in the URL.
    #[error("source URL `{url}` carries credentials (`user:password@`); pass them in the X-Source-Authorization header instead")]
    Credentials {
        /// The URL with the credentials redacted.
        url: String,
    },
    /// The URL has a query string or fragment; a source URL is a base.
    #[error(
        "source URL `{url}` has a {part}; give only scheme, host, port and an optional path prefix"
    )]
    QueryOrFragment {
        /// The URL (credentials redacted).
        url: String,
        /// `"query"` or `"fragment"`.
        part: &'static str,
    },
    /// Plain `http` while `require_https` is on and the origin is not
    /// allow-listed.
    #[error("source URL `{url}` is not HTTPS; set `require_https = false` in the [sync] table of the server config, or list the origin in `allowed_sources = [\"{origin}\"]`")]
    HttpsRequired {
        /// The URL.
        url: String,
        /// Its normalised origin.
        origin: String,
    },
    /// The host resolves to (or is) an address in a blocked class.
    #[error("source URL `{url}`: host `{host}` resolves to {addr}, a {class} address; set `allow_private_sources = true` in the [sync] table of the server config, or list the origin in `allowed_sources = [\"{origin}\"]`")]
    BlockedAddress {
        /// The URL.
        url: String,
        /// The host as written.
        host: String,
        /// The first blocked address.
        addr: IpAddr,
        /// Its class.
        class: Blocked,
        /// The URL's normalised origin.
        origin: String,
    },
    /// The host could not be resolved, or resolved to no address.
    #[error("source host `{host}` cannot be resolved: {reason}")]
    Resolve {
        /// The host.
        host: String,
        /// Why.
        reason: String,
    },
}

impl SsrfError {
    /// The `[sync]` setting that would allow the refused source, if any.
    pub fn setting(&self) -> Option<&'static str> {
        match self {
            SsrfError::HttpsRequired { .. } => Some("require_https"),
            SsrfError::BlockedAddress { .. } => Some("allow_private_sources"),
            _ => None,
        }
    }

    /// A stable machine-readable code for the refusal.
    pub fn code(&self) -> &'static str {
        match self {
            SsrfError::InvalidUrl { .. }
            | SsrfError::Credentials { .. }
            | SsrfError::QueryOrFragment { .. } => "source_url_invalid",
            SsrfError::HttpsRequired { .. } => "source_not_https",
            SsrfError::BlockedAddress { .. } => "source_address_blocked",
            SsrfError::Resolve { .. } => "source_unresolvable",
        }
    }
}

/// Check a source URL with the system resolver ([`ToSocketAddrs`]).
pub fn check_source(raw: &str, cfg: &SyncConfig) -> Result<CheckedSource, SsrfError> {
    check_source_with(raw, cfg, &|host, port| {
        (host, port).to_socket_addrs().map(|it| it.collect())
    })
}

/// Check a source URL, resolving host names with `resolve(host, port)`.
///
/// IP literals are never passed to `resolve`.
pub fn check_source_with(
    raw: &str,
    cfg: &SyncConfig,
    resolve: &dyn Fn(&str, u16) -> std::io::Result<Vec<SocketAddr>>,
) -> Result<CheckedSource, SsrfError> {
    let url = Url::parse(raw.trim()).map_err(|e| SsrfError::InvalidUrl {
        url: redact_raw(raw),
        reason: e.to_string(),
    })?;
    if !url.username().is_empty() || url.password().is_some() {
        let mut shown = url.clone();
        // Both setters succeed on http(s) URLs with a host; the scheme check
        // below would refuse anything else anyway.
        let _ = shown.set_username("***");
        let _ = shown.set_password(None);
        return Err(SsrfError::Credentials {
            url: shown.to_string(),
        });
    }
    let shown = url.to_string();
    match url.scheme() {
        "http" | "https" => {}
        other => {
            return Err(SsrfError::InvalidUrl {
                url: shown,
                reason: format!("scheme `{other}` is not http or https"),
            })
        }
    }
    if url.query().is_some() {
        return Err(SsrfError::QueryOrFragment {
            url: shown,
            part: "query",
        });
    }
    if url.fragment().is_some() {
        return Err(SsrfError::QueryOrFragment {
            url: shown,
            part: "fragment",
        });
    }
    let (host, literal) = match url.host() {
        Some(Host::Domain(d)) => (d.to_ascii_lowercase(), None),
        Some(Host::Ipv4(ip)) => (ip.to_string(), Some(IpAddr::V4(ip))),
        Some(Host::Ipv6(ip)) => (ip.to_string(), Some(IpAddr::V6(ip))),
        None => {
            return Err(SsrfError::InvalidUrl {
                url: shown,
                reason: "it has no host".to_string(),
            })
        }
    };
    let Some(port) = url.port_or_known_default() else {
        return Err(SsrfError::InvalidUrl {
            url: shown,
            reason: "it has no port".to_string(),
        });
    };
    let origin = url.origin().ascii_serialization();
    let allow_listed = cfg
        .allowed_sources
        .iter()
        .filter_map(|entry| normalise_origin(entry).ok())
        .any(|entry| entry == origin);

    if !allow_listed && cfg.require_https && url.scheme() == "http" {
        return Err(SsrfError::HttpsRequired { url: shown, origin });
    }

    let addrs: Vec<SocketAddr> = match literal {
        Some(ip) => vec![SocketAddr::new(ip, port)],
        None => {
            let found = resolve(&host, port).map_err(|e| SsrfError::Resolve {
                host: host.clone(),
                reason: e.to_string(),
            })?;
            found
                .into_iter()
                .map(|a| SocketAddr::new(a.ip(), port))
                .collect()
        }
    };
    if addrs.is_empty() {
        return Err(SsrfError::Resolve {
            host,
            reason: "no address found".to_string(),
        });
    }

    if !allow_listed && !cfg.allow_private_sources {
        for addr in &addrs {
            if let Some(class) = classify(addr.ip()) {
                return Err(SsrfError::BlockedAddress {
                    url: shown,
                    host,
                    addr: addr.ip(),
                    class,
                    origin,
                });
            }
        }
    }

    Ok(CheckedSource {
        url,
        host,
        port,
        addrs,
        allow_listed,
    })
}

/// The blocked class of `ip`, or `None` for an ordinary public address.
pub fn classify(ip: IpAddr) -> Option<Blocked> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

/// Cloud instance-metadata and platform addresses, with who serves them:
/// the one list of them. Each is [`Blocked::CloudMetadata`], whatever range
/// it sits in, and each has its own test.
pub const PLATFORM_ADDRESSES: &[(IpAddr, &str)] = &[
    (
        IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254)),
        "AWS, GCP, Azure and OpenStack instance metadata",
    ),
    (
        IpAddr::V4(Ipv4Addr::new(169, 254, 170, 2)),
        "AWS ECS task metadata and credentials",
    ),
    (
        IpAddr::V4(Ipv4Addr::new(168, 63, 129, 16)),
        "Azure platform (WireServer, DNS, health probes)",
    ),
    (
        IpAddr::V4(Ipv4Addr::new(100, 100, 100, 200)),
        "Alibaba Cloud instance metadata",
    ),
    (
        IpAddr::V4(Ipv4Addr::new(192, 0, 0, 192)),
        "Oracle Cloud instance metadata",
    ),
    (
        IpAddr::V6(Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254)),
        "AWS instance metadata over IPv6",
    ),
];

fn is_platform_address(ip: IpAddr) -> bool {
    PLATFORM_ADDRESSES.iter().any(|(a, _)| *a == ip)
}

fn classify_v4(ip: Ipv4Addr) -> Option<Blocked> {
    if is_platform_address(IpAddr::V4(ip)) {
        return Some(Blocked::CloudMetadata);
    }
    let o = ip.octets();
    let blocked = match o {
        [255, 255, 255, 255] => Blocked::Broadcast,
        [0, ..] => Blocked::Unspecified,
        [127, ..] => Blocked::Loopback,
        [10, ..] => Blocked::Private,
        [172, b, ..] if (16..=31).contains(&b) => Blocked::Private,
        [192, 168, ..] => Blocked::Private,
        [169, 254, ..] => Blocked::LinkLocal,
        [100, b, ..] if (64..=127).contains(&b) => Blocked::CarrierGradeNat,
        [a, ..] if (224..=239).contains(&a) => Blocked::Multicast,
        [a, ..] if a >= 240 => Blocked::Reserved,
        [192, 0, 0, _] => Blocked::Reserved,
        [198, b, ..] if b == 18 || b == 19 => Blocked::Reserved,
        [192, 0, 2, _] | [198, 51, 100, _] | [203, 0, 113, _] => Blocked::Documentation,
        _ => return None,
    };
    Some(blocked)
}

fn classify_v6(ip: Ipv6Addr) -> Option<Blocked> {
    // Addresses that embed an IPv4 address are judged by it.
    if let Some(v4) = embedded_v4(ip) {
        return classify_v4(v4);
    }
    let s = ip.segments();
    let blocked = if ip.is_unspecified() {
        Blocked::Unspecified
    } else if ip.is_loopback() {
        Blocked::Loopback
    } else if is_platform_address(IpAddr::V6(ip)) {
        Blocked::CloudMetadata
    } else if s[0] & 0xfe00 == 0xfc00 {
        Blocked::UniqueLocal
    } else if s[0] & 0xffc0 == 0xfe80 {
        Blocked::LinkLocal
    } else if s[0] & 0xffc0 == 0xfec0 {
        Blocked::Private
    } else if s[0] & 0xff00 == 0xff00 {
        Blocked::Multicast
    } else if s[0] == 0x2001 && s[1] == 0x0db8 {
        Blocked::Documentation
    } else if s[0] == 0x0100 && s[1..4] == [0, 0, 0] {
        // 100::/64 discard-only.
        Blocked::Reserved
    } else {
        return None;
    };
    Some(blocked)
}

/// The IPv4 address inside an IPv4-mapped (`::ffff:a.b.c.d`),
/// IPv4-compatible (`::a.b.c.d`), NAT64 (`64:ff9b::a.b.c.d`) or 6to4
/// (`2002:aabb:ccdd::`) IPv6 address.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let tail = || Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    // `::` and `::1` are IPv6's own unspecified and loopback addresses.
    if s[..6] == [0; 6] && !(ip.is_unspecified() || ip.is_loopback()) {
        return Some(tail());
    }
    if s[0] == 0x0064 && s[1] == 0xff9b && s[2..6] == [0; 4] {
        return Some(tail());
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ));
    }
    None
}

/// `raw` with anything between `://` and an `@` before the path replaced,
/// for error messages about URLs that did not parse.
fn redact_raw(raw: &str) -> String {
    let Some(start) = raw.find("://").map(|i| i + 3) else {
        return raw.to_string();
    };
    let rest = &raw[start..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}***{}", &raw[..start], &rest[at..]),
        None => raw.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    fn cfg() -> SyncConfig {
        SyncConfig::default()
    }

    fn no_dns(host: &str, _port: u16) -> io::Result<Vec<SocketAddr>> {
        panic!("resolver must not be consulted for {host}")
    }

    fn fake(ip: &'static str) -> impl Fn(&str, u16) -> io::Result<Vec<SocketAddr>> {
        move |_host, port| Ok(vec![SocketAddr::new(ip.parse().unwrap(), port)])
    }

    fn assert_names_setting(err: &SsrfError, setting: &str) {
        let msg = err.to_string();
        assert!(
            msg.contains(setting),
            "message does not name `{setting}`: {msg}"
        );
        assert_eq!(err.setting(), Some(setting));
    }

    #[test]
    fn plain_http_needs_https_setting() {
        let err = check_source_with("http://example.com", &cfg(), &no_dns).unwrap_err();
        assert!(matches!(err, SsrfError::HttpsRequired { .. }), "{err:?}");
        assert_eq!(err.code(), "source_not_https");
        assert_names_setting(&err, "require_https");
        let msg = err.to_string();
        assert!(msg.contains("require_https = false"), "{msg}");
        assert!(msg.contains("[sync]"), "{msg}");
        assert!(
            msg.contains("allowed_sources = [\"http://example.com\"]"),
            "{msg}"
        );
    }

    #[test]
    fn private_literals_are_refused_by_default() {
        let cases = [
            ("https://127.0.0.1", Blocked::Loopback),
            ("https://127.0.0.1:8443/eddi", Blocked::Loopback),
            ("https://10.0.0.1", Blocked::Private),
            ("https://172.16.5.4", Blocked::Private),
            ("https://192.168.1.1", Blocked::Private),
            ("https://169.254.169.254", Blocked::CloudMetadata),
            ("https://169.254.1.1", Blocked::LinkLocal),
            ("https://100.100.100.200", Blocked::CloudMetadata),
            ("https://[::1]", Blocked::Loopback),
            ("https://[::]", Blocked::Unspecified),
            ("https://0.0.0.0", Blocked::Unspecified),
            ("https://100.64.0.1", Blocked::CarrierGradeNat),
            ("https://[fd00::1]", Blocked::UniqueLocal),
            ("https://[fe80::1]", Blocked::LinkLocal),
            ("https://[ff02::1]", Blocked::Multicast),
            ("https://224.0.0.1", Blocked::Multicast),
            ("https://255.255.255.255", Blocked::Broadcast),
            ("https://240.0.0.1", Blocked::Reserved),
            ("https://[fd00:ec2::254]", Blocked::CloudMetadata),
            ("https://[::ffff:127.0.0.1]", Blocked::Loopback),
            ("https://[::ffff:169.254.169.254]", Blocked::CloudMetadata),
            ("https://[64:ff9b::a00:1]", Blocked::Private),
            ("https://[2002:7f00:1::]", Blocked::Loopback),
            // Numeric host spellings are normalised by the URL parser.
            ("https://2130706433", Blocked::Loopback),
            ("https://0x7f.1", Blocked::Loopback),
        ];
        for (raw, class) in cases {
            let err = check_source_with(raw, &cfg(), &no_dns).unwrap_err();
            match &err {
                SsrfError::BlockedAddress { class: got, .. } => {
                    assert_eq!(*got, class, "{raw}")
                }
                other => panic!("{raw}: unexpected {other:?}"),
            }
            assert_eq!(err.code(), "source_address_blocked");
            assert_names_setting(&err, "allow_private_sources");
            let msg = err.to_string();
            assert!(msg.contains("allow_private_sources = true"), "{msg}");
            assert!(msg.contains("allowed_sources = [\"https://"), "{msg}");
        }
    }

    #[test]
    fn host_name_resolving_to_loopback_is_refused() {
        let err =
            check_source_with("https://innocent.example", &cfg(), &fake("127.0.0.1")).unwrap_err();
        match &err {
            SsrfError::BlockedAddress {
                host, addr, class, ..
            } => {
                assert_eq!(host, "innocent.example");
                assert_eq!(addr.to_string(), "127.0.0.1");
                assert_eq!(*class, Blocked::Loopback);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_names_setting(&err, "allow_private_sources");
        assert!(err.to_string().contains("innocent.example"));
    }

    #[test]
    fn any_blocked_address_among_several_refuses() {
        let resolve = |_: &str, port: u16| {
            Ok(vec![
                SocketAddr::new("93.184.215.14".parse().unwrap(), port),
                SocketAddr::new("10.1.2.3".parse().unwrap(), port),
            ])
        };
        let err = check_source_with("https://mixed.example", &cfg(), &resolve).unwrap_err();
        assert!(matches!(
            err,
            SsrfError::BlockedAddress {
                class: Blocked::Private,
                ..
            }
        ));
    }

    #[test]
    fn public_https_is_allowed_with_resolved_addrs() {
        let checked = check_source_with(
            "https://Source.Example/eddi",
            &cfg(),
            &fake("93.184.215.14"),
        )
        .unwrap();
        assert_eq!(checked.host, "source.example");
        assert_eq!(checked.port, 443);
        assert_eq!(checked.addrs, vec!["93.184.215.14:443".parse().unwrap()]);
        assert!(!checked.allow_listed);
        assert_eq!(checked.origin(), "https://source.example");
        assert_eq!(checked.url.path(), "/eddi");
    }

    #[test]
    fn resolver_port_is_overridden_with_the_url_port() {
        let resolve = |_: &str, _: u16| Ok(vec!["93.184.215.14:1".parse().unwrap()]);
        let checked = check_source_with("https://s.example:8443", &cfg(), &resolve).unwrap();
        assert_eq!(checked.addrs, vec!["93.184.215.14:8443".parse().unwrap()]);
    }

    #[test]
    fn allow_private_sources_allows_private_addresses() {
        let cfg = SyncConfig {
            allow_private_sources: true,
            ..SyncConfig::default()
        };
        let checked = check_source_with("https://10.0.0.1", &cfg, &no_dns).unwrap();
        assert_eq!(checked.addrs, vec!["10.0.0.1:443".parse().unwrap()]);
        assert!(!checked.allow_listed);
        // The HTTPS rule still applies.
        let err = check_source_with("http://10.0.0.1", &cfg, &no_dns).unwrap_err();
        assert_eq!(err.code(), "source_not_https");
    }

    #[test]
    fn allow_listed_origin_skips_https_and_address_rules() {
        let cfg = SyncConfig {
            allowed_sources: vec!["http://127.0.0.1:7071/".to_string()],
            ..SyncConfig::default()
        };
        let checked = check_source_with("http://127.0.0.1:7071/eddi", &cfg, &no_dns).unwrap();
        assert!(checked.allow_listed);
        assert_eq!(checked.addrs, vec!["127.0.0.1:7071".parse().unwrap()]);
        // Another port of the same host is not covered.
        let err = check_source_with("http://127.0.0.1:7072", &cfg, &no_dns).unwrap_err();
        assert_eq!(err.code(), "source_not_https");
        let err = check_source_with("https://127.0.0.1:7071", &cfg, &no_dns).unwrap_err();
        assert_eq!(err.code(), "source_address_blocked");
    }

    #[test]
    fn allow_listed_comparison_is_normalised() {
        let cfg = SyncConfig {
            allowed_sources: vec!["HTTPS://Internal.Example:443".to_string()],
            ..SyncConfig::default()
        };
        let checked =
            check_source_with("https://internal.example/", &cfg, &fake("10.9.9.9")).unwrap();
        assert!(checked.allow_listed);
        assert_eq!(checked.addrs, vec!["10.9.9.9:443".parse().unwrap()]);
    }

    #[test]
    fn bad_urls_are_invalid() {
        for raw in [
            "not a url",
            "ftp://example.com",
            "file:///etc/passwd",
            "https://",
        ] {
            let err = check_source_with(raw, &cfg(), &no_dns).unwrap_err();
            assert_eq!(err.code(), "source_url_invalid", "{raw}: {err}");
            assert_eq!(err.setting(), None);
        }
    }

    #[test]
    fn credentials_are_refused_and_not_echoed() {
        let err =
            check_source_with("https://admin:hunter2@example.com", &cfg(), &no_dns).unwrap_err();
        assert!(matches!(err, SsrfError::Credentials { .. }));
        assert_eq!(err.code(), "source_url_invalid");
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("admin"), "{shown}");
        // Even when the URL does not parse.
        let err =
            check_source_with("https://admin:hunter2@exa mple.com", &cfg(), &no_dns).unwrap_err();
        assert!(!format!("{err} {err:?}").contains("hunter2"), "{err}");
    }

    #[test]
    fn query_and_fragment_are_refused() {
        let err = check_source_with("https://example.com/?x=1", &cfg(), &no_dns).unwrap_err();
        assert!(matches!(
            err,
            SsrfError::QueryOrFragment { part: "query", .. }
        ));
        assert!(err.to_string().contains("query"));
        let err = check_source_with("https://example.com/#top", &cfg(), &no_dns).unwrap_err();
        assert!(matches!(
            err,
            SsrfError::QueryOrFragment {
                part: "fragment",
                ..
            }
        ));
    }

    #[test]
    fn resolution_failures_are_reported() {
        let failing = |_: &str, _: u16| Err(io::Error::other("no such host"));
        let err = check_source_with("https://nowhere.example", &cfg(), &failing).unwrap_err();
        assert_eq!(err.code(), "source_unresolvable");
        assert!(err.to_string().contains("nowhere.example"), "{err}");
        let empty = |_: &str, _: u16| Ok(Vec::new());
        let err = check_source_with("https://nowhere.example", &cfg(), &empty).unwrap_err();
        assert!(matches!(err, SsrfError::Resolve { .. }));
    }

    #[test]
    fn system_resolver_handles_literals() {
        let err = check_source("https://[::1]:9", &cfg()).unwrap_err();
        assert_eq!(err.code(), "source_address_blocked");
    }

    #[test]
    fn classify_public_addresses_as_none() {
        for ip in [
            "93.184.215.14",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
        ] {
            assert_eq!(classify(ip.parse().unwrap()), None, "{ip}");
        }
        assert_eq!(
            classify("192.0.2.1".parse().unwrap()),
            Some(Blocked::Documentation)
        );
        assert_eq!(
            classify("198.18.0.1".parse().unwrap()),
            Some(Blocked::Reserved)
        );
        assert_eq!(
            classify("172.31.255.255".parse().unwrap()),
            Some(Blocked::Private)
        );
    }

    /// One test per entry of [`PLATFORM_ADDRESSES`]: the address itself, and
    /// (for IPv4) its IPv4-mapped IPv6 form, are refused as cloud metadata.
    macro_rules! platform_address_tests {
        ($($name:ident: $addr:literal,)*) => {
            $(
                #[test]
                fn $name() {
                    let ip: IpAddr = $addr.parse().unwrap();
                    assert!(
                        PLATFORM_ADDRESSES.iter().any(|(a, _)| *a == ip),
                        "{ip} is not in the table"
                    );
                    let mut forms = vec![match ip {
                        IpAddr::V4(v4) => format!("https://{v4}"),
                        IpAddr::V6(v6) => format!("https://[{v6}]"),
                    }];
                    if let IpAddr::V4(v4) = ip {
                        forms.push(format!("https://[::ffff:{v4}]"));
                    }
                    for raw in forms {
                        match check_source_with(&raw, &cfg(), &no_dns) {
                            Err(SsrfError::BlockedAddress { class, .. }) => {
                                assert_eq!(class, Blocked::CloudMetadata, "{raw}")
                            }
                            other => panic!("{raw}: {other:?}"),
                        }
                    }
                }
            )*
            #[test]
            fn every_platform_address_has_its_test() {
                let tested: Vec<IpAddr> = vec![$($addr.parse().unwrap(),)*];
                for (ip, platform) in PLATFORM_ADDRESSES {
                    assert!(tested.contains(ip), "no test for {ip} ({platform})");
                }
                assert_eq!(tested.len(), PLATFORM_ADDRESSES.len());
            }
        };
    }

    platform_address_tests! {
        platform_aws_gcp_azure_instance_metadata: "169.254.169.254",
        platform_aws_ecs_task_metadata: "169.254.170.2",
        platform_aws_imds_ipv6: "fd00:ec2::254",
        platform_azure_wireserver: "168.63.129.16",
        platform_alibaba_metadata: "100.100.100.200",
        platform_oracle_metadata: "192.0.0.192",
    }

    #[test]
    fn redact_raw_hides_userinfo() {
        assert_eq!(redact_raw("https://u:p@h x/y"), "https://***@h x/y");
        assert_eq!(redact_raw("https://h/a@b"), "https://h/a@b");
        assert_eq!(redact_raw("nonsense"), "nonsense");
    }
}
