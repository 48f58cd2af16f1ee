//! Outbound HTTP for workflows (`wasi:http/outgoing-handler`), under the
//! automation's grant.
//!
//! wasmtime-wasi-http implements the guest-facing interfaces; this module is
//! its [`WasiHttpHooks::send_request`] hook, so every request a guest sends
//! comes through here:
//!
//! 1. the run's request count and the grant are checked
//!    ([`capabilities.http.allowed_hosts`](crate::domain::capabilities)); a
//!    host not granted fails inside the guest with a message naming the host
//!    and the entry that would allow it;
//! 2. the host name is resolved here, and loopback, private, link-local and
//!    metadata addresses ([`is_private`]) are refused unless the server
//!    allows private egress or the grant names the address itself;
//! 3. the connection goes to the address that was checked (a second lookup
//!    could answer differently: DNS rebinding), over TLS for `https` with
//!    the platform's certificate verifier;
//! 4. the exchange is bounded: a per-request timeout (the run's own deadline
//!    ends the run first when it comes sooner, as `Script execution timed
//!    out`), a response body cap, and total bytes per run; the run's cancel
//!    token interrupts it too.
//!
//! Every request is a host-call record on the run ([`HostCalls`]).
//!
//! The futures run on tasks wasmtime-wasi-http spawns and aborts when the
//! guest drops the request's handles — which dropping the run's store does,
//! so a timed-out or cancelled run leaves nothing behind.

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt as _;
use tokio::net::TcpStream;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use super::cancel::CancelToken;
use super::host_calls::{CANCELLED_IN_FLIGHT, CallSlot, HostCalls};
use crate::domain::capabilities::{
    AllowList, Host, Scheme, entry_for, is_private, not_allowed_message,
};
use crate::domain::host_call::{HostCall, HostCallKind, http_target};
use crate::domain::limits::RunLimits;

/// What a run may reach: its automation's allow-list, and whether the
/// server lets requests reach private addresses (`serve
/// --allow-private-egress`).
#[derive(Debug, Clone, Default)]
pub struct EgressGrant {
    /// The parsed `capabilities.http.allowed_hosts`.
    pub allow_list: AllowList,
    /// Private, loopback and link-local addresses are reachable.
    pub allow_private: bool,
}

/// The part of a run's limits that bounds its HTTP requests.
#[derive(Debug, Clone, Copy)]
struct HttpLimits {
    requests: u32,
    timeout: Duration,
    response_bytes: u64,
    total_bytes: u64,
}

impl From<&RunLimits> for HttpLimits {
    fn from(limits: &RunLimits) -> Self {
        HttpLimits {
            requests: limits.http_requests,
            timeout: limits.http_timeout,
            response_bytes: limits.http_response_bytes,
            total_bytes: limits.http_total_bytes,
        }
    }
}

/// One run's outbound HTTP: the [`WasiHttpHooks`] of its store.
pub(super) struct Egress {
    grant: Arc<EgressGrant>,
    limits: HttpLimits,
    deadline: Instant,
    cancel: Option<CancelToken>,
    /// Requests sent so far.
    sent: u32,
    /// Body bytes sent and received so far, over all requests.
    bytes: Arc<AtomicU64>,
    calls: HostCalls,
}

impl Egress {
    pub(super) fn new(
        grant: EgressGrant,
        limits: &RunLimits,
        deadline: Instant,
        cancel: Option<CancelToken>,
        calls: HostCalls,
    ) -> Self {
        Egress {
            grant: Arc::new(grant),
            limits: HttpLimits::from(limits),
            deadline,
            cancel,
            sent: 0,
            bytes: Arc::default(),
            calls,
        }
    }

    /// Where a request may go, or why it may not.
    fn admit(&mut self, uri: &http::Uri) -> Result<Destination, String> {
        self.sent = self.sent.saturating_add(1);
        if self.sent > self.limits.requests {
            return Err(format!(
                "request limit reached: a run may send at most {} HTTP requests \
                 (limits.http_requests)",
                self.limits.requests
            ));
        }
        let scheme = match uri.scheme_str() {
            Some("https") => Scheme::Https,
            Some("http") => Scheme::Http,
            other => {
                return Err(format!(
                    "unsupported scheme `{}`: only http and https",
                    other.unwrap_or_default()
                ));
            }
        };
        if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
            // It would travel in the Host header, in the clear, and no
            // server reads it there.
            return Err(
                "credentials in a URL (`user:password@host`) are not sent: put them \
                        in an `authorization` header"
                    .into(),
            );
        }
        let host = Host::parse(uri.host().unwrap_or_default())?;
        let port = uri.port_u16().unwrap_or(scheme.default_port());
        if !self.grant.allow_list.allows(scheme, &host, port) {
            return Err(not_allowed_message(scheme, &host, port));
        }
        Ok(Destination { scheme, host, port })
    }
}

