//! Live output: the lines of runs executing now, and followers that read a
//! run's output from an offset as it is printed, until the run ends.
//!
//! A worker registers a run's [`LiveOutput`] before marking it running and
//! removes it after storing its ending, so a follower that finds no live
//! output for a run that has ended reads the stored result. Offsets count
//! lines from 0 and mean the same in the live lines and the stored
//! `result.output`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::{Shared, blocking};
use crate::domain::ids::RunId;
use crate::domain::run::Run;
use crate::runner::LiveOutput;
use crate::store::StoreError;

/// How often a follower of a run that is not executing (pending, or ended
/// without executing) looks at the store again, besides being woken when any
/// run starts.
const PENDING_RECHECK: Duration = Duration::from_millis(500);

/// What a follower receives, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum OutputEvent {
    /// The output line at `offset` (0-based).
    Line { offset: usize, line: String },
    /// The run has ended; no more lines. The run as stored.
    End(Box<Run>),
}

/// The live output of every run executing now.
#[derive(Debug)]
pub(super) struct LiveRuns {
    runs: Mutex<HashMap<RunId, LiveOutput>>,
    /// Bumped whenever a run starts, to wake followers waiting for it.
    started: watch::Sender<u64>,
}

impl Default for LiveRuns {
    fn default() -> Self {
        LiveRuns {
            runs: Mutex::default(),
            started: watch::Sender::new(0),
        }
    }
}

impl LiveRuns {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<RunId, LiveOutput>> {
        self.runs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers run `id` as executing; its output goes to the returned handle.
    pub(super) fn start(&self, id: &RunId) -> LiveOutput {
        let live = LiveOutput::new();
        self.lock().insert(id.clone(), live.clone());
        self.started.send_modify(|n| *n = n.wrapping_add(1));
        live
    }

    /// Run `id` is over and its ending stored: followers read the store now.
    pub(super) fn finish(&self, id: &RunId) {
        self.lock().remove(id);
    }

    /// The lines of run `id` if it is executing: a receiver only, so a
    /// follower never keeps the output open.
    pub(super) fn lines_of(&self, id: &RunId) -> Option<watch::Receiver<crate::runner::LiveLines>> {
        self.lock().get(id).map(LiveOutput::subscribe)
    }

    /// How many runs are registered (for tests and shutdown checks).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

/// Sends `run`'s output from `offset` to `events` until it ends, the
/// receiver goes away or `closed` turns true (the server is stopping).
pub(super) async fn follow(
    shared: Arc<Shared>,
    id: RunId,
    mut offset: usize,
    events: mpsc::Sender<OutputEvent>,
    mut closed: watch::Receiver<bool>,
) {
    loop {
        let mut started = shared.live.started.subscribe();
        if let Some(mut lines) = shared.live.lines_of(&id) {
            loop {
                let batch = unread(&lines.borrow_and_update().lines, offset);
                if !send_lines(&events, &mut offset, batch).await {
                    return;
                }
                tokio::select! {
                    changed = lines.changed() => if changed.is_err() { break },
                    _ = closed.wait_for(|closed| *closed) => return,
                    () = events.closed() => return,
                }
            }
            // The output is closed: the run's ending is stored.
            continue;
        }
        let lookup = id.clone();
        let stored: Result<Option<Run>, StoreError> =
            blocking(&shared, move |s| s.store.run(&lookup)).await;
        let run = match stored {
            Ok(Some(run)) => run,
            Ok(None) => return,
            Err(error) => {
                tracing::error!(run = %id, "cannot read the run to follow its output: {error}");
                return;
            }
        };
        if run.status.is_terminal() {
            let batch = unread(run.output(), offset);
            if send_lines(&events, &mut offset, batch).await {
                let _ = events.send(OutputEvent::End(Box::new(run))).await;
            }
            return;
        }
        tokio::select! {
            _ = started.changed() => {}
            () = tokio::time::sleep(PENDING_RECHECK) => {}
            _ = closed.wait_for(|closed| *closed) => return,
            () = events.closed() => return,
        }
    }
}

/// The lines at and after `offset`.
fn unread(lines: &[String], offset: usize) -> Vec<String> {
    lines.get(offset..).unwrap_or_default().to_vec()
}

/// Sends `lines`, numbering them from `offset`; false when nobody listens.
async fn send_lines(
    events: &mpsc::Sender<OutputEvent>,
    offset: &mut usize,
    lines: Vec<String>,
) -> bool {
    for line in lines {
        let event = OutputEvent::Line {
            offset: *offset,
            line,
        };
        if events.send(event).await.is_err() {
            return false;
        }
        *offset += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finished_runs_leave_the_registry() {
        let live = LiveRuns::default();
        let id = RunId::from_value(7);
        let started = live.started.subscribe();
        let output = live.start(&id);
        assert!(started.has_changed().unwrap());
        let mut lines = live.lines_of(&id).unwrap();
        drop(output);
        live.finish(&id);
        assert_eq!(live.len(), 0);
        assert!(live.lines_of(&id).is_none());
        assert!(lines.has_changed().is_err(), "followers see the end");
        let _ = lines.borrow_and_update();
    }

    #[test]
    fn unread_lines_start_at_the_offset() {
        let lines = vec!["a".to_owned(), "b".to_owned()];
        assert_eq!(unread(&lines, 1), ["b"]);
        assert!(unread(&lines, 2).is_empty());
        assert!(unread(&lines, 9).is_empty());
    }
}
