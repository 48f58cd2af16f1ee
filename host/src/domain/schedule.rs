//! Cron schedules: parsing, validation and DST-correct next due times.
//!
//! An expression is the standard five fields (`minute hour day-of-month month
//! day-of-week`, e.g. `0 9 * * 1-5`) with an optional leading seconds field
//! and an optional trailing year (Quartz's 7 fields), evaluated on the wall
//! clock of an IANA time zone (UTC by default). The forms pasted from other
//! crons (`CRON_TZ=` prefixes, Quartz steps and `?`, wrapping ranges, Vixie's
//! day rule) are read by [`super::cron_compat`].
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

use super::cron_compat::{self, Reading};
use super::cron_describe;

/// Why an expression or time zone was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// Nothing but whitespace.
    #[error("schedule is empty: expected a cron expression like `0 9 * * 1-5`")]
    Empty,
    /// Not 5, 6 or 7 fields.
    #[error(
        "schedule `{expression}` has {found} field(s): expected 5 (minute hour day-of-month month \
         day-of-week, e.g. `0 9 * * 1-5`), 6 with a leading seconds field, or 7 with seconds \
         first and a year last (`0 0 9 * * 1-5 2027`)"
    )]
    FieldCount {
        /// The expression as given.
        expression: String,
        /// How many whitespace-separated fields it has.
        found: usize,
    },
    /// Six fields whose last one holds a year: six are read seconds-first.
    #[error(
        "schedule `{expression}` has 6 fields, and six fields are read as seconds-first (second \
         minute hour day-of-month month day-of-week), but the last one, `{year}`, looks like a \
         year: for a year field write all 7 fields, seconds first (`0 0 9 * * 1-5 2027`)"
    )]
    YearInSixFields {
        /// The expression as given.
        expression: String,
        /// The sixth field.
        year: String,
    },
    /// A `CRON_TZ=` / `TZ=` prefix and a `timezone` that name different zones.
    #[error(
        "schedule `{expression}` names the time zone {prefix} but `timezone` is {given}: \
         give the zone once, or the same zone in both"
    )]
    ConflictingTimezone {
        /// The expression as given.
        expression: String,
        /// The zone of the prefix.
        prefix: String,
        /// The zone given separately.
        given: String,
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
    /// Longer than [`MAX_EXPRESSION_CHARS`].
    #[error(
        "schedule is {0} characters long; at most {MAX_EXPRESSION_CHARS} are allowed (use ranges \
         and steps such as `0-59/5` instead of long lists)"
    )]
    TooLong(usize),
}

/// The longest cron expression taken, in characters: 512. Even an
/// expression listing every second, minute, hour and day of month one by
/// one is under 500;
/// without a cap an 800 KB list is parsed, stored and sent with every
/// automation list.
pub const MAX_EXPRESSION_CHARS: usize = 512;

/// The time zone used when none is given.
pub const DEFAULT_TIMEZONE: &str = "UTC";

/// How many due times a preview shows unless asked: 5.
pub const DEFAULT_PREVIEW_COUNT: usize = 5;
/// Most due times one preview shows: 100.
pub const MAX_PREVIEW_COUNT: usize = 100;

/// `GET /apps/:app_id/automations/schedule`: an expression's next due times.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct SchedulePreview {
    /// The expression as given (trimmed).
    #[schema(example = "0 9 * * 1-5")]
    pub expression: String,
    /// The IANA zone it is read in (from `timezone`, the expression's
    /// `CRON_TZ=` prefix, or UTC).
    #[schema(example = "Europe/Berlin")]
    pub timezone: String,
    /// A plain-language reading, ending with the zone.
    #[schema(example = "At 09:00, Monday through Friday, in Europe/Berlin")]
    pub description: String,
    /// The due times strictly after `after`, oldest first, RFC 3339 in UTC,
    /// with the DST rules applied (a gap time runs at the gap's end, a
    /// repeated time once). Fewer than `count` when the schedule ends.
    pub next: Vec<DateTime<Utc>>,
}

