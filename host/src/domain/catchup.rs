//! Which cron ticks to run when the scheduler gets to a schedule late.
//!
//! The scheduler remembers, per scheduled automation, the last tick it
//! handled (its cursor). Whenever it looks at a schedule — woken at a due time,
//! after the host restarted, after the automation was resumed — every tick in
//! `(cursor, now]` must be handled exactly once. Ticks due within
//! [`ON_TIME_TOLERANCE`] of now are on time and run; older ones were missed
//! and go by the automation's catch-up policy:
//!
//! - `skip`: run none of them, record them as one cancelled run (reason
//!   `missed`), so nothing is missed silently;
//! - `run_once`: run the latest one, record the others as missed;
//! - `run_all`: run those within the catch-up window, at most
//!   [`MAX_CATCHUP_RUNS`] (the latest), record the others as missed.
//!
//! Searches never walk every tick of a long outage: the latest ticks are found
//! by looking back from now, and counting stops at [`MAX_COUNTED_TICKS`].

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::schedule::Schedule;

/// How late a tick may be handled and still count as on time rather than
/// missed: covers timer slack and a busy host, not an outage.
pub const ON_TIME_TOLERANCE: TimeDelta = TimeDelta::seconds(2);

/// Most missed ticks `run_all` runs at once; older ones are recorded missed.
pub const MAX_CATCHUP_RUNS: usize = 100;

/// Counting missed ticks stops here; a count at the cap reads "at least".
pub const MAX_COUNTED_TICKS: u64 = 10_000;

/// Where the scheduler is in one automation's schedule: the last tick it
/// handled, and the schedule that tick belongs to (a changed expression or
/// time zone starts over from the change).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleCursor {
    /// The latest tick handled (run, or recorded as missed or skipped).
    pub last_tick: DateTime<Utc>,
    /// The cron expression it was a tick of.
    pub expression: String,
    /// The time zone it was read in.
    pub timezone: String,
}

impl ScheduleCursor {
    /// A cursor at `at` on `schedule`.
    pub fn at(schedule: &Schedule, at: DateTime<Utc>) -> Self {
        ScheduleCursor {
            last_tick: at,
            expression: schedule.expression().to_owned(),
            timezone: schedule.timezone_name().to_owned(),
        }
    }

    /// Whether the cursor belongs to `schedule` (same expression and zone).
    pub fn follows(&self, schedule: &Schedule) -> bool {
        self.expression == schedule.expression() && self.timezone == schedule.timezone_name()
    }
}

/// What happens to missed ticks, by policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatchUp {
    /// Record them, run none.
    Skip,
    /// Run the latest.
    RunOnce,
    /// Run those due within this window before now.
    RunAll {
        /// How far back ticks are still run.
        window: TimeDelta,
    },
}

/// Missed ticks that will not run, for one cancelled run with reason `missed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MissedTicks {
    /// The earliest of them.
    pub first: DateTime<Utc>,
    /// The latest of them; the cancelled run's `scheduled_at`.
    pub last: DateTime<Utc>,
    /// How many, up to [`MAX_COUNTED_TICKS`].
    pub count: u64,
}

impl MissedTicks {
    /// Says what was missed, for the cancelled run's result.
    pub fn describe(&self) -> String {
        let count = if self.count >= MAX_COUNTED_TICKS {
            format!("at least {}", self.count)
        } else {
            self.count.to_string()
        };
        let stamp = |at: DateTime<Utc>| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        if self.count == 1 {
            format!("missed the tick due at {}", stamp(self.first))
        } else {
            format!(
                "missed {count} ticks due from {} to {}",
                stamp(self.first),
                stamp(self.last)
            )
        }
    }
}

/// What to do with the ticks in `(cursor, now]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TickPlan {
    /// Ticks to run, oldest first: caught-up ticks, then on-time ones.
    pub run: Vec<DateTime<Utc>>,
    /// Ticks that will not run.
    pub missed: Option<MissedTicks>,
    /// The new cursor: the latest tick handled (unchanged when none was due).
    pub cursor: DateTime<Utc>,
}

