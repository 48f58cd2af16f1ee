//! Capabilities: what an automation's workflow may reach outside its
//! sandbox. Deny by default: an automation without a grant reaches no host
//! and reads no secret.
//!
//! The field as the API shows and takes it:
//!
//! ```json
//! "capabilities": {
//!   "http": {"allowed_hosts": ["https://hooks.example.com", "api.example.com:8443", "127.0.0.1:9000"]},
//!   "secrets": ["SLACK_WEBHOOK"]
//! }
//! ```
//!
//! An `allowed_hosts` entry is `host`, `host:port` or `scheme://host[:port]`
//! ([`HostPattern`]); a request matches an entry when its host is the
//! entry's (case-insensitive), its scheme is the entry's (either `http` or
//! `https` when the entry names none) and its port is the entry's, or the
//! scheme's default port (80, 443) when the entry names none. Entries are
//! stored in canonical form (lower case, IPv6 in brackets), each once.
//!
//! Also here, because they are rules rather than IO: which addresses are
//! private ([`is_private`]) and the message a refused request gets
//! ([`not_allowed_message`]).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Most entries in `capabilities.http.allowed_hosts`.
pub const MAX_ALLOWED_HOSTS: usize = 64;
/// Most names in `capabilities.secrets`.
pub const MAX_SECRETS: usize = 64;
/// Longest secret name, in bytes.
pub const MAX_SECRET_NAME_LEN: usize = 64;
/// Longest `allowed_hosts` entry, in bytes (a DNS name is at most 253, plus
/// scheme and port).
const MAX_ENTRY_LEN: usize = 300;

/// An automation's grant. The default grants nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    /// Outbound HTTP (`wasi:http`): the hosts the workflow may call.
    #[serde(default)]
    pub http: HttpGrant,
    /// Names of the app's secrets the workflow may read (`secrets.get`); see
    /// [`check_secret_name`] for the naming rule.
    #[serde(default)]
    #[schema(example = json!(["SLACK_WEBHOOK"]))]
    pub secrets: Vec<String>,
}

/// The outbound HTTP part of a grant.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpGrant {
    /// Hosts the workflow may send requests to: `host`, `host:port` or
    /// `scheme://host[:port]` (scheme `http` or `https`). Empty: none.
    #[serde(default)]
    #[schema(example = json!(["https://hooks.example.com", "api.example.com:8443"]))]
    pub allowed_hosts: Vec<String>,
}

/// A grant entry that is not well formed: a 400 naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid `{field}`: {message}")]
pub struct CapabilityError {
    /// `capabilities.http.allowed_hosts` or `capabilities.secrets`.
    pub field: &'static str,
    /// What is wrong, naming the entry.
    pub message: String,
}

const HOSTS_FIELD: &str = "capabilities.http.allowed_hosts";
const SECRETS_FIELD: &str = "capabilities.secrets";

impl Capabilities {
    /// The grant with every entry checked and put in canonical form (host
    /// entries lower-cased, IPv6 bracketed; repeats dropped, first kept).
    /// Errors name the field and the entry.
    pub fn normalized(&self) -> Result<Capabilities, CapabilityError> {
        let hosts_error = |message: String| CapabilityError {
            field: HOSTS_FIELD,
            message,
        };
        if self.http.allowed_hosts.len() > MAX_ALLOWED_HOSTS {
            return Err(hosts_error(format!(
                "lists {} hosts; at most {MAX_ALLOWED_HOSTS} are allowed",
                self.http.allowed_hosts.len()
            )));
        }
        let mut allowed_hosts: Vec<String> = Vec::new();
        for entry in &self.http.allowed_hosts {
            let canonical = entry
                .parse::<HostPattern>()
                .map_err(|e| hosts_error(e.to_string()))?
                .to_string();
            if !allowed_hosts.contains(&canonical) {
                allowed_hosts.push(canonical);
            }
        }
        if self.secrets.len() > MAX_SECRETS {
            return Err(CapabilityError {
                field: SECRETS_FIELD,
                message: format!(
                    "lists {} secrets; at most {MAX_SECRETS} are allowed",
                    self.secrets.len()
                ),
            });
        }
        let mut secrets: Vec<String> = Vec::new();
        for name in &self.secrets {
            check_secret_name(name).map_err(|message| CapabilityError {
                field: SECRETS_FIELD,
                message,
            })?;
            if !secrets.contains(name) {
                secrets.push(name.clone());
            }
        }
        Ok(Capabilities {
            http: HttpGrant { allowed_hosts },
            secrets,
        })
    }