/// A parsed cron expression in a time zone.
#[derive(Clone)]
pub struct Schedule {
    expression: String,
    timezone: Tz,
    cron: Cron,
    /// The plain-English reading, without the zone.
    description: String,
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
    /// Parses `expression` (5 fields, 6 with leading seconds or 7 with a
    /// trailing year; nicknames and the forms of [`super::cron_compat`] too)
    /// in `timezone` (an IANA name; the expression's `CRON_TZ=` prefix, or
    /// UTC, when `None`). A prefix and a `timezone` naming different zones
    /// are refused.
    pub fn parse(expression: &str, timezone: Option<&str>) -> Result<Schedule, ScheduleError> {
        let given = match timezone {
            None => None,
            Some(name) => Some(
                Tz::from_str(name).map_err(|_| ScheduleError::UnknownTimezone(name.to_owned()))?,
            ),
        };
        let expression = expression.trim();
        if expression.is_empty() {
            return Err(ScheduleError::Empty);
        }
        let length = expression.chars().count();
        if length > MAX_EXPRESSION_CHARS {
            return Err(ScheduleError::TooLong(length));
        }
        let reading = cron_compat::read(expression)?;
        let timezone = match (reading.zone, given) {
            (Some(prefix), Some(given)) if prefix != given => {
                return Err(ScheduleError::ConflictingTimezone {
                    expression: expression.to_owned(),
                    prefix: prefix.name().to_owned(),
                    given: given.name().to_owned(),
                });
            }
            (prefix, given) => prefix.or(given).unwrap_or(Tz::UTC),
        };
        let cron = parser()
            .parse(&reading.pattern.join(" "))
            .map_err(|error| {
                blame_field(expression, &reading).unwrap_or_else(|| ScheduleError::Invalid {
                    expression: expression.to_owned(),
                    reason: plain_reason(&error),
                })
            })?;
        let schedule = Schedule {
            expression: expression.to_owned(),
            timezone,
            follows_elapsed_time: cron.pattern.hours.from_wildcard,
            has_seconds: reading.has_seconds(),
            description: cron_describe::describe(&reading),
            cron,
        };
        // A pattern whose day and month never meet (30 February) would make
        // every search fail; refuse it now rather than never running. (A
        // year field may end a schedule later; that is not refused here.)
        let reference = Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0).single();
        if reference.and_then(|at| schedule.next_after(at)).is_none() {
            return Err(ScheduleError::NeverOccurs {
                expression: expression.to_owned(),
            });
        }
        Ok(schedule)
    }

    /// The zone a leading `CRON_TZ=` / `TZ=` in `expression` names, if it
    /// has one and the zone is known.
    pub fn zone_prefix(expression: &str) -> Option<&'static str> {
        cron_compat::read(expression.trim())
            .ok()?
            .zone
            .map(|zone| zone.name())
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
        #[cfg(test)]
        SEARCHES.with(|searches| searches.set(searches.get() + 1));
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

    /// A plain-language reading of the expression and its zone, e.g. "At
    /// 09:00, Monday through Friday, in Europe/Berlin".
    pub fn describe(&self) -> String {
        format!("{}, in {}", self.description, self.timezone.name())
    }

    /// The next `count` due times strictly after `after`, with the
    /// expression, zone and description: what a user checks before switching
    /// a schedule on. Fewer when the schedule ends (a year field).
    pub fn preview(&self, after: DateTime<Utc>, count: usize) -> SchedulePreview {
        SchedulePreview {
            expression: self.expression.clone(),
            timezone: self.timezone.name().to_owned(),
            description: self.describe(),
            next: self.occurrences_after(after).take(count).collect(),
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

#[cfg(test)]
thread_local! {
    /// How many due time searches ([`Schedule::next_after`]) this thread
    /// made: tests bound a caller's work with it.
    pub(crate) static SEARCHES: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

fn parser() -> CronParser {
    CronParser::builder()
        .seconds(Seconds::Required)
        .year(Year::Required)
        .build()
}

/// Finds the first field that fails on its own, for an error naming it.
fn blame_field(expression: &str, reading: &Reading) -> Option<ScheduleError> {
    reading
        .written
        .iter()
        .enumerate()
        .find_map(|(index, value)| {
            let position = index + if reading.written.len() == 5 { 1 } else { 0 };
            let mut alone = ["*"; 7];
            alone[position] = reading.pattern[position].trim_start_matches('+');
            let error = parser().parse(&alone.join(" ")).err()?;
            let field = reading.field_of(index);
            Some(ScheduleError::InvalidField {
                expression: expression.to_owned(),
                field: field.name,
                value: value.clone(),
                reason: plain_reason(&error),
                allowed: field.allowed,
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
    fn empty_list_items_and_overlong_expressions_are_refused() {
        for expression in [
            ",5 * * * *",
            "5, * * * *",
            "1,,2 * * * *",
            "0 9 * * MON,,FRI",
        ] {
            let error = Schedule::parse(expression, None).unwrap_err().to_string();
            assert!(
                error.contains("a list has an empty item"),
                "{expression}: {error}"
            );
        }
        // Every minute listed one by one is long but taken.
        let minutes: Vec<String> = (0..60).map(|m| m.to_string()).collect();
        let listed = format!("{} * * * *", minutes.join(","));
        assert!(Schedule::parse(&listed, None).is_ok());
        let huge = format!("{} * * * *", vec!["5"; 400_000].join(","));
        assert_eq!(
            Schedule::parse(&huge, None),
            Err(ScheduleError::TooLong(huge.chars().count()))
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
            ("0 0 9 * * 1-5 2026 1", "has 8 field(s)"),
            ("0 9 * * 1-5 2027", "six fields are read as seconds-first"),
            ("@every 90m", "`@every` intervals are not supported"),
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

    // The forms pasted from other crons (issue 13, part 2). Every expected
    // instant below was worked out by hand from the calendar (weekdays
    // checked with Python's `datetime.date(...).weekday()`) and converted
    // from the zone's wall clock to UTC with Python's `zoneinfo`
    // (`datetime(..., tzinfo=ZoneInfo(zone)).astimezone(timezone.utc)`; a
    // time in a gap is mapped to the first instant after the gap, found by
    // stepping UTC seconds until the wall clock passes it).

    #[test]
    fn quartz_step_starts_in_berlin_across_spring_forward() {
        // `5/20` minutes is 5, 25, 45; `?` leaves the day to the other field.
        // 2026-03-29 is Berlin's spring-forward day: 09:05 CEST is 07:05Z.
        assert_eq!(
            next(
                "0 5/20 9 * * ?",
                Some("Europe/Berlin"),
                "2026-03-28T00:00:00Z",
                5
            ),
            [
                "2026-03-28T08:05:00Z",
                "2026-03-28T08:25:00Z",
                "2026-03-28T08:45:00Z",
                "2026-03-29T07:05:00Z",
                "2026-03-29T07:25:00Z"
            ]
        );
        // `0/15` seconds and `0/6` hours run from the field's start.
        assert_eq!(
            next("0/15 0 0/6 * * ?", None, "2026-03-01T00:00:00Z", 5),
            [
                "2026-03-01T00:00:15Z",
                "2026-03-01T00:00:30Z",
                "2026-03-01T00:00:45Z",
                "2026-03-01T06:00:00Z",
                "2026-03-01T06:00:15Z"
            ]
        );
    }

    #[test]
    fn quartz_seven_fields_with_a_year() {
        assert_eq!(
            next("0 0 12 * * ? 2027", None, "2026-06-01T00:00:00Z", 3),
            [
                "2027-01-01T12:00:00Z",
                "2027-01-02T12:00:00Z",
                "2027-01-03T12:00:00Z"
            ]
        );
        // The schedule ends with its last year.
        assert!(next("0 0 12 * * ? 2027", None, "2027-12-31T12:00:00Z", 3).is_empty());
        assert_eq!(
            next("0 0 12 1 1 ? 2027-2029", None, "2026-06-01T00:00:00Z", 5),
            [
                "2027-01-01T12:00:00Z",
                "2028-01-01T12:00:00Z",
                "2029-01-01T12:00:00Z"
            ]
        );
        assert_eq!(
            next("0 0 12 1 1 ? 2027/2", None, "2026-06-01T00:00:00Z", 3),
            [
                "2027-01-01T12:00:00Z",
                "2029-01-01T12:00:00Z",
                "2031-01-01T12:00:00Z"
            ]
        );
        // New York's 2027 spring-forward day (14 March): 02:30 runs at 03:00 EDT.
        assert_eq!(
            next(
                "0 30 2 13-15 3 ? 2027",
                Some("America/New_York"),
                "2027-03-12T12:00:00Z",
                3
            ),
            [
                "2027-03-13T07:30:00Z",
                "2027-03-14T07:00:00Z",
                "2027-03-15T06:30:00Z"
            ]
        );
    }

    #[test]
    fn nicknames_in_utc() {
        // 2026-03-01 is a Sunday.
        let after = "2026-03-01T10:30:00Z";
        for (nickname, expected) in [
            ("@yearly", ["2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z"]),
            (
                "@annually",
                ["2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z"],
            ),
            ("@monthly", ["2026-04-01T00:00:00Z", "2026-05-01T00:00:00Z"]),
            ("@weekly", ["2026-03-08T00:00:00Z", "2026-03-15T00:00:00Z"]),
            ("@daily", ["2026-03-02T00:00:00Z", "2026-03-03T00:00:00Z"]),
            (
                "@midnight",
                ["2026-03-02T00:00:00Z", "2026-03-03T00:00:00Z"],
            ),
            ("@hourly", ["2026-03-01T11:00:00Z", "2026-03-01T12:00:00Z"]),
        ] {
            assert_eq!(next(nickname, None, after, 2), expected, "{nickname}");
        }
    }

    #[test]
    fn santiago_midnight_gap_runs_once_at_one() {
        // 2026-09-06: Santiago's clocks jump from 00:00 -04 to 01:00 -03, so
        // that day has no midnight; @daily runs at 01:00 -03 (04:00Z).
        assert_eq!(
            next(
                "@daily",
                Some("America/Santiago"),
                "2026-09-04T12:00:00Z",
                3
            ),
            [
                "2026-09-05T04:00:00Z",
                "2026-09-06T04:00:00Z",
                "2026-09-07T03:00:00Z"
            ]
        );
        // 2026-04-05: back from 00:00 -03 to 23:00 -04 on the 4th; midnight
        // of the 5th happens once, at 04:00Z.
        assert_eq!(
            next(
                "0 0 * * *",
                Some("America/Santiago"),
                "2026-04-03T12:00:00Z",
                3
            ),
            [
                "2026-04-04T03:00:00Z",
                "2026-04-05T04:00:00Z",
                "2026-04-06T04:00:00Z"
            ]
        );
    }

    #[test]
    fn lord_howe_half_hour_shifts() {
        // 2026-10-04: 02:00 +10:30 jumps to 02:30 +11. Hourly: 01:00 (14:30Z),
        // 02:00 is in the gap and runs at its end, 02:30 +11 (15:30Z), then
        // 03:00 +11 (16:00Z).
        assert_eq!(
            next(
                "@hourly",
                Some("Australia/Lord_Howe"),
                "2026-10-03T14:00:00Z",
                4
            ),
            [
                "2026-10-03T14:30:00Z",
                "2026-10-03T15:30:00Z",
                "2026-10-03T16:00:00Z",
                "2026-10-03T17:00:00Z"
            ]
        );
        // 2026-04-05: 02:00 +11 falls back to 01:30 +10:30, so 01:30–02:00
        // happens twice. A fixed time runs once, at its first instant.
        assert_eq!(
            next(
                "TZ=Australia/Lord_Howe 30 1 * * *",
                None,
                "2026-04-04T00:00:00Z",
                2
            ),
            ["2026-04-04T14:30:00Z", "2026-04-05T15:00:00Z"]
        );
        // Wildcard hours follow elapsed time: the repeated 01:30 runs again.
        assert_eq!(
            next(
                "*/30 * * * *",
                Some("Australia/Lord_Howe"),
                "2026-04-04T13:50:00Z",
                5
            ),
            [
                "2026-04-04T14:00:00Z",
                "2026-04-04T14:30:00Z",
                "2026-04-04T15:00:00Z",
                "2026-04-04T15:30:00Z",
                "2026-04-04T16:00:00Z"
            ]
        );
    }

    #[test]
    fn zone_prefixes_give_the_zone() {
        let schedule = Schedule::parse("CRON_TZ=America/New_York 30 2 * * *", None).unwrap();
        assert_eq!(schedule.timezone_name(), "America/New_York");
        assert_eq!(schedule.expression(), "CRON_TZ=America/New_York 30 2 * * *");
        // New York's 2026 spring-forward day: 02:30 runs at 03:00 EDT.
        assert_eq!(
            next(
                "CRON_TZ=America/New_York 30 2 * * *",
                None,
                "2026-03-07T12:00:00Z",
                2
            ),
            ["2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"]
        );
        // The same zone given twice is fine; another one is refused.
        assert!(Schedule::parse("TZ=Europe/Berlin 0 9 * * *", Some("Europe/Berlin")).is_ok());
        let message = Schedule::parse("TZ=Europe/Berlin 0 9 * * *", Some("UTC"))
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("names the time zone Europe/Berlin but `timezone` is UTC"),
            "{message}"
        );
        assert_eq!(
            Schedule::zone_prefix(" CRON_TZ=Asia/Tokyo @daily"),
            Some("Asia/Tokyo")
        );
        assert_eq!(Schedule::zone_prefix("0 9 * * *"), None);
    }

    #[test]
    fn day_of_month_and_day_of_week_follow_vixie() {
        // `*/2` starts with `*`: odd-numbered days that are Mondays (found
        // by walking the calendar from 2026-03-02 in Python).
        assert_eq!(
            next("0 0 */2 * 1", None, "2026-03-01T00:00:00Z", 5),
            [
                "2026-03-09T00:00:00Z",
                "2026-03-23T00:00:00Z",
                "2026-04-13T00:00:00Z",
                "2026-04-27T00:00:00Z",
                "2026-05-11T00:00:00Z"
            ]
        );
        // A restricted day-of-month with `*/2` weekdays (Sun, Tue, Thu,
        // Sat): the 1st of a month that is one of them.
        assert_eq!(
            next("0 0 1 * */2", None, "2026-03-02T00:00:00Z", 5),
            [
                "2026-08-01T00:00:00Z",
                "2026-09-01T00:00:00Z",
                "2026-10-01T00:00:00Z",
                "2026-11-01T00:00:00Z",
                "2026-12-01T00:00:00Z"
            ]
        );
        // Both restricted: either one. 2026-03-02 and -09 are Mondays.
        assert_eq!(
            next("0 0 1,15 * 1", None, "2026-03-01T00:00:00Z", 4),
            [
                "2026-03-02T00:00:00Z",
                "2026-03-09T00:00:00Z",
                "2026-03-15T00:00:00Z",
                "2026-03-16T00:00:00Z"
            ]
        );
    }

    #[test]
    fn ranges_that_wrap() {
        // 22:00 to 02:00 in Berlin across the spring-forward night: 02:00
        // is in the gap and runs at 03:00 CEST (01:00Z).
        assert_eq!(
            next(
                "0 22-2 * * *",
                Some("Europe/Berlin"),
                "2026-03-28T20:00:00Z",
                6
            ),
            [
                "2026-03-28T21:00:00Z",
                "2026-03-28T22:00:00Z",
                "2026-03-28T23:00:00Z",
                "2026-03-29T00:00:00Z",
                "2026-03-29T01:00:00Z",
                "2026-03-29T20:00:00Z"
            ]
        );
        // Friday to Monday at 09:00 in New York; 2026-03-05 is a Thursday
        // and the 8th a Sunday, the first day on EDT.
        assert_eq!(
            next(
                "0 9 * * FRI-MON",
                Some("America/New_York"),
                "2026-03-05T00:00:00Z",
                5
            ),
            [
                "2026-03-06T14:00:00Z",
                "2026-03-07T14:00:00Z",
                "2026-03-08T13:00:00Z",
                "2026-03-09T13:00:00Z",
                "2026-03-13T13:00:00Z"
            ]
        );
        assert_eq!(
            next("0 0 1 NOV-FEB *", None, "2026-03-01T00:00:00Z", 4),
            [
                "2026-11-01T00:00:00Z",
                "2026-12-01T00:00:00Z",
                "2027-01-01T00:00:00Z",
                "2027-02-01T00:00:00Z"
            ]
        );
    }

    #[test]
    fn previews_describe_and_list_due_times() {
        let schedule = Schedule::parse("0 9 * * 1-5", Some("Europe/Berlin")).unwrap();
        let preview = schedule.preview(utc("2026-03-27T09:00:00Z"), 3);
        assert_eq!(preview.expression, "0 9 * * 1-5");
        assert_eq!(preview.timezone, "Europe/Berlin");
        assert_eq!(
            preview.description,
            "At 09:00, Monday through Friday, in Europe/Berlin"
        );
        // 2026-03-27 is a Friday; Monday the 30th is on CEST.
        assert_eq!(
            preview.next,
            [
                utc("2026-03-30T07:00:00Z"),
                utc("2026-03-31T07:00:00Z"),
                utc("2026-04-01T07:00:00Z")
            ]
        );
        assert_eq!(
            serde_json::to_value(&preview).unwrap()["next"][0],
            "2026-03-30T07:00:00Z"
        );
    }

    #[test]
    fn leap_day_schedule_is_valid() {
        assert_eq!(
            next("0 0 29 2 *", None, "2026-01-01T00:00:00Z", 1),
            ["2028-02-29T00:00:00Z"]
        );
    }
}
