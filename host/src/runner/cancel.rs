//! Cancelling a run from another task or thread.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

/// A handle that cancels the runs it is passed to. Cheap to clone; every clone
/// cancels the same runs. Cancelling is permanent.
///
/// A cancelled run stops at its next epoch tick when it is executing wasm, and
/// at once when it is blocked in a host call (a WASI sleep or poll) or waiting
/// for a free slot; its outcome is [`Outcome::Cancelled`](crate::domain::outcome::Outcome::Cancelled).
#[derive(Debug, Clone, Default)]
pub struct CancelToken {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    cancelled: AtomicBool,
    notify: Notify,
}

impl CancelToken {
    /// A token not yet cancelled.
    pub fn new() -> Self {
        CancelToken::default()
    }

    /// Cancels every run holding this token.
    pub fn cancel(&self) {
        self.inner.cancelled.store(true, Ordering::Release);
        self.inner.notify.notify_waiters();
    }

    /// Whether [`cancel`](Self::cancel) has been called.
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancelled.load(Ordering::Acquire)
    }

    /// Completes once the token is cancelled.
    pub async fn cancelled(&self) {
        loop {
            let notified = self.inner.notify.notified();
            tokio::pin!(notified);
            // Registering before checking the flag means a `cancel` between the
            // check and the await still wakes us.
            notified.as_mut().enable();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn wakes_waiters_from_another_thread() {
        let token = CancelToken::new();
        let waiter = tokio::spawn({
            let token = token.clone();
            async move { token.cancelled().await }
        });
        let canceller = token.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            canceller.cancel();
        });
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("the waiter should wake")
            .unwrap();
        assert!(token.is_cancelled());
    }

    #[tokio::test]
    async fn an_already_cancelled_token_completes_at_once() {
        let token = CancelToken::new();
        token.cancel();
        token.cancelled().await;
        assert!(token.clone().is_cancelled());
    }
}