    /// Whether the workflow may make outbound HTTP requests at all.
    pub fn grants_http(&self) -> bool {
        !self.http.allowed_hosts.is_empty()
    }

    /// Whether the workflow may read the secret `name` (exact, case-sensitive).
    pub fn grants_secret(&self, name: &str) -> bool {
        self.secrets.iter().any(|s| s == name)
    }

    /// The HTTP allow-list as a matcher. Entries that do not parse (a record
    /// stored by a future version) are left out: they allow nothing.
    pub fn allow_list(&self) -> AllowList {
        AllowList {
            entries: self
                .http
                .allowed_hosts
                .iter()
                .filter_map(|entry| entry.parse().ok())
                .collect(),
        }
    }
}

/// Checks a secret's name: 1–64 characters of `A-Z`, `0-9` and `_`, not
/// starting with a digit — like an environment variable, so a name reads the
/// same in a grant, a CLI argument and a log line.
pub fn check_secret_name(name: &str) -> Result<(), String> {
    let well_formed = !name.is_empty()
        && name.len() <= MAX_SECRET_NAME_LEN
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    if well_formed {
        return Ok(());
    }
    let shown: String = name
        .chars()
        .take(80)
        .collect::<String>()
        .escape_debug()
        .to_string();
    Err(format!(
        "`{shown}` is not a secret name: use 1-{MAX_SECRET_NAME_LEN} characters of A-Z, 0-9 \
         and `_`, not starting with a digit (e.g. SLACK_WEBHOOK)"
    ))
}

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    /// The port a URL of this scheme means when it names none.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }

    /// `http` or `https`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// A host: a DNS name (lower case, ASCII) or an IP address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    Name(String),
    Ip(IpAddr),
}

impl Host {
    /// Parses the host of a URL or an entry: an IPv4 address, an IPv6
    /// address in brackets, or a DNS name (one trailing dot is dropped).
    pub fn parse(text: &str) -> Result<Host, String> {
        if let Some(inner) = text.strip_prefix('[') {
            let inner = inner.strip_suffix(']').ok_or_else(|| {
                format!("`{text}` opens an IPv6 address with `[` but does not close it")
            })?;
            return inner
                .parse::<Ipv6Addr>()
                .map(|ip| Host::Ip(IpAddr::V6(ip)))
                .map_err(|_| format!("`{inner}` is not an IPv6 address"));
        }
        if let Ok(ip) = text.parse::<Ipv4Addr>() {
            return Ok(Host::Ip(IpAddr::V4(ip)));
        }
        if text.parse::<Ipv6Addr>().is_ok() {
            return Err(format!(
                "write the IPv6 address `{text}` in brackets: `[{text}]`"
            ));
        }
        let name = text.strip_suffix('.').unwrap_or(text).to_ascii_lowercase();
        if !name.is_ascii() {
            return Err(format!(
                "`{text}` is not an ASCII host name; write an internationalised name in its \
                 punycode form (`xn--…`)"
            ));
        }
        let labels_ok = !name.is_empty()
            && name.len() <= 253
            && name.split('.').all(|label| {
                (1..=63).contains(&label.len())
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
        // A name of digits and dots only would be read as an address by
        // resolvers (`1.2.3`): refused rather than guessed at.
        let numeric = name.bytes().all(|b| b.is_ascii_digit() || b == b'.');
        if !labels_ok || numeric {
            let shown: String = text
                .chars()
                .take(80)
                .collect::<String>()
                .escape_debug()
                .to_string();
            return Err(format!("`{shown}` is not a host name or IP address"));
        }
        Ok(Host::Name(name))
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(name) => f.write_str(name),
            Host::Ip(IpAddr::V4(ip)) => write!(f, "{ip}"),
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
        }
    }
}

/// One `allowed_hosts` entry: `host`, `host:port` or `scheme://host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    /// `None`: either `http` or `https`.
    pub scheme: Option<Scheme>,
    pub host: Host,
    /// `None`: the scheme's default port.
    pub port: Option<u16>,
}

