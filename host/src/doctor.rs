//! `automata doctor`: checks of a store opened offline (no server holds
//! it). Each [`Check`] is a name and a function over the store that says
//! what it found; a new check is one more entry in [`CHECKS`].

use crate::store::{IndexReport, Store, StoreError};

/// How `doctor` was asked to run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DoctorOptions {
    /// Fix what a check can fix (`--repair`), not only report it.
    pub repair: bool,
}

/// One check of a store.
#[derive(Debug, Clone, Copy)]
pub struct Check {
    /// Its name in the report (`records`, `indexes`, `quarantine`).
    pub name: &'static str,
    /// Examines the store (and may repair it, as the serving host would, or
    /// as `--repair` asks).
    pub run: fn(&dyn Store, DoctorOptions) -> Result<CheckReport, StoreError>,
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
        name: "indexes",
        run: indexes,
    },
    Check {
        name: "quarantine",
        run: quarantine,
    },
];

/// Runs every check in [`CHECKS`] in order.
pub fn examine(
    store: &dyn Store,
    options: DoctorOptions,
) -> Result<Vec<(&'static str, CheckReport)>, StoreError> {
    CHECKS
        .iter()
        .map(|check| Ok((check.name, (check.run)(store, options)?)))
        .collect()
}

/// Reads every record back; unreadable ones move to the quarantine (the
/// next check lists them).
fn readable_records(store: &dyn Store, _: DoctorOptions) -> Result<CheckReport, StoreError> {
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

/// Recomputes the index entries the records imply (lookup keys, trigger
/// listeners, runs by automation, status, app and trigger, blob reference
/// counts) and
/// compares them with the stored ones; `--repair` makes them agree.
fn indexes(store: &dyn Store, options: DoctorOptions) -> Result<CheckReport, StoreError> {
    let report = store.check_indexes(options.repair)?;
    Ok(index_report(&report))
}

fn index_report(report: &IndexReport) -> CheckReport {
    if report.is_clean() {
        return CheckReport {
            summary: format!("agree with the {} records", report.records),
            problems: Vec::new(),
        };
    }
    let found = format!(
        "{} missing or wrong, {} stray entries (of {} records)",
        report.missing, report.stray, report.records
    );
    if report.repaired {
        return CheckReport {
            summary: format!("{found}: repaired"),
            problems: Vec::new(),
        };
    }
    let mut problems = report.examples.clone();
    problems.push(
        "run `automata doctor --repair` (server stopped) to rebuild them from the records"
            .to_owned(),
    );
    CheckReport {
        summary: found,
        problems,
    }
}

/// Lists the quarantine: every record in it waits for an operator.
fn quarantine(store: &dyn Store, _: DoctorOptions) -> Result<CheckReport, StoreError> {
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