/// A checked request's scheme, host and port.
#[derive(Debug, Clone)]
struct Destination {
    scheme: Scheme,
    host: Host,
    port: u16,
}

type Response = http::Response<WasiBody>;
type IoFuture = Box<dyn Future<Output = Result<(), Error>> + Send>;

impl WasiHttpHooks for Egress {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        _options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<dyn Future<Output = Result<(Response, IoFuture), Error>> + Send> {
        let started = Instant::now();
        let uri = request.uri();
        let target = http_target(
            request.method().as_str(),
            uri.scheme_str().unwrap_or_default(),
            uri.authority().map_or("", |a| a.as_str()),
            uri.path(),
        );
        let slot = self.calls.start(HostCall::new(HostCallKind::Http, target));
        let destination = match self.admit(uri) {
            Ok(destination) => destination,
            Err(message) => {
                let refusal = fail(&self.calls, slot, started, message);
                return Box::new(async move { Err(refusal) });
            }
        };
        // The request's own timeout, unless the run's deadline comes first:
        // then the run ends at its deadline (`Script execution timed out`)
        // and the request with it; the second after it is only a backstop.
        let own_deadline = started + self.limits.timeout;
        let (deadline, timeout_ms) = if own_deadline < self.deadline {
            (own_deadline, Some(self.limits.timeout.as_millis()))
        } else {
            (self.deadline + Duration::from_secs(1), None)
        };
        let exchange = Exchange {
            destination,
            grant: Arc::clone(&self.grant),
            limits: self.limits,
            deadline,
            timeout_ms,
            started,
            bytes: Arc::clone(&self.bytes),
            calls: self.calls.clone(),
            slot,
        };
        let cancel = self.cancel.clone();
        Box::new(async move {
            let calls = exchange.calls.clone();
            let exchange = exchange.run(request);
            let cancelled = async {
                match &cancel {
                    Some(token) => token.cancelled().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                result = exchange => result,
                () = cancelled => {
                    // The connection is dropped here; the run ends as
                    // cancelled when the sandbox sees the token (an error
                    // now would reach the guest first and fail the run).
                    calls.answer(slot, |call| {
                        call.duration_ms = millis(started.elapsed());
                        call.error = Some(CANCELLED_IN_FLIGHT.to_owned());
                    });
                    std::future::pending().await
                }
            }
        })
    }
}

/// Records `message` as the call's error and returns it as the guest's.
fn fail(calls: &HostCalls, slot: CallSlot, started: Instant, message: String) -> Error {
    calls.answer(slot, |call| {
        call.duration_ms = millis(started.elapsed());
        call.error = Some(message.clone());
    });
    Error::InternalError(Some(message))
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// One admitted request on its way.
struct Exchange {
    destination: Destination,
    grant: Arc<EgressGrant>,
    limits: HttpLimits,
    /// When the exchange (response body included) is cut.
    deadline: Instant,
    /// The request's own timeout when it ends before the run's deadline.
    timeout_ms: Option<u128>,
    started: Instant,
    bytes: Arc<AtomicU64>,
    calls: HostCalls,
    slot: CallSlot,
}

impl Exchange {
    async fn run(self, request: http::Request<WasiBody>) -> Result<(Response, IoFuture), Error> {
        let deadline = tokio::time::Instant::from_std(self.deadline);
        match tokio::time::timeout_at(deadline, self.send(request)).await {
            Ok(Ok(exchanged)) => Ok(exchanged),
            Ok(Err(message)) => Err(fail(&self.calls, self.slot, self.started, message)),
            Err(_) => Err(fail(&self.calls, self.slot, self.started, self.timed_out())),
        }
    }

    fn timed_out(&self) -> String {
        match self.timeout_ms {
            Some(ms) => format!(
                "no complete response from {} within {ms} ms (limits.http_timeout_ms)",
                self.destination.host
            ),
            None => "the run's time ran out".to_owned(),
        }
    }

    /// Resolves, checks, connects and sends; the response's body is
    /// bounded and counted as it is read.
    async fn send(&self, request: http::Request<WasiBody>) -> Result<(Response, IoFuture), String> {
        let Destination { scheme, host, port } = &self.destination;
        let addresses = self.addresses().await?;
        let stream = connect(&addresses, *port)
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", entry_for(*scheme, host, *port)))?;
        let io: Box<dyn Stream> = match scheme {
            Scheme::Http => Box::new(stream),
            Scheme::Https => Box::new(tls(host, stream).await?),
        };
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake::<_, CountedBody>(TokioIo::new(io))
                .await
                .map_err(|e| format!("HTTP handshake with {host} failed: {e}"))?;
        let connection = wasmtime_wasi::runtime::spawn(connection);

        // The connection is to the origin: the request line carries the path
        // only (the `Host` header names the host).
        let (mut parts, body) = request.into_parts();
        parts.uri = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .parse()
            .map_err(|e| format!("invalid request path: {e}"))?;
        let sent = Arc::new(AtomicU64::new(0));
        let outgoing = http::Request::from_parts(
            parts,
            CountedBody {
                inner: body,
                count: Arc::clone(&sent),
                total: Arc::clone(&self.bytes),
                total_cap: self.limits.total_bytes,
            },
        );

        let response = sender
            .send_request(outgoing)
            .await
            .map_err(|e| format!("request to {host} failed: {}", hyper_error(&e)))?;
        let status = response.status().as_u16();
        let bytes_out = sent.load(Ordering::Relaxed);
        let declared = response
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if let Some(length) = declared.filter(|&n| n > self.limits.response_bytes) {
            self.calls
                .update(self.slot, |call, _| call.status = Some(status));
            return Err(body_cap_message(length, self.limits.response_bytes));
        }
        self.calls.update(self.slot, |call, _| {
            call.status = Some(status);
            call.bytes_out = bytes_out;
            call.duration_ms = millis(self.started.elapsed());
        });
        let (parts, incoming) = response.into_parts();
        let body = BoundedResponse {
            inner: incoming,
            received: 0,
            cap: self.limits.response_bytes,
            total: Arc::clone(&self.bytes),
            total_cap: self.limits.total_bytes,
            deadline: Box::pin(tokio::time::sleep_until(self.deadline.into())),
            timeout: self.timed_out(),
            calls: self.calls.clone(),
            slot: self.slot,
            started: self.started,
            done: false,
        };
        let response = http::Response::from_parts(parts, body.boxed_unsync());
        let io: IoFuture = Box::new(async move {
            match connection.await {
                Ok(()) => Ok(()),
                Err(error) => Err(Error::Hyper(error)),
            }
        });
        Ok((response, io))
    }

    /// The addresses `host` stands for that the request may go to.
    async fn addresses(&self) -> Result<Vec<IpAddr>, String> {
        let Destination { scheme, host, port } = &self.destination;
        let resolved: Vec<IpAddr> = match host {
            Host::Ip(ip) => vec![*ip],
            Host::Name(name) => tokio::net::lookup_host((name.as_str(), *port))
                .await
                .map_err(|e| format!("cannot resolve {name}: {e}"))?
                .map(|address| address.ip())
                .collect(),
        };
        let permitted: Vec<IpAddr> = resolved
            .iter()
            .copied()
            .filter(|ip| {
                self.grant.allow_private
                    || !is_private(*ip)
                    || self.grant.allow_list.names_address(*scheme, *ip, *port)
            })
            .collect();
        match (permitted.is_empty(), resolved.first()) {
            (false, _) => Ok(permitted),
            (true, None) => Err(format!("{host} has no addresses")),
            (true, Some(ip)) => Err(format!(
                "{} resolves to {ip}, a loopback, private or link-local address: requests there \
                 need the server started with --allow-private-egress, or the address itself in \
                 capabilities.http.allowed_hosts (\"{}\")",
                entry_for(*scheme, host, *port),
                entry_for(*scheme, &Host::Ip(*ip), *port),
            )),
        }
    }
}

/// Connects to the first of `addresses` that answers.
async fn connect(addresses: &[IpAddr], port: u16) -> std::io::Result<TcpStream> {
    let mut last = None;
    for ip in addresses {
        match TcpStream::connect(SocketAddr::new(*ip, port)).await {
            Ok(stream) => return Ok(stream),
            Err(error) => last = Some(error),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no address to connect to")))
}

trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// The TLS client configuration: aws-lc (the server side's provider) with
/// the platform's certificate verifier (the system's roots). Built once, at
/// the first `https` request.
fn tls_config() -> Result<Arc<rustls::ClientConfig>, String> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            use rustls_platform_verifier::BuilderVerifierExt as _;
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .and_then(|builder| builder.with_platform_verifier())
                .map(|builder| Arc::new(builder.with_no_client_auth()))
                .map_err(|e| format!("TLS is not available on this host: {e}"))
        })
        .clone()
}

async fn tls(
    host: &Host,
    stream: TcpStream,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
    use rustls::pki_types::ServerName;
    let name = match host {
        Host::Name(name) => ServerName::try_from(name.clone())
            .map_err(|e| format!("`{name}` cannot be verified over TLS: {e}"))?,
        Host::Ip(ip) => ServerName::from(*ip),
    };
    tokio_rustls::TlsConnector::from(tls_config()?)
        .connect(name, stream)
        .await
        .map_err(|e| format!("TLS with {host} failed: {e}"))
}

/// hyper's error with its cause (hyper's own text is terse).
fn hyper_error(error: &hyper::Error) -> String {
    use std::error::Error as _;
    match error.source() {
        Some(source) => format!("{error}: {source}"),
        None => error.to_string(),
    }
}

fn body_cap_message(size: u64, cap: u64) -> String {
    format!(
        "the response body is larger than the limit of {cap} bytes \
         (limits.http_response_bytes; it is at least {size} bytes)"
    )
}

fn total_cap_message(cap: u64) -> String {
    format!(
        "the run sent and received more than {cap} bytes of HTTP bodies \
         (limits.http_total_bytes)"
    )
}

/// A request body that counts what is sent and stops at the run's total.
struct CountedBody {
    inner: WasiBody,
    count: Arc<AtomicU64>,
    total: Arc<AtomicU64>,
    total_cap: u64,
}

impl Body for CountedBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let frame = std::task::ready!(Pin::new(&mut self.inner).poll_frame(cx));
        if let Some(Ok(frame)) = &frame
            && let Some(data) = frame.data_ref()
        {
            let n = data.len() as u64;
            self.count.fetch_add(n, Ordering::Relaxed);
            if self.total.fetch_add(n, Ordering::Relaxed) + n > self.total_cap {
                return Poll::Ready(Some(Err(Error::InternalError(Some(total_cap_message(
                    self.total_cap,
                ))))));
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body held to the response cap, the run's total and the
/// request's deadline, counted into the call's record as it is read.
struct BoundedResponse {
    inner: hyper::body::Incoming,
    received: u64,
    cap: u64,
    total: Arc<AtomicU64>,
    total_cap: u64,
    deadline: Pin<Box<tokio::time::Sleep>>,
    timeout: String,
    calls: HostCalls,
    slot: CallSlot,
    started: Instant,
    done: bool,
}

impl BoundedResponse {
    fn end(&mut self, error: Option<String>) -> Option<Result<Frame<Bytes>, Error>> {
        self.done = true;
        let (received, started) = (self.received, self.started);
        self.calls.answer(self.slot, |call| {
            call.bytes_in = received;
            call.duration_ms = millis(started.elapsed());
            call.error.clone_from(&error);
        });
        error.map(|message| Err(Error::InternalError(Some(message))))
    }
}

impl Body for BoundedResponse {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        if self.done {
            return Poll::Ready(None);
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            let timeout = self.timeout.clone();
            return Poll::Ready(self.end(Some(timeout)));
        }
        let frame = match std::task::ready!(Pin::new(&mut self.inner).poll_frame(cx)) {
            None => return Poll::Ready(self.end(None)),
            Some(Err(error)) => {
                let message = format!("reading the response failed: {}", hyper_error(&error));
                return Poll::Ready(self.end(Some(message)));
            }
            Some(Ok(frame)) => frame,
        };
        if let Some(data) = frame.data_ref() {
            let n = data.len() as u64;
            self.received += n;
            let (received, cap) = (self.received, self.cap);
            if received > cap {
                return Poll::Ready(self.end(Some(body_cap_message(received, cap))));
            }
            if self.total.fetch_add(n, Ordering::Relaxed) + n > self.total_cap {
                let message = total_cap_message(self.total_cap);
                return Poll::Ready(self.end(Some(message)));
            }
            let (calls, slot) = (self.calls.clone(), self.slot);
            calls.update(slot, |call, _| call.bytes_in = received);
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