impl HostPattern {
    /// Whether a request to `scheme://host:port` matches this entry.
    pub fn matches(&self, scheme: Scheme, host: &Host, port: u16) -> bool {
        self.scheme.is_none_or(|s| s == scheme)
            && self.port.unwrap_or(scheme.default_port()) == port
            && self.host == *host
    }
}

impl FromStr for HostPattern {
    type Err = String;

    fn from_str(entry: &str) -> Result<Self, String> {
        let shown = || {
            entry
                .chars()
                .take(80)
                .collect::<String>()
                .escape_debug()
                .to_string()
        };
        if entry.is_empty() {
            return Err("an entry is empty; give a host such as `api.example.com`".into());
        }
        if entry.len() > MAX_ENTRY_LEN {
            return Err(format!(
                "an entry is {} bytes; at most {MAX_ENTRY_LEN} are allowed",
                entry.len()
            ));
        }
        if entry.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "`{}` contains whitespace or control characters",
                shown()
            ));
        }
        let (scheme, rest) = match entry.split_once("://") {
            Some((scheme, rest)) => {
                let scheme = match scheme.to_ascii_lowercase().as_str() {
                    "http" => Scheme::Http,
                    "https" => Scheme::Https,
                    _ => {
                        return Err(format!(
                            "`{}`: the scheme must be `http` or `https`",
                            shown()
                        ));
                    }
                };
                (Some(scheme), rest)
            }
            None => (None, entry),
        };
        if rest.contains(['/', '?', '#']) {
            let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
            let hint = match scheme {
                Some(scheme) => format!("{}://{authority}", scheme.as_str()),
                None => authority.to_owned(),
            };
            return Err(format!(
                "`{}` has a path, query or fragment; an entry names a host, not a URL (`{hint}`)",
                shown()
            ));
        }
        if rest.contains('@') {
            return Err(format!(
                "`{}` has user information (`user@`); an entry names a host only",
                shown()
            ));
        }
        if rest.contains('*') {
            return Err(format!(
                "`{}`: wildcards are not supported; list each host",
                shown()
            ));
        }
        let (host, port) = split_host_port(rest).map_err(|e| format!("`{}`: {e}", shown()))?;
        let host = Host::parse(host)?;
        Ok(HostPattern { scheme, host, port })
    }
}

/// `host[:port]` → host text and port; IPv6 hosts in brackets.
fn split_host_port(authority: &str) -> Result<(&str, Option<u16>), String> {
    let (host, port) = if authority.starts_with('[') {
        match authority.find(']') {
            Some(end) => {
                let (host, after) = authority.split_at(end + 1);
                match after.strip_prefix(':') {
                    Some(port) => (host, Some(port)),
                    None if after.is_empty() => (host, None),
                    None => return Err(format!("unexpected `{after}` after the IPv6 address")),
                }
            }
            None => return Err("an IPv6 address opened with `[` is not closed".into()),
        }
    } else if authority.matches(':').count() > 1 {
        // A bare IPv6 address: left for the host parser's hint.
        (authority, None)
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(port) => match port.parse::<u16>() {
            Ok(port) if port > 0 => Some(port),
            _ => return Err(format!("`{port}` is not a port (1-65535)")),
        },
        None => None,
    };
    Ok((host, port))
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(scheme) = self.scheme {
            write!(f, "{}://", scheme.as_str())?;
        }
        write!(f, "{}", self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        Ok(())
    }
}

/// The parsed `allowed_hosts` of a grant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    entries: Vec<HostPattern>,
}

impl AllowList {
    /// Whether any entry allows `scheme://host:port`.
    pub fn allows(&self, scheme: Scheme, host: &Host, port: u16) -> bool {
        self.entries.iter().any(|e| e.matches(scheme, host, port))
    }

