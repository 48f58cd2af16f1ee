//! Cron schedules: parsing, validation and DST-correct next due times.
//!
//! An expression is the standard five fields (`minute hour day-of-month month
//! day-of-week`, e.g. `0 9 * * 1-5`) with an optional leading seconds field,
//! evaluated on the wall clock of an IANA time zone (UTC by default).
//! [croner] matches patterns; this module owns how wall clock times become
//! instants, because croner's own DST handling skips gap times of non-fixed
//! patterns (`0 */2 * * *` loses 02:00 on a spring-forward day) and runs
//! patterns like `0 1-3 * * *` twice in an autumn fold.
//!
//! The rules:
//! - A wall clock time that does not exist (spring-forward gap) runs once, at
//!   the first instant after the gap (02:30 in New York on the spring day runs
//!   at 03:00 EDT). Several gap times collapse into that one run.
//! - A wall clock time that happens twice (autumn fold) runs once, at its
//!   first instant — unless the hour field is a wildcard (`*`, `*/2`): such
//!   patterns follow elapsed time and also run in the repeated hour, as
//!   classic cron does for wildcard jobs.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, LocalResult, NaiveDateTime, TimeDelta, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// Why an expression or time zone was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// Nothing but whitespace.
    #[error("schedule is empty: expected a cron expression like `0 9 * * 1-5`")]
    Empty,
    /// Not 5 or 6 fields.
    #[error(
        "schedule `{expression}` has {found} field(s): expected 5 (minute hour day-of-month month \
         day-of-week, e.g. `0 9 * * 1-5`) or 6 with a leading seconds field"
    )]
    FieldCount {
        /// The expression as given.
        expression: String,
        /// How many whitespace-separated fields it has.
        found: usize,
    },
    /// One field is malformed or out of range.
    #[error(
        "schedule `{expression}` has an invalid {field} field `{value}`: {reason} (allowed: {allowed})"
    )]
    InvalidField {
        /// The expression as given.
        expression: String,
        /// Which field (`minute`, `day-of-week`, …).
        field: &'static str,
        /// The field's text.
        value: String,
        /// What the cron parser said.
        reason: String,
        /// The values the field takes.
        allowed: &'static str,
    },
    /// The fields are each valid but together not.
    #[error("schedule `{expression}` is invalid: {reason}")]
    Invalid {
        /// The expression as given.
        expression: String,
        /// What the cron parser said.
        reason: String,
    },
    /// A valid pattern that matches no date (e.g. `0 0 30 2 *`).
    #[error("schedule `{expression}` never occurs")]
    NeverOccurs {
        /// The expression as given.
        expression: String,
    },
    /// Not an IANA time zone name.
    #[error("unknown time zone `{0}`: expected an IANA name like `Europe/Berlin` or `UTC`")]
    UnknownTimezone(String),
}

/// The time zone used when none is given.
pub const DEFAULT_TIMEZONE: &str = "UTC";

/// The fields of a six-field expression, in order, with what each allows.
const FIELDS: [(&str, &str); 6] = [
    ("seconds", "0-59 and * , - /"),
    ("minute", "0-59 and * , - /"),
    ("hour", "0-23 and * , - /"),
    ("day-of-month", "1-31, L, W and * , - / ?"),
    ("month", "1-12 or JAN-DEC and * , - /"),
    (
        "day-of-week",
        "0-7 or SUN-SAT (0 and 7 are Sunday), L, # and * , - / ?",
    ),
];

/// A parsed cron expression in a time zone.
#[derive(Clone)]
pub struct Schedule {
    expression: String,
    timezone: Tz,
    cron: Cron,
    has_seconds: bool,
    /// Hour field is a wildcard: the pattern follows elapsed time and also
    /// runs in the repeated hour of an autumn fold.
    follows_elapsed_time: bool,
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Schedule")
            .field("expression", &self.expression)
            .field("timezone", &self.timezone.name())
            .finish()
    }
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.expression == other.expression && self.timezone == other.timezone
    }
}