/// Plans the ticks of `schedule` in `(cursor, now]` under `policy`.
pub fn plan(
    schedule: &Schedule,
    cursor: DateTime<Utc>,
    now: DateTime<Utc>,
    policy: CatchUp,
) -> TickPlan {
    let on_time_from = cursor.max(now - ON_TIME_TOLERANCE);
    let on_time: Vec<_> = ticks_between(schedule, on_time_from, now).collect();
    let late = latest_ticks(schedule, cursor, on_time_from, 1);
    let mut plan = TickPlan {
        run: Vec::new(),
        missed: None,
        cursor: on_time.last().or(late.last()).copied().unwrap_or(cursor),
    };
    if let Some(&latest_missed) = late.last() {
        let run = match policy {
            CatchUp::Skip => Vec::new(),
            CatchUp::RunOnce => vec![latest_missed],
            CatchUp::RunAll { window } => {
                let floor = cursor.max(now - window);
                latest_ticks(schedule, floor, on_time_from, MAX_CATCHUP_RUNS)
            }
        };
        // Everything in (cursor, first run) is missed.
        let missed_until = run.first().copied();
        plan.missed = schedule.next_after(cursor).and_then(|first| {
            let before_runs = missed_until.is_none_or(|until| first < until);
            before_runs.then(|| {
                let last = missed_until.map_or(latest_missed, |until| {
                    let before = latest_ticks(schedule, cursor, until - TimeDelta::seconds(1), 1);
                    before.last().copied().unwrap_or(first)
                });
                MissedTicks {
                    first,
                    last,
                    count: count_ticks(schedule, cursor, last),
                }
            })
        });
        plan.run = run;
    }
    plan.run.extend(on_time);
    plan
}

/// Ticks in `(after, until]`, oldest first.
fn ticks_between(
    schedule: &Schedule,
    after: DateTime<Utc>,
    until: DateTime<Utc>,
) -> impl Iterator<Item = DateTime<Utc>> + '_ {
    schedule
        .occurrences_after(after)
        .take_while(move |&at| at <= until)
}

/// Up to `limit` of the latest ticks in `(floor, until]`, oldest first, each
/// found by [`latest_tick`]: the work grows with `limit` and the logarithm of
/// the gap, never with the ticks in it.
fn latest_ticks(
    schedule: &Schedule,
    floor: DateTime<Utc>,
    until: DateTime<Utc>,
    limit: usize,
) -> Vec<DateTime<Utc>> {
    let mut latest = Vec::with_capacity(limit);
    let mut upper = until;
    while latest.len() < limit
        && let Some(tick) = latest_tick(schedule, floor, upper)
    {
        latest.push(tick);
        // Ticks are whole seconds: the one before lies at or before this.
        upper = tick - TimeDelta::seconds(1);
    }
    latest.reverse();
    latest
}

/// The latest tick in `(floor, until]`. Looks back from `until` over
/// doubling spans until one holds a tick, then halves the step down to a
/// second: a few dozen searches for any gap (ten years is under 2^29 s),
/// however dense the ticks before it — a search never walks tick by tick.
fn latest_tick(
    schedule: &Schedule,
    floor: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let tick_in = |from: DateTime<Utc>| schedule.next_after(from).is_some_and(|at| at <= until);
    // No tick in (near, until]; a tick in (far, until].
    let mut near = until;
    let mut span = TimeDelta::seconds(1);
    let mut far = loop {
        if near <= floor {
            return None;
        }
        let from = until
            .checked_sub_signed(span)
            .map_or(floor, |from| from.max(floor));
        if tick_in(from) {
            break from;
        }
        near = from;
        span = span.checked_mul(2).unwrap_or(TimeDelta::MAX);
    };
    // The latest tick lies in (far, near]; narrow it to one second, which
    // holds one whole-second tick at most.
    while near - far > TimeDelta::seconds(1) {
        let middle = far + (near - far) / 2;
        if tick_in(middle) {
            far = middle;
        } else {
            near = middle;
        }
    }
    schedule.next_after(far)
}

