//! The store's write latch: once a write or a flush to disk fails, the store
//! takes no more writes until the process restarts.
//!
//! Why a latch and not retries: sled 0.34 records the first IO error of its
//! log (ENOSPC, EIO, …) as a *global error* that only reopening the database
//! clears (`Config::global_error`, reset in `PageCache::start`). Every later
//! write or flush fails with it, and before this latch a failed flush was
//! retried in a loop with no pause (millions of log lines), writers waited
//! behind it and shutdown never finished. With the latch, the first failure
//! is logged once, every later write fails at once with
//! [`StoreError::Unavailable`] (HTTP 503 `store_unavailable`), `/readyz`
//! answers 503 and shutdown does not wait for a flush that cannot succeed.
//! Reads keep working from what sled holds.
//!
//! Acknowledged data is unaffected: a write is acknowledged only after the
//! flush covering it succeeded.
//!
//! Test hook: when the environment variable [`FAULT_FILE_ENV`] names a path
//! and a file exists there, writes and flushes fail as if the disk were full
//! (integration tests cannot fill a disk without root).

use std::path::PathBuf;
use std::sync::OnceLock;

use crate::store::StoreError;

/// Names a file whose existence makes the store's writes fail (a test hook).
pub const FAULT_FILE_ENV: &str = "AUTOMATA_TEST_STORE_FAULT_FILE";

/// Set once by the first failed write or flush; see the module docs.
#[derive(Debug, Default)]
pub struct WriteFailure {
    /// What failed first, e.g. `No space left on device (os error 28)`.
    first: OnceLock<String>,
    /// The test hook's file, from [`FAULT_FILE_ENV`].
    fault_file: Option<PathBuf>,
}

impl WriteFailure {
    /// A latch that is not set, with the test hook read from the environment.
    pub fn from_env() -> Self {
        WriteFailure {
            first: OnceLock::new(),
            fault_file: std::env::var_os(FAULT_FILE_ENV)
                .filter(|path| !path.is_empty())
                .map(PathBuf::from),
        }
    }

    /// `Ok` while writes may go ahead; [`StoreError::Unavailable`] once a
    /// write or flush failed (or the test hook's file exists, which sets
    /// the latch).
    pub fn check(&self) -> Result<(), StoreError> {
        if let Some(file) = &self.fault_file
            && file.exists()
        {
            return Err(
                self.record("No space left on device (os error 28, injected by the test hook)")
            );
        }
        match self.first.get() {
            Some(first) => Err(unavailable(first)),
            None => Ok(()),
        }
    }

    /// Sets the latch after a failed write or flush (logging the first
    /// failure, once) and returns the error to answer with.
    pub fn record(&self, error: impl std::fmt::Display) -> StoreError {
        let mut newly = false;
        let first = self.first.get_or_init(|| {
            newly = true;
            error.to_string()
        });
        if newly {
            tracing::error!(
                error = %first,
                "writing to the store failed: it takes no more writes until automata \
                 restarts; free disk space (or fix the disk), then restart it"
            );
        }
        unavailable(first)
    }

    /// What failed first, once the latch is set.
    pub fn reason(&self) -> Option<&str> {
        self.first.get().map(String::as_str)
    }
}

fn unavailable(first: &str) -> StoreError {
    StoreError::Unavailable(first.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_failure_is_kept_and_every_later_check_fails() {
        let latch = WriteFailure::default();
        assert!(latch.check().is_ok());
        latch.record("No space left on device (os error 28)");
        latch.record("a later failure");
        assert_eq!(
            latch.reason(),
            Some("No space left on device (os error 28)")
        );
        let error = latch.check().unwrap_err();
        assert!(
            matches!(error, StoreError::Unavailable(ref first) if first.contains("os error 28"))
        );
        assert!(error.to_string().contains("restart"), "{error}");
    }

    #[test]
    fn the_fault_file_sets_the_latch_and_removing_it_does_not_clear_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("fail");
        let latch = WriteFailure {
            first: OnceLock::new(),
            fault_file: Some(file.clone()),
        };
        assert!(latch.check().is_ok());
        std::fs::write(&file, "").unwrap();
        assert!(latch.check().is_err());
        std::fs::remove_file(&file).unwrap();
        assert!(
            latch.check().is_err(),
            "sled cannot recover in-process either"
        );
    }
}
