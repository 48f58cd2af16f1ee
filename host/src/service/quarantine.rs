//! The quarantine of records the store could not read back, for operators
//! (`/admin/quarantine`): list, look at, fetch the bytes of and discard.

use super::{Service, ServiceError};
use crate::store::QuarantinedRecord;

/// Quarantined records per page when `limit` is not given.
pub const DEFAULT_QUARANTINE_LIMIT: usize = 50;
/// Largest `limit` for quarantine pages.
pub const MAX_QUARANTINE_LIMIT: usize = 100;

/// One page of the quarantine, in the order records entered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantinePage {
    pub records: Vec<QuarantinedRecord>,
    /// Where the next page starts; `None` on the last page.
    pub next_cursor: Option<String>,
    /// How many records the quarantine holds in all.
    pub total: usize,
}

impl Service {
    /// A page of the quarantine: `limit` (default 50, at most 100) records
    /// after `cursor` (a page's `next_cursor`).
    pub async fn quarantine(
        &self,
        limit: Option<usize>,
        cursor: Option<&str>,
    ) -> Result<QuarantinePage, ServiceError> {
        let limit = limit.unwrap_or(DEFAULT_QUARANTINE_LIMIT);
        if !(1..=MAX_QUARANTINE_LIMIT).contains(&limit) {
            return Err(ServiceError::InvalidRequest(format!(
                "invalid `limit`: must be between 1 and {MAX_QUARANTINE_LIMIT}"
            )));
        }
        let after = cursor
            .map(|c| {
                c.parse::<u64>().map_err(|_| {
                    ServiceError::InvalidRequest(format!(
                        "invalid `cursor`: `{c}` is not a cursor from a previous page"
                    ))
                })
            })
            .transpose()?;
        let (mut records, total) = self
            .blocking(move |store| {
                Ok((
                    store.quarantined(after, limit + 1)?,
                    store.quarantine_count()?,
                ))
            })
            .await?;
        let next_cursor = (records.len() > limit).then(|| {
            records.truncate(limit);
            records.last().map(|r| r.id.to_string())
        });
        Ok(QuarantinePage {
            records,
            next_cursor: next_cursor.flatten(),
            total,
        })
    }

    /// One quarantined record, by its id.
    pub async fn quarantined(&self, id: &str) -> Result<QuarantinedRecord, ServiceError> {
        let wanted = quarantine_id(id)?;
        self.blocking(move |store| store.quarantined_record(wanted))
            .await?
            .ok_or_else(|| not_quarantined(id))
    }

    /// The bytes of a quarantined record, as they were stored.
    pub async fn quarantined_bytes(&self, id: &str) -> Result<Vec<u8>, ServiceError> {
        let wanted = quarantine_id(id)?;
        self.blocking(move |store| store.quarantined_bytes(wanted))
            .await?
            .ok_or_else(|| not_quarantined(id))
    }

    /// Deletes a quarantined record for good.
    pub async fn discard_quarantined(&self, id: &str) -> Result<(), ServiceError> {
        let wanted = quarantine_id(id)?;
        if self
            .blocking(move |store| store.discard_quarantined(wanted))
            .await?
        {
            Ok(())
        } else {
            Err(not_quarantined(id))
        }
    }
}

/// A quarantine id is a number; anything else names no record (404).
fn quarantine_id(id: &str) -> Result<u64, ServiceError> {
    id.parse().map_err(|_| not_quarantined(id))
}

fn not_quarantined(id: &str) -> ServiceError {
    ServiceError::NotFound(format!("no quarantined record `{id}`"))
}
