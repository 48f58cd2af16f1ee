//! Retention: which ended runs are old enough, or far enough down an
//! automation's history, to be removed. The host sets a policy
//! (`serve --retention-days`, `--retention-max-runs`); an automation may
//! override either part (`retention` field). No IO: time is passed in.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::automation::ValidationError;
use super::ids::RunId;

/// Runs are kept this many days unless the host or the automation says
/// otherwise.
pub const DEFAULT_RETENTION_DAYS: u32 = 30;
/// The longest retention an automation may ask for: 100 years.
pub const MAX_RETENTION_DAYS: u32 = 36_500;

/// How long and how many ended runs are kept. Runs still `pending` or
/// `running` are never removed, whatever their age.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Ended runs created longer ago than this are removed; `None`: kept
    /// whatever their age.
    pub max_age: Option<TimeDelta>,
    /// Past this many runs of one automation, the oldest ended ones are
    /// removed; `None`: no limit.
    pub max_runs: Option<u64>,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy {
            max_age: Some(TimeDelta::days(i64::from(DEFAULT_RETENTION_DAYS))),
            max_runs: None,
        }
    }
}

/// An automation's `retention`: either part replaces the host's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionOverride {
    /// Days to keep this automation's ended runs; 0 keeps them whatever
    /// their age. Unset: the host's `--retention-days`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub days: Option<u32>,
    /// Most runs of this automation to keep (at least 1). Unset: the host's
    /// `--retention-max-runs`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_runs: Option<u64>,
}

impl RetentionOverride {
    /// Whether neither part is set (then it is not shown).
    pub fn is_empty(&self) -> bool {
        self.days.is_none() && self.max_runs.is_none()
    }

    /// `days` within 0–36500, `max_runs` at least 1.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.days.is_some_and(|days| days > MAX_RETENTION_DAYS) {
            return Err(ValidationError {
                field: "retention.days",
                message: format!(
                    "must be between 0 (keep whatever the age) and {MAX_RETENTION_DAYS}"
                ),
            });
        }
        if self.max_runs == Some(0) {
            return Err(ValidationError {
                field: "retention.max_runs",
                message: "must be at least 1 (omit it for the host's limit)".into(),
            });
        }
        Ok(())
    }
}

impl RetentionPolicy {
    /// A policy of `days` (0: no age limit) and `max_runs` (0: no limit),
    /// as the command line gives them.
    pub fn from_days(days: u32, max_runs: u64) -> Self {
        RetentionPolicy {
            max_age: (days > 0).then(|| TimeDelta::days(i64::from(days))),
            max_runs: (max_runs > 0).then_some(max_runs),
        }
    }

    /// This policy with an automation's override applied.
    pub fn with_override(self, automation: &RetentionOverride) -> Self {
        RetentionPolicy {
            max_age: match automation.days {
                Some(0) => None,
                Some(days) => Some(TimeDelta::days(i64::from(days))),
                None => self.max_age,
            },
            max_runs: automation.max_runs.or(self.max_runs),
        }
    }

    /// The oldest run id still young enough to keep at `now`: every run id
    /// sorting before it was created before `now - max_age` (ids sort by
    /// creation time). `None` without an age limit.
    pub fn cutoff(&self, now: DateTime<Utc>) -> Option<RunId> {
        let cutoff = now - self.max_age?;
        let millis = u128::from(cutoff.timestamp_millis().max(0).unsigned_abs());
        Some(RunId::from_value(millis << 80))
    }

    /// Of an automation's `total` runs, how many of the oldest are beyond
    /// its count limit.
    pub fn excess(&self, total: u64) -> u64 {
        self.max_runs.map_or(0, |keep| total.saturating_sub(keep))
    }
}

/// Whether the run at `position` (0 = oldest) of an automation's runs is due
/// for removal: beyond the count (`position < excess`) or before the age
/// `cutoff`. Both only grow along the oldest-first order, so the first run
/// that is not due ends the walk.
pub fn is_due(position: u64, id: &RunId, excess: u64, cutoff: Option<&RunId>) -> bool {
    position < excess || cutoff.is_some_and(|cutoff| id < cutoff)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::IdSequence;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn id_at(ids: &mut IdSequence, time: &str) -> RunId {
        let ms = at(time).timestamp_millis() as u64;
        RunId::from_value(ids.next(ms, rand::random()))
    }

    #[test]
    fn the_cutoff_separates_runs_created_before_the_age_limit() {
        let policy = RetentionPolicy::from_days(30, 0);
        let now = at("2026-03-31T12:00:00Z");
        let cutoff = policy.cutoff(now).unwrap();
        let mut ids = IdSequence::default();
        let old = id_at(&mut ids, "2026-03-01T11:59:59.999Z");
        let young = id_at(&mut ids, "2026-03-01T12:00:00Z");
        assert!(old < cutoff);
        assert!(young >= cutoff);
        assert!(is_due(5, &old, 0, Some(&cutoff)));
        assert!(!is_due(5, &young, 0, Some(&cutoff)));
        assert_eq!(RetentionPolicy::from_days(0, 0).cutoff(now), None);
    }

    #[test]
    fn the_oldest_runs_beyond_the_count_are_due() {
        let policy = RetentionPolicy::from_days(0, 100);
        assert_eq!(policy.excess(130), 30);
        assert_eq!(policy.excess(99), 0);
        let id = RunId::from_value(1);
        assert!(is_due(29, &id, 30, None));
        assert!(!is_due(30, &id, 30, None));
        assert_eq!(RetentionPolicy::from_days(30, 0).excess(1_000_000), 0);
    }

    #[test]
    fn an_automation_overrides_either_part() {
        let host = RetentionPolicy::from_days(30, 1000);
        let longer = host.with_override(&RetentionOverride {
            days: Some(90),
            max_runs: None,
        });
        assert_eq!(longer.max_age, Some(TimeDelta::days(90)));
        assert_eq!(longer.max_runs, Some(1000));
        let forever = host.with_override(&RetentionOverride {
            days: Some(0),
            max_runs: Some(5),
        });
        assert_eq!((forever.max_age, forever.max_runs), (None, Some(5)));
        assert_eq!(host.with_override(&RetentionOverride::default()), host);
    }

    #[test]
    fn overrides_are_validated() {
        let bad_days = RetentionOverride {
            days: Some(MAX_RETENTION_DAYS + 1),
            max_runs: None,
        };
        assert_eq!(bad_days.validate().unwrap_err().field, "retention.days");
        let no_runs = RetentionOverride {
            days: None,
            max_runs: Some(0),
        };
        assert_eq!(no_runs.validate().unwrap_err().field, "retention.max_runs");
        assert!(RetentionOverride::default().validate().is_ok());
        assert!(RetentionOverride::default().is_empty());
    }
}