/// How many ticks lie in `(after, until]`, counting to [`MAX_COUNTED_TICKS`].
fn count_ticks(schedule: &Schedule, after: DateTime<Utc>, until: DateTime<Utc>) -> u64 {
    ticks_between(schedule, after, until)
        .take(MAX_COUNTED_TICKS as usize)
        .count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        text.parse().expect("test timestamp")
    }

    fn every_minute() -> Schedule {
        Schedule::parse("* * * * *", None).unwrap()
    }

    fn stamps(ticks: &[DateTime<Utc>]) -> Vec<String> {
        ticks
            .iter()
            .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .collect()
    }

    #[test]
    fn cursors_belong_to_one_schedule() {
        let at = utc("2026-02-28T09:00:00Z");
        let cursor = ScheduleCursor::at(&every_minute(), at);
        assert!(cursor.follows(&every_minute()));
        assert!(!cursor.follows(&Schedule::parse("*/2 * * * *", None).unwrap()));
        assert!(!cursor.follows(&Schedule::parse("* * * * *", Some("Europe/Berlin")).unwrap()));
    }

    #[test]
    fn an_on_time_tick_runs_under_every_policy() {
        for policy in [
            CatchUp::Skip,
            CatchUp::RunOnce,
            CatchUp::RunAll {
                window: TimeDelta::hours(1),
            },
        ] {
            let plan = plan(
                &every_minute(),
                utc("2026-02-28T09:00:00Z"),
                utc("2026-02-28T09:01:00.300Z"),
                policy,
            );
            assert_eq!(stamps(&plan.run), ["2026-02-28T09:01:00Z"], "{policy:?}");
            assert_eq!(plan.missed, None);
            assert_eq!(plan.cursor, utc("2026-02-28T09:01:00Z"));
        }
    }

    #[test]
    fn nothing_due_leaves_the_cursor() {
        let cursor = utc("2026-02-28T09:00:00Z");
        let plan = plan(
            &every_minute(),
            cursor,
            utc("2026-02-28T09:00:59Z"),
            CatchUp::Skip,
        );
        assert_eq!(
            plan,
            TickPlan {
                run: vec![],
                missed: None,
                cursor
            }
        );
    }

    #[test]
    fn skip_records_all_missed_ticks_as_one() {
        // Down from 09:00:30 to 09:10:30: ticks 09:01 … 09:10 were missed.
        let plan = plan(
            &every_minute(),
            utc("2026-02-28T09:00:00Z"),
            utc("2026-02-28T09:10:30Z"),
            CatchUp::Skip,
        );
        assert!(plan.run.is_empty());
        assert_eq!(
            plan.missed,
            Some(MissedTicks {
                first: utc("2026-02-28T09:01:00Z"),
                last: utc("2026-02-28T09:10:00Z"),
                count: 10,
            })
        );
        assert_eq!(plan.cursor, utc("2026-02-28T09:10:00Z"));
        assert_eq!(
            plan.missed.unwrap().describe(),
            "missed 10 ticks due from 2026-02-28T09:01:00Z to 2026-02-28T09:10:00Z"
        );
    }

    #[test]
    fn run_once_runs_the_latest_and_records_the_rest() {
        let plan = plan(
            &every_minute(),
            utc("2026-02-28T09:00:00Z"),
            utc("2026-02-28T09:10:30Z"),
            CatchUp::RunOnce,
        );
        assert_eq!(stamps(&plan.run), ["2026-02-28T09:10:00Z"]);
        let missed = plan.missed.unwrap();
        assert_eq!(
            (missed.first, missed.last, missed.count),
            (utc("2026-02-28T09:01:00Z"), utc("2026-02-28T09:09:00Z"), 9)
        );
        // A single missed tick just runs.
        let plan = super::plan(
            &every_minute(),
            utc("2026-02-28T09:00:00Z"),
            utc("2026-02-28T09:01:30Z"),
            CatchUp::RunOnce,
        );
        assert_eq!(stamps(&plan.run), ["2026-02-28T09:01:00Z"]);
        assert_eq!(plan.missed, None);
        assert_eq!(
            MissedTicks {
                first: utc("2026-02-28T09:01:00Z"),
                last: utc("2026-02-28T09:01:00Z"),
                count: 1
            }
            .describe(),
            "missed the tick due at 2026-02-28T09:01:00Z"
        );
    }

    #[test]
    fn run_all_runs_the_window_and_records_what_is_older() {
        let plan = plan(
            &every_minute(),
            utc("2026-02-28T09:00:00Z"),
            utc("2026-02-28T09:10:30Z"),
            CatchUp::RunAll {
                window: TimeDelta::minutes(3),
            },
        );
        // The window reaches back to 09:07:30: 09:08, 09:09, 09:10 run.
        assert_eq!(
            stamps(&plan.run),
            [
                "2026-02-28T09:08:00Z",
                "2026-02-28T09:09:00Z",
                "2026-02-28T09:10:00Z"
            ]
        );
        let missed = plan.missed.unwrap();
        assert_eq!(
            (missed.first, missed.last, missed.count),
            (utc("2026-02-28T09:01:00Z"), utc("2026-02-28T09:07:00Z"), 7)
        );
        // A window covering the whole outage runs everything.
        let plan = super::plan(
            &every_minute(),
            utc("2026-02-28T09:00:00Z"),
            utc("2026-02-28T09:03:30Z"),
            CatchUp::RunAll {
                window: TimeDelta::hours(1),
            },
        );
        assert_eq!(plan.run.len(), 3);
        assert_eq!(plan.missed, None);
    }

    #[test]
    fn run_all_is_bounded() {
        let every_second = Schedule::parse("* * * * * *", None).unwrap();
        let plan = plan(
            &every_second,
            utc("2026-02-28T00:00:00Z"),
            utc("2026-03-03T00:00:00Z"),
            CatchUp::RunAll {
                window: TimeDelta::days(7),
            },
        );
        assert_eq!(plan.run.len(), MAX_CATCHUP_RUNS + 2);
        // The latest missed ticks run, then the on-time ones.
        assert_eq!(plan.run[MAX_CATCHUP_RUNS - 1], utc("2026-03-02T23:59:58Z"));
        assert_eq!(plan.run.last(), Some(&utc("2026-03-03T00:00:00Z")));
        let missed = plan.missed.unwrap();
        assert_eq!(missed.first, utc("2026-02-28T00:00:01Z"));
        assert_eq!(missed.last, utc("2026-03-02T23:58:18Z"));
        assert_eq!(missed.count, MAX_COUNTED_TICKS);
        assert!(missed.describe().starts_with("missed at least 10000 ticks"));
    }

    #[test]
    fn a_long_outage_of_a_sparse_schedule_finds_the_latest_tick() {
        let yearly = Schedule::parse("0 0 1 1 *", None).unwrap();
        let plan = plan(
            &yearly,
            utc("2020-06-01T00:00:00Z"),
            utc("2026-02-28T09:00:00Z"),
            CatchUp::RunOnce,
        );
        assert_eq!(stamps(&plan.run), ["2026-01-01T00:00:00Z"]);
        let missed = plan.missed.unwrap();
        assert_eq!(missed.count, 5);
        assert_eq!(missed.first, utc("2021-01-01T00:00:00Z"));
        assert_eq!(missed.last, utc("2025-01-01T00:00:00Z"));
    }

    /// Runs `plan` and says how many due time searches it made.
    fn plan_counting_searches(
        schedule: &Schedule,
        cursor: DateTime<Utc>,
        now: DateTime<Utc>,
        policy: CatchUp,
    ) -> (TickPlan, u64) {
        use crate::domain::schedule::SEARCHES;
        let before = SEARCHES.with(|searches| searches.get());
        let plan = plan(schedule, cursor, now, policy);
        (plan, SEARCHES.with(|searches| searches.get()) - before)
    }

    /// The catch-up policies, with the window as wide as allowed (7 days).
    fn policies() -> [CatchUp; 3] {
        [
            CatchUp::Skip,
            CatchUp::RunOnce,
            CatchUp::RunAll {
                window: TimeDelta::days(7),
            },
        ]
    }

    #[test]
    fn ten_years_of_missed_seconds_cost_a_bounded_number_of_searches() {
        // Down for ten years with a tick every second: 315 million missed
        // ticks. Counting stops at its cap and finding the runs never walks
        // the gap, so a plan costs about MAX_COUNTED_TICKS searches.
        let every_second = Schedule::parse("* * * * * *", None).unwrap();
        let cursor = utc("2016-02-28T00:00:00Z");
        let now = utc("2026-02-28T00:00:00.500Z");
        for policy in policies() {
            let (plan, searches) = plan_counting_searches(&every_second, cursor, now, policy);
            assert!(
                searches < MAX_COUNTED_TICKS + 2_000,
                "{policy:?}: {searches}"
            );
            let missed = plan.missed.expect("missed ticks are recorded");
            assert_eq!(missed.first, utc("2016-02-28T00:00:01Z"), "{policy:?}");
            assert_eq!(missed.count, MAX_COUNTED_TICKS, "{policy:?}");
            assert_eq!(plan.cursor, utc("2026-02-28T00:00:00Z"), "{policy:?}");
            let expected_runs = match policy {
                CatchUp::Skip => 0,
                CatchUp::RunOnce => 1,
                CatchUp::RunAll { .. } => MAX_CATCHUP_RUNS,
            };
            // The last two seconds are on time: 23:59:59 and 00:00:00 run
            // under every policy.
            assert_eq!(plan.run.len(), expected_runs + 2, "{policy:?}");
            assert_eq!(plan.run.last(), Some(&plan.cursor));
        }
    }

    #[test]
    fn a_dense_burst_long_ago_is_not_walked_to_find_the_latest_tick() {
        // Every second of 29 February: the latest missed ticks are on
        // 2028-02-29, 86 400 of them in a row. Looking for the latest one
        // must not walk that day second by second (the fault: a search per
        // tick in the span that first reached it).
        let leap_day = Schedule::parse("* * * 29 2 *", None).unwrap();
        let cursor = utc("2020-03-01T00:00:00Z");
        let now = utc("2030-01-01T00:00:00Z");
        for policy in [CatchUp::Skip, CatchUp::RunOnce] {
            let (plan, searches) = plan_counting_searches(&leap_day, cursor, now, policy);
            assert!(
                searches < MAX_COUNTED_TICKS + 2_000,
                "{policy:?}: {searches}"
            );
            assert_eq!(plan.cursor, utc("2028-02-29T23:59:59Z"), "{policy:?}");
            let missed = plan.missed.unwrap();
            assert_eq!(missed.first, utc("2024-02-29T00:00:00Z"));
            assert_eq!(missed.count, MAX_COUNTED_TICKS);
        }
        let (plan, _) = plan_counting_searches(&leap_day, cursor, now, CatchUp::RunOnce);
        assert_eq!(stamps(&plan.run), ["2028-02-29T23:59:59Z"]);
    }

    #[test]
    fn a_clock_jumping_back_never_fires_a_tick_twice_or_early() {
        // The scheduler's clock as the host reads it: forward, then back an
        // hour (NTP step), forward past the old reading, back by a day,
        // forward again. Threading the cursor through each plan, every tick
        // runs at most once and never before the clock reached it.
        let schedule = Schedule::parse("*/10 * * * *", None).unwrap();
        let readings = [
            "2026-02-28T09:00:00Z",
            "2026-02-28T09:10:00.400Z",
            "2026-02-28T09:20:01Z",
            "2026-02-28T08:20:01Z",
            "2026-02-28T08:30:00.100Z",
            "2026-02-28T09:20:00.500Z",
            "2026-02-28T09:30:00.200Z",
            "2026-02-27T09:30:00Z",
            "2026-02-27T09:40:00.300Z",
            "2026-02-28T09:40:00.900Z",
        ];
        for policy in policies() {
            let mut cursor = utc(readings[0]);
            let mut fired: Vec<DateTime<Utc>> = Vec::new();
            for reading in &readings[1..] {
                let now = utc(reading);
                let plan = plan(&schedule, cursor, now, policy);
                for tick in &plan.run {
                    assert!(*tick <= now, "{policy:?}: {tick} fired at {now}");
                    assert!(
                        fired.last().is_none_or(|last| last < tick),
                        "{policy:?}: {tick} fired again or out of order"
                    );
                    fired.push(*tick);
                }
                assert!(plan.cursor >= cursor, "{policy:?}: the cursor went back");
                cursor = plan.cursor;
            }
            assert_eq!(
                stamps(&fired),
                [
                    "2026-02-28T09:10:00Z",
                    "2026-02-28T09:20:00Z",
                    "2026-02-28T09:30:00Z",
                    "2026-02-28T09:40:00Z"
                ],
                "{policy:?}"
            );
        }
    }

    #[test]
    fn missed_ticks_follow_the_time_zone_rules() {
        // Down across New York's spring-forward night: 02:30 ran as 03:00 EDT.
        let schedule = Schedule::parse("30 2 * * *", Some("America/New_York")).unwrap();
        let plan = plan(
            &schedule,
            utc("2026-03-07T12:00:00Z"),
            utc("2026-03-08T12:00:00Z"),
            CatchUp::RunOnce,
        );
        assert_eq!(stamps(&plan.run), ["2026-03-08T07:00:00Z"]);
        assert_eq!(plan.missed, None);
    }
}
