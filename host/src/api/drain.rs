//! Reading what is left of a request body before answering.
//!
//! A handler may answer before it has read the whole body: a 413 when the body
//! passes its limit, a 400 for a wrong Content-Type or app id. If the server
//! then closes the connection with the rest of the body unread, the kernel
//! resets it, and a client still sending (curl, reqwest) reports a broken
//! connection instead of the answer. So every request's unread body is read
//! and discarded before the answer is sent — up to [`DRAIN_MAX_BYTES`] and for
//! at most [`DRAIN_MAX_TIME`], so a client cannot make the server read without
//! end; past either bound the answer goes out and the connection closes.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Frame, SizeHint};

/// Most unread body bytes read and discarded after a handler has answered.
pub const DRAIN_MAX_BYTES: u64 = 32 * 1024 * 1024;
/// Longest wait for the rest of a body after a handler has answered.
pub const DRAIN_MAX_TIME: Duration = Duration::from_secs(10);

/// Middleware: runs the handler on a body it shares with this function, then
/// drains whatever the handler left unread before passing the answer on.
pub async fn drain_unread_body(request: Request, next: Next) -> Response {
    // A client waiting for `100 Continue` has sent nothing yet: if the handler
    // never asked for the body, answering at once saves the client sending it.
    let expects_continue = request
        .headers()
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let (parts, body) = request.into_parts();
    let shared = SharedBody::new(body);
    let response = next
        .run(Request::from_parts(parts, Body::new(shared.clone())))
        .await;
    let (body, polled) = shared.take();
    if polled || !expects_continue {
        drain(body, DRAIN_MAX_BYTES, DRAIN_MAX_TIME).await;
    }
    response
}

/// Reads and discards `body` to its end, unless that means reading more than
/// `max_bytes` or waiting longer than `max_time`. Returns whether it reached
/// the end.
pub async fn drain(mut body: Body, max_bytes: u64, max_time: Duration) -> bool {
    if body.is_end_stream() {
        return true;
    }
    // A body announced (Content-Length) larger than the bound: reading part
    // of it would not save the connection.
    if body.size_hint().lower() > max_bytes {
        return false;
    }
    let mut left = max_bytes;
    let read_to_end = async {
        loop {
            match poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
                None => return true,
                Some(Err(_)) => return false,
                Some(Ok(frame)) => {
                    let size = frame.data_ref().map_or(0, |data| data.len() as u64);
                    match left.checked_sub(size) {
                        Some(rest) => left = rest,
                        None => return false,
                    }
                }
            }
        }
    };
    tokio::time::timeout(max_time, read_to_end)
        .await
        .unwrap_or(false)
}

/// A request body the handler reads while the middleware keeps a handle to
/// take it back afterwards.
#[derive(Clone)]
struct SharedBody(Arc<Mutex<SharedState>>);

struct SharedState {
    body: Body,
    /// Whether the handler asked for any of the body.
    polled: bool,
}

impl SharedBody {
    fn new(body: Body) -> Self {
        SharedBody(Arc::new(Mutex::new(SharedState {
            body,
            polled: false,
        })))
    }

    fn state(&self) -> MutexGuard<'_, SharedState> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The body as the handler left it (an empty one stays behind, for a
    /// handler that still holds its end), and whether the handler polled it.
    fn take(&self) -> (Body, bool) {
        let mut state = self.state();
        (std::mem::take(&mut state.body), state.polled)
    }
}

impl HttpBody for SharedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let mut state = self.state();
        state.polled = true;
        Pin::new(&mut state.body).poll_frame(cx)
    }

    fn size_hint(&self) -> SizeHint {
        self.state().body.size_hint()
    }

    fn is_end_stream(&self) -> bool {
        self.state().body.is_end_stream()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(count: usize, size: usize) -> Body {
        let chunks = (0..count).map(move |_| Ok::<_, std::io::Error>(Bytes::from(vec![0; size])));
        Body::from_stream(futures_util::stream::iter(chunks))
    }

    #[tokio::test]
    async fn reads_a_body_within_the_bound_to_its_end() {
        assert!(drain(chunks(4, 1000), 4000, Duration::from_secs(5)).await);
        assert!(drain(Body::empty(), 0, Duration::from_secs(5)).await);
    }

    #[tokio::test]
    async fn stops_past_the_byte_bound() {
        assert!(!drain(chunks(5, 1000), 4000, Duration::from_secs(5)).await);
        // An announced length past the bound is not read at all.
        assert!(!drain(Body::from(vec![0; 4001]), 4000, Duration::from_secs(5)).await);
    }

    #[tokio::test]
    async fn stops_waiting_for_a_stalled_body() {
        let stalled = futures_util::stream::pending::<Result<Bytes, std::io::Error>>();
        let started = std::time::Instant::now();
        assert!(!drain(Body::from_stream(stalled), 4000, Duration::from_millis(50)).await);
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn a_body_the_handler_read_is_taken_back_at_its_end() {
        let shared = SharedBody::new(Body::from("abc"));
        let mut handler_end = Body::new(shared.clone());
        let frame = poll_fn(|cx| Pin::new(&mut handler_end).poll_frame(cx)).await;
        assert_eq!(frame.unwrap().unwrap().into_data().unwrap(), "abc");
        let (rest, polled) = shared.take();
        assert!(polled);
        assert!(rest.is_end_stream());
        let (_, polled) = SharedBody::new(Body::from("abc")).take();
        assert!(!polled, "not polled until the handler asks");
    }
}