    /// Whether an entry names the IP address `ip` literally, for this
    /// scheme and port: the operator meant that address and port, so it is
    /// reached even when it is private — by the literal address or by a
    /// granted name resolving to it, but never on another port (naming
    /// `127.0.0.1:9000` opens 127.0.0.1:9000, not the rest of loopback).
    pub fn names_address(&self, scheme: Scheme, ip: IpAddr, port: u16) -> bool {
        let ip = canonical_ip(ip);
        self.entries.iter().any(|e| {
            matches!(e.host, Host::Ip(named) if canonical_ip(named) == ip)
                && e.scheme.is_none_or(|s| s == scheme)
                && e.port.unwrap_or(scheme.default_port()) == port
        })
    }

    /// Whether the list allows nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The entry that would allow a request to `scheme://host:port`: the host
/// alone on the scheme's default port, else `host:port`.
pub fn entry_for(scheme: Scheme, host: &Host, port: u16) -> String {
    if port == scheme.default_port() {
        host.to_string()
    } else {
        format!("{host}:{port}")
    }
}

/// What a guest is told when a request's host is not granted: the host, and
/// the grant that would allow it.
pub fn not_allowed_message(scheme: Scheme, host: &Host, port: u16) -> String {
    format!(
        "{}://{}: host not allowed; add \"{}\" to capabilities.http.allowed_hosts",
        scheme.as_str(),
        entry_for(scheme, host, port),
        entry_for(scheme, host, port)
    )
}

/// An IPv4-mapped or NAT64 IPv6 address as the IPv4 address it carries;
/// others unchanged.
fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        IpAddr::V4(_) => ip,
    }
}

/// The IPv4 address an IPv6 address stands for: `::ffff:a.b.c.d` (mapped),
/// `::a.b.c.d` (the deprecated compatible form) and `64:ff9b::a.b.c.d`
/// (NAT64, RFC 6052) all reach `a.b.c.d`.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = ip.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    let nat64 = s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0];
    // `::` and `::1` are IPv6's own unspecified and loopback addresses.
    let compatible = s[..6] == [0; 6] && (s[6] != 0 || s[7] > 1);
    (nat64 || compatible).then_some(tail)
}

