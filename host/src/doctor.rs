//! `automata doctor`: checks of a store opened offline (no server holds
//! it). Each [`Check`] is a name and a function over the store that says
//! what it found; a new check is one more entry in [`CHECKS`].

use crate::store::{Store, StoreError};

/// One check of a store.
#[derive(Debug, Clone, Copy)]
pub struct Check {
    /// Its name in the report (`records`, `quarantine`).
    pub name: &'static str,
    /// Examines the store (and may repair it, as the serving host would).
    pub run: fn(&dyn Store) -> Result<CheckReport, StoreError>,
}

/// What a check found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// One line: what was checked, what was found or done.
    pub summary: String,
    /// What needs an operator, one line each; empty when all is well.
    pub problems: Vec<String>,
}

/// The checks `automata doctor` runs, in order.
pub const CHECKS: &[Check] = &[
    Check {
        name: "records",
        run: readable_records,
    },
    Check {
        name: "quarantine",
        run: quarantine,
    },
];

/// Runs every check in [`CHECKS`] in order.
pub fn examine(store: &dyn Store) -> Result<Vec<(&'static str, CheckReport)>, StoreError> {
    CHECKS
        .iter()
        .map(|check| Ok((check.name, (check.run)(store)?)))
        .collect()
}

/// Reads every record back; unreadable ones move to the quarantine (the
/// next check lists them).
fn readable_records(store: &dyn Store) -> Result<CheckReport, StoreError> {
    let scan = store.scan_records()?;
    let mut summary = format!("{} records read back", scan.readable);
    if !scan.quarantined.is_empty() {
        summary.push_str(&format!(
            "; {} unreadable record(s) moved to the quarantine",
            scan.quarantined.len()
        ));
    }
    Ok(CheckReport {
        summary,
        problems: Vec::new(),
    })
}

/// Lists the quarantine: every record in it waits for an operator.
fn quarantine(store: &dyn Store) -> Result<CheckReport, StoreError> {
    let records = store.quarantined(None, usize::MAX)?;
    let summary = if records.is_empty() {
        "empty".to_owned()
    } else {
        format!(
            "{} record(s) could not be read; their bytes are at GET /admin/quarantine/{{id}}/bytes, \
             DELETE /admin/quarantine/{{id}} discards one",
            records.len()
        )
    };
    let problems = records
        .iter()
        .map(|record| {
            format!(
                "#{} {} `{}` ({} bytes, quarantined {}): {}",
                record.id,
                record.kind,
                record.key,
                record.size_bytes,
                record
                    .quarantined_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                record.error
            )
        })
        .collect();
    Ok(CheckReport { summary, problems })
}