impl Eq for Schedule {}

impl Schedule {
    /// Parses `expression` (5 fields, or 6 with leading seconds; `@daily`-style
    /// nicknames too) in `timezone` (an IANA name; UTC when `None`).
    pub fn parse(expression: &str, timezone: Option<&str>) -> Result<Schedule, ScheduleError> {
        let timezone = match timezone {
            None => Tz::UTC,
            Some(name) => {
                Tz::from_str(name).map_err(|_| ScheduleError::UnknownTimezone(name.to_owned()))?
            }
        };
        let expression = expression.trim();
        if expression.is_empty() {
            return Err(ScheduleError::Empty);
        }
        let fields: Vec<&str> = expression.split_whitespace().collect();
        let nickname = fields.len() == 1 && fields[0].starts_with('@');
        if !nickname && !(5..=6).contains(&fields.len()) {
            return Err(ScheduleError::FieldCount {
                expression: expression.to_owned(),
                found: fields.len(),
            });
        }
        let cron = parser().parse(expression).map_err(|error| {
            let blamed = if nickname {
                None
            } else {
                blame_field(expression, &fields)
            };
            blamed.unwrap_or_else(|| ScheduleError::Invalid {
                expression: expression.to_owned(),
                reason: if nickname {
                    "unknown nickname: use @yearly, @annually, @monthly, @weekly, @daily or @hourly"
                        .to_owned()
                } else {
                    plain_reason(&error)
                },
            })
        })?;
        let schedule = Schedule {
            expression: expression.to_owned(),
            timezone,
            follows_elapsed_time: cron.pattern.hours.from_wildcard,
            has_seconds: fields.len() == 6,
            cron,
        };
        // A pattern whose day and month never meet (30 February) would make
        // every search fail; refuse it now rather than never running.
        let reference = Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).single();
        if reference.and_then(|at| schedule.next_after(at)).is_none() {
            return Err(ScheduleError::NeverOccurs {
                expression: expression.to_owned(),
            });
        }
        Ok(schedule)
    }

    /// The expression as given (trimmed).
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The time zone the expression is evaluated in.
    pub fn timezone(&self) -> Tz {
        self.timezone
    }

    /// The time zone's IANA name.
    pub fn timezone_name(&self) -> &'static str {
        self.timezone.name()
    }

    /// Whether the expression has a leading seconds field.
    pub fn has_seconds(&self) -> bool {
        self.has_seconds
    }

    /// The first due time strictly after `after`, in whole seconds; `None`
    /// when there is none before croner's year limit.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let on_wall_clock = self.next_on_wall_clock(after);
        if !self.follows_elapsed_time {
            return on_wall_clock;
        }
        // Croner walks both halves of a fold for wildcard hours; it only
        // skips gap times, which the wall clock walk maps to the gap's end.
        let local_after = after.with_timezone(&self.timezone);
        let in_elapsed_time = self.cron.find_next_occurrence(&local_after, false).ok();
        match (on_wall_clock, in_elapsed_time) {
            (Some(a), Some(b)) => Some(a.min(b.with_timezone(&Utc))),
            (a, b) => a.or(b.map(|b| b.with_timezone(&Utc))),
        }
    }

    /// Due times strictly after `after`, in order.
    pub fn occurrences_after(&self, after: DateTime<Utc>) -> impl Iterator<Item = DateTime<Utc>> {
        std::iter::successors(self.next_after(after), move |&at| self.next_after(at))
    }

    /// The first instant strictly after `after` whose wall clock time matches,
    /// taking a repeated time's first instant and a skipped time's gap end.
    fn next_on_wall_clock(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut wall = after
            .with_timezone(&self.timezone)
            .naive_local()
            .with_nanosecond(0)?;
        let mut inclusive = true;
        loop {
            wall = self
                .cron
                .find_next_occurrence(&wall.and_utc(), inclusive)
                .ok()?
                .naive_utc();
            inclusive = false;
            let at = self.first_instant_of(wall);
            if at > after {
                return Some(at);
            }
        }
    }

    /// The instant a wall clock time runs at: its only or first instant, or,
    /// inside a spring-forward gap, the gap's end.
    fn first_instant_of(&self, wall: NaiveDateTime) -> DateTime<Utc> {
        match self.timezone.from_local_datetime(&wall) {
            LocalResult::Single(at) | LocalResult::Ambiguous(at, _) => at.with_timezone(&Utc),
            LocalResult::None => self.gap_end(wall),
        }
    }

    /// The first instant whose wall clock time is past `wall`, which lies in
    /// a gap. Offsets stay within ±15 h, so the answer is within ±15 h of
    /// `wall` read as UTC; the wall clock only moves forward there (a fold
    /// within a day of a gap exists in no zone), so a binary search finds it.
    fn gap_end(&self, wall: NaiveDateTime) -> DateTime<Utc> {
        let reach = TimeDelta::hours(15).num_seconds();
        let (mut before, mut past) = (
            wall.and_utc().timestamp() - reach,
            wall.and_utc().timestamp() + reach,
        );
        let wall_clock_at = |seconds: i64| {
            DateTime::from_timestamp(seconds, 0)
                .map(|at| at.with_timezone(&self.timezone).naive_local())
        };
        while past - before > 1 {
            let middle = before + (past - before) / 2;
            if wall_clock_at(middle).is_some_and(|local| local > wall) {
                past = middle;
            } else {
                before = middle;
            }
        }
        DateTime::from_timestamp(past, 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
    }
}