/// Whether outbound requests to `ip` are refused unless the operator allows
/// private egress: loopback (127/8, ::1), private (10/8, 172.16/12,
/// 192.168/16, fc00::/7 — which holds cloud metadata's fd00:ec2::254),
/// link-local (169.254/16 — metadata's 169.254.169.254 — and fe80::/10),
/// "this network" (0/8, ::), shared address space (100.64/10), the special
/// purpose ranges of RFC 6890 (192.0.0/24, 198.18/15, the documentation
/// ranges), multicast and reserved ranges, and IPv6 addresses that embed any of these IPv4
/// addresses (mapped, compatible, NAT64).
pub fn is_private(ip: IpAddr) -> bool {
    match canonical_ip(ip) {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            let [.., c, _] = v4.octets();
            a == 0
                || a == 10
                || a == 127
                || (a == 100 && (64..128).contains(&b))
                || (a == 169 && b == 254)
                || (a == 172 && (16..32).contains(&b))
                || (a == 192 && b == 168)
                // IETF protocol assignments (192.0.0/24), benchmarking
                // (198.18/15) and the documentation ranges (192.0.2/24,
                // 198.51.100/24, 203.0.113/24), none routable on the
                // internet; RFC 6890.
                || (a == 192 && b == 0 && (c == 0 || c == 2))
                || (a == 198 && (b == 18 || b == 19))
                || (a == 198 && b == 51 && c == 100)
                || (a == 203 && b == 0 && c == 113)
                || a >= 224
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_unspecified()
                || v6.is_loopback()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || (first & 0xff00) == 0xff00
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(entry: &str) -> HostPattern {
        entry.parse().unwrap_or_else(|e| panic!("{entry}: {e}"))
    }

    fn host(text: &str) -> Host {
        Host::parse(text).unwrap()
    }

    #[test]
    fn entries_take_three_forms_and_print_canonically() {
        for (entry, canonical) in [
            ("api.example.com", "api.example.com"),
            ("API.Example.COM.", "api.example.com"),
            ("api.example.com:8443", "api.example.com:8443"),
            ("HTTPS://hooks.example.com", "https://hooks.example.com"),
            ("http://127.0.0.1:9000", "http://127.0.0.1:9000"),
            ("127.0.0.1:9000", "127.0.0.1:9000"),
            ("[::1]:8080", "[::1]:8080"),
            ("https://[2001:db8::1]", "https://[2001:db8::1]"),
        ] {
            assert_eq!(pattern(entry).to_string(), canonical, "{entry}");
        }
    }

    #[test]
    fn malformed_entries_say_what_is_wrong() {
        let error = |entry: &str| entry.parse::<HostPattern>().unwrap_err();
        assert!(error("").contains("empty"));
        assert!(error("ftp://example.com").contains("`http` or `https`"));
        assert_eq!(
            error("https://hooks.example.com/services/T0"),
            "`https://hooks.example.com/services/T0` has a path, query or fragment; an entry \
             names a host, not a URL (`https://hooks.example.com`)"
        );
        assert!(error("example.com?x=1").contains("path, query or fragment"));
        assert!(error("user@example.com").contains("user information"));
        assert!(error("*.example.com").contains("wildcards"));
        assert!(error("example.com:0").contains("not a port"));
        assert!(error("example.com:70000").contains("not a port"));
        assert!(error("example.com:").contains("not a port"));
        assert!(error("::1").contains("in brackets: `[::1]`"));
        assert!(error("[::1").contains("not closed"));
        assert!(error("[::zz]").contains("not an IPv6 address"));
        assert!(error("exa mple.com").contains("whitespace"));
        assert!(error("-bad-.com").contains("not a host name"));
        assert!(error("1.2.3").contains("not a host name"));
        assert!(error("bücher.example").contains("punycode"));
        assert!(error(&format!("{}.com", "a".repeat(64))).contains("not a host name"));
    }

    #[test]
    fn matching_follows_scheme_and_default_ports() {
        let bare = pattern("api.example.com");
        let api = host("api.example.com");
        assert!(bare.matches(Scheme::Https, &api, 443));
        assert!(bare.matches(Scheme::Http, &api, 80));
        assert!(!bare.matches(Scheme::Https, &api, 8443));
        assert!(!bare.matches(Scheme::Http, &api, 443));
        assert!(!bare.matches(Scheme::Https, &host("evil.example.com"), 443));
        assert!(!bare.matches(Scheme::Https, &host("example.com"), 443));

        let with_port = pattern("api.example.com:8443");
        assert!(with_port.matches(Scheme::Https, &api, 8443));
        assert!(with_port.matches(Scheme::Http, &api, 8443));
        assert!(!with_port.matches(Scheme::Https, &api, 443));

        let https_only = pattern("https://hooks.example.com");
        let hooks = host("HOOKS.example.com");
        assert!(https_only.matches(Scheme::Https, &hooks, 443));
        assert!(!https_only.matches(Scheme::Http, &hooks, 80));
        assert!(!https_only.matches(Scheme::Http, &hooks, 443));
    }

    #[test]
    fn a_grant_is_normalized_and_checked() {
        let grant: Capabilities = serde_json::from_value(serde_json::json!({
            "http": {"allowed_hosts": ["API.example.com", "api.example.com", "https://Hooks.example.com"]},
            "secrets": ["SLACK_WEBHOOK", "SLACK_WEBHOOK", "_X1"]
        }))
        .unwrap();
        let normalized = grant.normalized().unwrap();
        assert_eq!(
            normalized.http.allowed_hosts,
            ["api.example.com", "https://hooks.example.com"]
        );
        assert_eq!(normalized.secrets, ["SLACK_WEBHOOK", "_X1"]);
        assert!(normalized.grants_http());
        assert!(normalized.grants_secret("SLACK_WEBHOOK"));
        assert!(!normalized.grants_secret("slack_webhook"));
        assert!(!Capabilities::default().grants_http());

        let bad_secret = Capabilities {
            secrets: vec!["slack".into()],
            ..Capabilities::default()
        };
        let error = bad_secret.normalized().unwrap_err();
        assert_eq!(error.field, "capabilities.secrets");
        assert!(
            error.message.contains("`slack` is not a secret name"),
            "{error}"
        );

        let too_many = Capabilities {
            http: HttpGrant {
                allowed_hosts: (0..65).map(|i| format!("h{i}.example.com")).collect(),
            },
            secrets: vec![],
        };
        assert_eq!(
            too_many.normalized().unwrap_err().to_string(),
            "invalid `capabilities.http.allowed_hosts`: lists 65 hosts; at most 64 are allowed"
        );
        let unknown = serde_json::from_value::<Capabilities>(serde_json::json!({"net": {}}));
        assert!(unknown.is_err());
    }

    #[test]
    fn secret_names_are_like_environment_variables() {
        for good in ["A", "SLACK_WEBHOOK", "_PRIVATE", "KEY2", &"K".repeat(64)] {
            assert!(check_secret_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "lower",
            "2FA",
            "WITH-DASH",
            "WITH SPACE",
            "ÜBER",
            &"K".repeat(65),
        ] {
            assert!(check_secret_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_refusal_names_the_host_and_the_grant() {
        assert_eq!(
            not_allowed_message(Scheme::Https, &host("api.example.com"), 443),
            "https://api.example.com: host not allowed; add \"api.example.com\" to \
             capabilities.http.allowed_hosts"
        );
        assert_eq!(
            not_allowed_message(Scheme::Http, &host("127.0.0.1"), 9000),
            "http://127.0.0.1:9000: host not allowed; add \"127.0.0.1:9000\" to \
             capabilities.http.allowed_hosts"
        );
    }

    #[test]
    fn private_ranges_are_recognised() {
        let private = [
            "127.0.0.1",
            "127.255.0.9",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fc00::1",
            "fd00:ec2::254",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::10.0.0.1",
            "192.0.0.192",
            "192.0.2.10",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
        ];
        for ip in private {
            assert!(is_private(ip.parse().unwrap()), "{ip} should be private");
        }
        let public = [
            "93.184.216.34",
            "172.32.0.1",
            "172.15.255.255",
            "192.169.0.1",
            "100.128.0.1",
            "192.0.1.1",
            "198.20.0.1",
            "198.51.101.1",
            "203.0.114.1",
            "8.8.8.8",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::8.8.8.8",
        ];
        for ip in public {
            assert!(!is_private(ip.parse().unwrap()), "{ip} should be public");
        }
    }

    #[test]
    fn a_literal_ip_entry_names_its_address_in_any_form() {
        let grant = Capabilities {
            http: HttpGrant {
                allowed_hosts: vec!["127.0.0.1:9000".into(), "localhost:9001".into()],
            },
            secrets: vec![],
        };
        let list = grant.allow_list();
        let names = |ip: &str, port| list.names_address(Scheme::Http, ip.parse().unwrap(), port);
        assert!(names("127.0.0.1", 9000));
        assert!(names("::ffff:127.0.0.1", 9000));
        assert!(!names("127.0.0.2", 9000));
        // Only on the port the entry names: a granted name resolving to the
        // address does not open its other ports.
        assert!(!names("127.0.0.1", 9001));
        assert!(!names("127.0.0.1", 80));
        let https_only = Capabilities {
            http: HttpGrant {
                allowed_hosts: vec!["https://10.0.0.5".into()],
            },
            secrets: vec![],
        }
        .allow_list();
        assert!(https_only.names_address(Scheme::Https, "10.0.0.5".parse().unwrap(), 443));
        assert!(!https_only.names_address(Scheme::Http, "10.0.0.5".parse().unwrap(), 443));
        assert!(!list.is_empty());
        assert!(list.allows(Scheme::Http, &host("localhost"), 9001));
        assert!(!list.allows(Scheme::Http, &host("localhost"), 9000));
    }
}
