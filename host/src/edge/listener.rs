//! Accepting connections: a cap on how many are open, TLS, header and idle
//! timeouts, and a graceful stop.
//!
//! At the cap, a newcomer takes the place of the connection idle the
//! longest (no request in progress: a client that opened a socket and sent
//! nothing, or a keep-alive connection between requests), which is closed.
//! When every connection is busy the newcomer gets a 503 with `Retry-After`
//! and is closed. Each connection waits at most `header_timeout` for a
//! request's headers, which also bounds how long it stays idle.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

use super::EdgeConfig;

/// How long a newcomer at the cap waits for an evicted connection's slot.
const EVICTION_WAIT: Duration = Duration::from_millis(200);

/// The open connections: their slots and what they are doing.
struct Connections {
    slots: Arc<Semaphore>,
    max: usize,
    started: Instant,
    next_id: AtomicU64,
    live: Mutex<HashMap<u64, Arc<Activity>>>,
}

/// One connection's activity, for choosing whom to evict.
struct Activity {
    /// Requests in progress.
    busy: AtomicUsize,
    /// Milliseconds since `Connections::started` at its last request's end
    /// (or its start).
    last_active_ms: AtomicU64,
    evict: Notify,
}

impl Connections {
    fn new(max: usize) -> Self {
        let max = max.max(1);
        Connections {
            slots: Arc::new(Semaphore::new(max)),
            max,
            started: Instant::now(),
            next_id: AtomicU64::new(0),
            live: Mutex::default(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// A slot for a new connection: a free one, or the one of the connection
    /// idle the longest; `None` when every connection is busy.
    async fn admit(&self) -> Option<OwnedSemaphorePermit> {
        if let Ok(permit) = Arc::clone(&self.slots).try_acquire_owned() {
            return Some(permit);
        }
        let idlest = {
            let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
            live.values()
                .filter(|a| a.busy.load(Ordering::Acquire) == 0)
                .min_by_key(|a| a.last_active_ms.load(Ordering::Acquire))
                .cloned()
        }?;
        idlest.evict.notify_one();
        tokio::time::timeout(EVICTION_WAIT, Arc::clone(&self.slots).acquire_owned())
            .await
            .ok()?
            .ok()
    }

    fn register(&self) -> (u64, Arc<Activity>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let activity = Arc::new(Activity {
            busy: AtomicUsize::new(0),
            last_active_ms: AtomicU64::new(self.now_ms()),
            evict: Notify::new(),
        });
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.insert(id, Arc::clone(&activity));
        (id, activity)
    }

    fn unregister(&self, id: u64) {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.remove(&id);
    }

    /// Waits until every connection has closed.
    async fn all_closed(&self) {
        let max = u32::try_from(self.max).unwrap_or(u32::MAX);
        let _ = self.slots.acquire_many(max).await;
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then stops taking
/// connections, lets requests in progress finish and returns once every
/// connection has closed.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    config: &EdgeConfig,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let connections = Arc::new(Connections::new(config.max_connections));
    let (stop, stopping) = watch::channel(false);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.header_timeout)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors (EMFILE) and the like: wait a
                    // little instead of spinning; connections will close.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(slot) = connections.admit().await else {
            tracing::debug!(%peer, "connection refused: every connection is busy");
            if tls.is_none() {
                tokio::spawn(refuse(stream));
            }
            continue;
        };
        let connection = Connection {
            connections: Arc::clone(&connections),
            app: app.clone(),
            http: http.clone(),
            tls: tls.clone(),
            handshake_timeout: config.header_timeout,
            stopping: stopping.clone(),
        };
        tokio::spawn(connection.run(stream, slot));
    }
    drop(listener);
    let _ = stop.send(true);
    connections.all_closed().await;
    Ok(())
}

/// Answers a connection over the cap with a 503 and closes it.
async fn refuse(mut stream: TcpStream) {
    const BODY: &str = r#"{"error":{"code":"unavailable","message":"too many open connections; retry in a second"}}"#;
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(answer.as_bytes())).await;
    let _ = stream.shutdown().await;
}

/// One accepted connection and what it needs.
struct Connection {
    connections: Arc<Connections>,
    app: Router,
    http: hyper::server::conn::http1::Builder,
    tls: Option<TlsAcceptor>,
    handshake_timeout: Duration,
    stopping: watch::Receiver<bool>,
}

impl Connection {
    async fn run(self, stream: TcpStream, slot: OwnedSemaphorePermit) {
        let _ = stream.set_nodelay(true);
        let (id, activity) = self.connections.register();
        match self.tls.clone() {
            Some(acceptor) => {
                match tokio::time::timeout(self.handshake_timeout, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => self.serve(TokioIo::new(stream), &activity).await,
                    Ok(Err(error)) => tracing::debug!(%error, "TLS handshake failed"),
                    Err(_) => tracing::debug!("TLS handshake timed out"),
                }
            }
            None => self.serve(TokioIo::new(stream), &activity).await,
        }
        self.connections.unregister(id);
        drop(slot);
    }

    async fn serve<I>(&self, io: I, activity: &Arc<Activity>)
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let (app, tracked, connections) = (
            self.app.clone(),
            Arc::clone(activity),
            Arc::clone(&self.connections),
        );
        let service = tower::service_fn(move |request: hyper::Request<Incoming>| {
            let (app, tracked, connections) =
                (app.clone(), Arc::clone(&tracked), Arc::clone(&connections));
            async move {
                tracked.busy.fetch_add(1, Ordering::AcqRel);
                let response = app.oneshot(request.map(axum::body::Body::new)).await;
                tracked
                    .last_active_ms
                    .store(connections.now_ms(), Ordering::Release);
                tracked.busy.fetch_sub(1, Ordering::AcqRel);
                response
            }
        });
        let connection = self
            .http
            .serve_connection(io, TowerToHyperService::new(service))
            .with_upgrades();
        tokio::pin!(connection);
        let mut stopping = self.stopping.clone();
        loop {
            let stop = tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(%error, "connection ended with an error");
                    }
                    return;
                }
                // Evicted for a newcomer: dropping closes it, unless a
                // request arrived meanwhile.
                () = activity.evict.notified() => false,
                _ = stopping.wait_for(|stop| *stop) => true,
            };
            if stop {
                connection.as_mut().graceful_shutdown();
                let _ = connection.await;
                return;
            }
            if activity.busy.load(Ordering::Acquire) == 0 {
                return;
            }
        }
    }
}