fn parser() -> CronParser {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
}

/// Finds the first field that fails on its own, for an error naming it.
fn blame_field(expression: &str, fields: &[&str]) -> Option<ScheduleError> {
    let offset = FIELDS.len() - fields.len();
    fields.iter().enumerate().find_map(|(index, value)| {
        let position = index + offset;
        let mut alone = vec!["*"; FIELDS.len()];
        alone[position] = value;
        let error = parser().parse(&alone.join(" ")).err()?;
        let (field, allowed) = FIELDS[position];
        Some(ScheduleError::InvalidField {
            expression: expression.to_owned(),
            field,
            value: (*value).to_owned(),
            reason: plain_reason(&error),
            allowed,
        })
    })
}

/// Croner's message without its type prefixes and trailing period.
fn plain_reason(error: &croner::errors::CronError) -> String {
    use croner::errors::CronError;
    let text = match error {
        CronError::InvalidPattern(text)
        | CronError::IllegalCharacters(text)
        | CronError::ComponentError(text) => text.clone(),
        other => other.to_string(),
    };
    let text = text.trim_end_matches('.');
    let text = text.strip_prefix("CronPattern ").unwrap_or(text);
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => "not a cron expression".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("test timestamp")
            .with_timezone(&Utc)
    }

    fn next(expression: &str, timezone: Option<&str>, after: &str, count: usize) -> Vec<String> {
        let schedule = Schedule::parse(expression, timezone).expect("valid schedule");
        schedule
            .occurrences_after(utc(after))
            .take(count)
            .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .collect()
    }

    #[test]
    fn five_fields_in_utc_by_default() {
        let schedule = Schedule::parse("0 9 * * 1-5", None).unwrap();
        assert_eq!(schedule.timezone_name(), "UTC");
        assert_eq!(schedule.expression(), "0 9 * * 1-5");
        assert!(!schedule.has_seconds());
        // 2026-02-27 is a Friday: the next weekday 09:00 after Friday 10:00 is Monday.
        assert_eq!(
            next("0 9 * * 1-5", None, "2026-02-27T10:00:00Z", 2),
            ["2026-03-02T09:00:00Z", "2026-03-03T09:00:00Z"]
        );
    }

    #[test]
    fn next_is_strictly_after() {
        assert_eq!(
            next("0 9 * * *", None, "2026-02-28T09:00:00Z", 1),
            ["2026-03-01T09:00:00Z"]
        );
        // A fraction of a second past a due time does not return that time.
        let schedule = Schedule::parse("*/5 * * * * *", None).unwrap();
        let after = utc("2026-02-28T09:00:00.250Z");
        assert_eq!(
            schedule.next_after(after),
            Some(utc("2026-02-28T09:00:05Z"))
        );
    }

    #[test]
    fn leading_seconds_field() {
        let schedule = Schedule::parse("*/2 * * * * *", None).unwrap();
        assert!(schedule.has_seconds());
        assert_eq!(
            next("*/2 * * * * *", None, "2026-02-28T09:00:00Z", 3),
            [
                "2026-02-28T09:00:02Z",
                "2026-02-28T09:00:04Z",
                "2026-02-28T09:00:06Z"
            ]
        );
    }

    #[test]
    fn nicknames_and_names() {
        assert_eq!(
            next("@daily", None, "2026-02-28T09:00:00Z", 1),
            ["2026-03-01T00:00:00Z"]
        );
        assert_eq!(
            next("0 12 * JAN MON", None, "2026-02-28T09:00:00Z", 1),
            ["2027-01-04T12:00:00Z"]
        );
    }

    #[test]
    fn evaluated_in_the_time_zone() {
        // 09:00 in Berlin is 08:00 UTC in winter and 07:00 UTC in summer.
        assert_eq!(
            next(
                "0 9 * * *",
                Some("Europe/Berlin"),
                "2026-03-28T00:00:00Z",
                3
            ),
            [
                "2026-03-28T08:00:00Z",
                "2026-03-29T07:00:00Z",
                "2026-03-30T07:00:00Z"
            ]
        );
    }

    #[test]
    fn new_york_spring_gap_runs_once_at_the_shifted_time() {
        // 2026-03-08: 02:00 EST jumps to 03:00 EDT (07:00 UTC).
        assert_eq!(
            next(
                "30 2 * * *",
                Some("America/New_York"),
                "2026-03-07T12:00:00Z",
                3
            ),
            [
                "2026-03-08T07:00:00Z",
                "2026-03-09T06:30:00Z",
                "2026-03-10T06:30:00Z"
            ]
        );
        // Croner alone drops the 02:00 run of a stepped hour; it runs at 03:00 EDT.
        assert_eq!(
            next(
                "0 */2 * * *",
                Some("America/New_York"),
                "2026-03-08T04:00:00Z",
                3
            ),
            [
                "2026-03-08T05:00:00Z",
                "2026-03-08T07:00:00Z",
                "2026-03-08T08:00:00Z"
            ]
        );
        // Every gap time collapses into the one run at the gap's end.
        assert_eq!(
            next(
                "*/20 * * * *",
                Some("America/New_York"),
                "2026-03-08T06:30:00Z",
                3
            ),
            [
                "2026-03-08T06:40:00Z",
                "2026-03-08T07:00:00Z",
                "2026-03-08T07:20:00Z"
            ]
        );
    }

    #[test]
    fn berlin_spring_gap_runs_once_at_the_shifted_time() {
        // 2026-03-29: 02:00 CET jumps to 03:00 CEST (01:00 UTC).
        assert_eq!(
            next(
                "30 2 * * *",
                Some("Europe/Berlin"),
                "2026-03-28T12:00:00Z",
                2
            ),
            ["2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"]
        );
        assert_eq!(
            next(
                "15 2-3 * * *",
                Some("Europe/Berlin"),
                "2026-03-28T12:00:00Z",
                3
            ),
            [
                "2026-03-29T01:00:00Z",
                "2026-03-29T01:15:00Z",
                "2026-03-30T00:15:00Z"
            ]
        );
    }

    #[test]
    fn new_york_ambiguous_autumn_time_runs_once() {
        // 2026-11-01: 02:00 EDT falls back to 01:00 EST; 01:30 happens at 05:30 and 06:30 UTC.
        assert_eq!(
            next(
                "30 1 * * *",
                Some("America/New_York"),
                "2026-10-31T12:00:00Z",
                2
            ),
            ["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"]
        );
        // Croner alone runs 01:00 twice for an hour range.
        assert_eq!(
            next(
                "0 1-3 * * *",
                Some("America/New_York"),
                "2026-10-31T12:00:00Z",
                4
            ),
            [
                "2026-11-01T05:00:00Z",
                "2026-11-01T07:00:00Z",
                "2026-11-01T08:00:00Z",
                "2026-11-02T06:00:00Z"
            ]
        );
        // Asked from inside the repeated hour, the repeat is not due again.
        assert_eq!(
            next(
                "30 1 * * *",
                Some("America/New_York"),
                "2026-11-01T06:10:00Z",
                1
            ),
            ["2026-11-02T06:30:00Z"]
        );
    }

    #[test]
    fn berlin_ambiguous_autumn_time_runs_once() {
        // 2026-10-25: 03:00 CEST falls back to 02:00 CET; 02:30 happens at 00:30 and 01:30 UTC.
        assert_eq!(
            next(
                "30 2 * * *",
                Some("Europe/Berlin"),
                "2026-10-24T12:00:00Z",
                2
            ),
            ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"]
        );
        assert_eq!(
            next(
                "0 30 2 * * *",
                Some("Europe/Berlin"),
                "2026-10-25T00:30:00Z",
                1
            ),
            ["2026-10-26T01:30:00Z"]
        );
    }

    #[test]
    fn wildcard_hours_follow_elapsed_time_through_a_fold() {
        assert_eq!(
            next(
                "*/30 * * * *",
                Some("America/New_York"),
                "2026-11-01T04:45:00Z",
                5
            ),
            [
                "2026-11-01T05:00:00Z",
                "2026-11-01T05:30:00Z",
                "2026-11-01T06:00:00Z",
                "2026-11-01T06:30:00Z",
                "2026-11-01T07:00:00Z"
            ]
        );
        assert_eq!(
            next(
                "0 * * * *",
                Some("Europe/Berlin"),
                "2026-10-24T23:30:00Z",
                4
            ),
            [
                "2026-10-25T00:00:00Z",
                "2026-10-25T01:00:00Z",
                "2026-10-25T02:00:00Z",
                "2026-10-25T03:00:00Z"
            ]
        );
    }

    #[test]
    fn timezone_errors() {
        assert_eq!(
            Schedule::parse("0 9 * * *", Some("Mars/Olympus")),
            Err(ScheduleError::UnknownTimezone("Mars/Olympus".into()))
        );
        let message = Schedule::parse("0 9 * * *", Some("utc+2"))
            .unwrap_err()
            .to_string();
        assert!(message.contains("IANA"), "{message}");
    }

    #[test]
    fn expression_errors_name_what_is_wrong() {
        assert_eq!(Schedule::parse("  ", None), Err(ScheduleError::Empty));
        let cases = [
            ("* * * *", "has 4 field(s)"),
            ("0 0 9 * * 1-5 2026", "has 7 field(s)"),
            ("61 * * * *", "invalid minute field `61`"),
            ("0 25 * * *", "invalid hour field `25`"),
            ("0 9 32 * *", "invalid day-of-month field `32`"),
            ("0 9 * 13 *", "invalid month field `13`"),
            ("0 9 * * MOON", "invalid day-of-week field `MOON`"),
            ("70 0 9 * * *", "invalid seconds field `70`"),
            ("0 0 30 2 *", "never occurs"),
            ("@fortnightly", "unknown nickname"),
        ];
        for (expression, expected) in cases {
            let message = Schedule::parse(expression, None).unwrap_err().to_string();
            assert!(
                message.contains(expected),
                "`{expression}` gave `{message}`, expected `{expected}`"
            );
            assert!(
                message.contains(expression.trim()),
                "`{message}` quotes the expression"
            );
        }
    }

    #[test]
    fn leap_day_schedule_is_valid() {
        assert_eq!(
            next("0 0 29 2 *", None, "2026-01-01T00:00:00Z", 1),
            ["2028-02-29T00:00:00Z"]
        );
    }
}
