//! The recorder of a run's host calls: host functions add a record when a
//! call starts and fill it in as it is answered, from whatever task the
//! answer arrives on. At most [`MAX_HOST_CALLS`] are kept.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::domain::host_call::{HostCall, HostCallKind, MAX_HOST_CALLS, MAX_SECRET_READ_RECORDS};

/// What the run's `host_calls` say about a call the run ended before it was
/// answered; [`CANCELLED_IN_FLIGHT`] and [`TIMED_OUT_IN_FLIGHT`] when the
/// run was cancelled or timed out while the workflow waited for it.
pub const UNANSWERED: &str = "no answer before the run ended";
/// See [`UNANSWERED`].
pub const CANCELLED_IN_FLIGHT: &str = "cancelled while in flight";
/// See [`UNANSWERED`].
pub const TIMED_OUT_IN_FLIGHT: &str = "the run timed out while in flight";

/// One run's host-call records. Cheap to clone: clones share the records.
#[derive(Debug, Clone, Default)]
pub struct HostCalls {
    log: Arc<Mutex<Log>>,
}

#[derive(Debug, Default)]
struct Log {
    calls: Vec<HostCall>,
    /// Parallel to `calls`: whether the call was answered (or failed).
    answered: Vec<bool>,
    /// How many of `calls` are secret reads.
    secret_reads: usize,
    truncated: bool,
}

/// A recorded call, to fill in later. `None` inside when the call came
/// after the cap and is not recorded.
#[derive(Debug, Clone, Copy)]
pub struct CallSlot(Option<usize>);

impl HostCalls {
    /// Records a call that was answered at once (e.g. a secret read, a
    /// refused request).
    pub fn record(&self, call: HostCall) {
        let slot = self.start(call);
        self.answer(slot, |_| {});
    }

    /// Records a call that is still in flight; [`answer`](Self::answer)
    /// fills it in.
    pub fn start(&self, call: HostCall) -> CallSlot {
        let mut log = self.lock();
        if call.kind == HostCallKind::Secret {
            let same = |earlier: &HostCall| {
                earlier.kind == HostCallKind::Secret
                    && earlier.target == call.target
                    && earlier.error == call.error
            };
            if log.calls.iter().any(same) {
                // The earlier record says it; not a left-out call.
                return CallSlot(None);
            }
            if log.secret_reads >= MAX_SECRET_READ_RECORDS {
                log.truncated = true;
                return CallSlot(None);
            }
        }
        if log.calls.len() >= MAX_HOST_CALLS {
            log.truncated = true;
            return CallSlot(None);
        }
        if call.kind == HostCallKind::Secret {
            log.secret_reads += 1;
        }
        log.calls.push(call);
        log.answered.push(false);
        CallSlot(Some(log.calls.len() - 1))
    }

    /// Marks the call answered, changing its record with `change`.
    pub fn answer(&self, slot: CallSlot, change: impl FnOnce(&mut HostCall)) {
        self.update(slot, |call, answered| {
            change(call);
            *answered = true;
        });
    }

    /// Changes the record of a call (answered or not) with `change`.
    pub fn update(&self, slot: CallSlot, change: impl FnOnce(&mut HostCall, &mut bool)) {
        let CallSlot(Some(index)) = slot else { return };
        let mut log = self.lock();
        let Log {
            calls, answered, ..
        } = &mut *log;
        if let (Some(call), Some(answered)) = (calls.get_mut(index), answered.get_mut(index)) {
            change(call, answered);
        }
    }

    /// The records so far, and whether some calls were left out. A call
    /// not answered yet says `unanswered` as its error.
    pub fn snapshot(&self, unanswered: &str) -> (Vec<HostCall>, bool) {
        let log = self.lock();
        let calls = log
            .calls
            .iter()
            .zip(&log.answered)
            .map(|(call, answered)| {
                let mut call = call.clone();
                if !answered && call.error.is_none() {
                    call.error = Some(unanswered.to_owned());
                }
                call
            })
            .collect();
        (calls, log.truncated)
    }

    fn lock(&self) -> MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_capped_and_unanswered_calls_say_so() {
        let calls = HostCalls::default();
        let slot = calls.start(HostCall::new(HostCallKind::Http, "GET http://a/"));
        calls.record(HostCall::secret("TOKEN", None));
        let (snapshot, truncated) = calls.snapshot(UNANSWERED);
        assert!(!truncated);
        assert_eq!(snapshot[0].error.as_deref(), Some(UNANSWERED));
        assert_eq!(snapshot[1].error, None);
        calls.answer(slot, |call| call.status = Some(200));
        assert_eq!(calls.snapshot(UNANSWERED).0[0].error, None);
        assert_eq!(calls.snapshot(UNANSWERED).0[0].status, Some(200));
        for i in 0..MAX_HOST_CALLS {
            calls.record(HostCall::new(
                HostCallKind::Http,
                format!("GET http://a/{i}"),
            ));
        }
        let (snapshot, truncated) = calls.snapshot(UNANSWERED);
        assert_eq!(snapshot.len(), MAX_HOST_CALLS);
        assert!(truncated);
    }

    #[test]
    fn secret_reads_never_crowd_out_requests() {
        let calls = HostCalls::default();
        // The same read again and again is one record, not a truncation.
        for _ in 0..1000 {
            calls.record(HostCall::secret("TOKEN", None));
        }
        let (snapshot, truncated) = calls.snapshot(UNANSWERED);
        assert_eq!(snapshot.len(), 1);
        assert!(!truncated);
        // Reads of ever new names stop being recorded at their own cap...
        for i in 0..1000 {
            calls.record(HostCall::secret(
                &format!("NAME_{i}"),
                Some("not granted".into()),
            ));
        }
        let (snapshot, truncated) = calls.snapshot(UNANSWERED);
        assert_eq!(snapshot.len(), MAX_SECRET_READ_RECORDS);
        assert!(truncated);
        // ...and the requests after them are still recorded.
        let last = MAX_HOST_CALLS - MAX_SECRET_READ_RECORDS;
        for i in 0..last {
            calls.record(HostCall::new(
                HostCallKind::Http,
                format!("POST http://a/{i}"),
            ));
        }
        let (snapshot, _) = calls.snapshot(UNANSWERED);
        assert_eq!(snapshot.len(), MAX_HOST_CALLS);
        assert_eq!(
            snapshot[MAX_HOST_CALLS - 1].target,
            format!("POST http://a/{}", last - 1)
        );
    }
}
