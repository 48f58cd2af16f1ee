//! The HTTP edge: what stands between the network and the API.
//!
//! - [`listener`]: accepts connections (TLS when configured), caps how many
//!   are open (the idlest is closed for a newcomer; 503 when all are busy),
//!   and closes a connection whose request headers take longer than
//!   [`EdgeConfig::header_timeout`] (idle keep-alive connections included).
//! - [`guard`]: per request — the `Host` must be one this server answers to
//!   (421), state-changing requests from a foreign `Origin` are refused
//!   (403), JSON routes want `Content-Type: application/json` (415; the
//!   console's pages under `/console/` also take HTML forms,
//!   `application/x-www-form-urlencoded`),
//!   in-flight requests and uploads are bounded (503 + `Retry-After`), and a
//!   request body that stalls gets 408.
//! - [`rate`]: per-key token buckets for event intake (429 + `Retry-After`).
//! - [`tls`]: the rustls server configuration from PEM files.
//!
//! Every refusal is the API's JSON error.

pub mod guard;
pub mod listener;
pub mod rate;
pub mod tls;

use std::path::PathBuf;
use std::time::Duration;

/// Limits and names of the edge. The defaults suit one host serving a few
/// hundred clients.
#[derive(Debug, Clone, PartialEq)]
pub struct EdgeConfig {
    /// Host names (without port) requests may name besides the loopback
    /// names and the listen address: `--allowed-host`, and `--public-url`'s.
    pub allowed_hosts: Vec<String>,
    /// Origins (`scheme://host[:port]`) allowed to send state-changing
    /// requests besides the request's own: `--public-url`'s.
    pub allowed_origins: Vec<String>,
    /// Longest wait for a request's headers, and for the next request on an
    /// idle connection; past it the connection is closed.
    pub header_timeout: Duration,
    /// Longest wait for the next bytes of a request body; past it the
    /// request gets 408.
    pub body_timeout: Duration,
    /// Most connections open at once.
    pub max_connections: usize,
    /// Most requests in progress at once, reads and changes each; past it 503.
    pub max_in_flight: usize,
    /// Most component uploads in progress at once; past it 503.
    pub max_uploads: usize,
    /// Events per second each key may send (sustained).
    pub event_rate: f64,
    /// Events a key may send in a burst above the rate.
    pub event_burst: u32,
    /// Serve HTTPS with this certificate chain and key (PEM files).
    pub tls: Option<TlsFiles>,
}

/// A certificate chain and its private key, PEM-encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        EdgeConfig {
            allowed_hosts: Vec::new(),
            allowed_origins: Vec::new(),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            max_connections: 1024,
            max_in_flight: 256,
            max_uploads: 4,
            event_rate: 200.0,
            event_burst: 400,
            tls: None,
        }
    }
}

/// Paths of the health probes: no key, no Host check, no load shedding.
pub fn is_probe(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz")
}
