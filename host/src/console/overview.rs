//! The app's overview: recent failures first, then runs per hour by status
//! over the last 24 hours (an SVG chart drawn on the server), then the
//! automations by status.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, DurationRound as _, TimeDelta, Utc};
use maud::{Markup, html};

use super::layout::{self, Section, status, time};
use super::{ConsoleState, Ctx, Failure, app_id, app_url};
use crate::domain::automation::AutomationStatus;
use crate::domain::run::{Run, RunStatus};
use crate::service::RunQuery;

/// Hours the chart covers.
const HOURS: usize = 24;
/// Most runs read for the chart (newest first); past it the chart says so.
const MAX_RUNS: usize = 5_000;
/// Failures listed at the top.
const FAILURES: usize = 10;
/// The order statuses are stacked in, bottom first.
const STACK: [RunStatus; 5] = [
    RunStatus::Completed,
    RunStatus::Failed,
    RunStatus::Cancelled,
    RunStatus::Running,
    RunStatus::Pending,
];

/// Runs per hour and status: `counts[h][s]` for hour `h` (0 = the oldest of
/// the 24, ending with the current hour) and status `STACK[s]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hourly {
    /// The start of the oldest hour.
    pub start: DateTime<Utc>,
    pub counts: Vec<[usize; STACK.len()]>,
}

/// Counts `runs` (by `created_at`) into the 24 hours ending with the hour of `now`.
pub fn hourly(runs: &[Run], now: DateTime<Utc>) -> Hourly {
    let current = now.duration_trunc(TimeDelta::hours(1)).unwrap_or(now);
    let start = current - TimeDelta::hours(HOURS as i64 - 1);
    let mut counts = vec![[0; STACK.len()]; HOURS];
    for run in runs {
        let Ok(hour) = usize::try_from((run.created_at - start).num_hours()) else {
            continue;
        };
        if run.created_at < start || hour >= HOURS {
            continue;
        }
        if let Some(s) = STACK.iter().position(|s| *s == run.status) {
            counts[hour][s] += 1;
        }
    }
    Hourly { start, counts }
}

/// The stacked bar chart of `hourly`.
fn chart(hourly: &Hourly) -> Markup {
    const WIDTH: f64 = 720.0;
    const HEIGHT: f64 = 160.0;
    const AXIS: f64 = 18.0;
    /// Room above the bars for the scale's label.
    const TOP: f64 = 18.0;
    let most = hourly
        .counts
        .iter()
        .map(|c| c.iter().sum::<usize>())
        .max()
        .unwrap_or(0)
        .max(1);
    let slot = WIDTH / HOURS as f64;
    let total: usize = hourly.counts.iter().flatten().sum();
    let label =
        format!("Runs per hour over the last 24 hours: {total} in all, at most {most} in an hour");
    html! {
        svg class="chart" viewBox=(format!("0 0 {WIDTH} {}", HEIGHT + AXIS)) role="img" aria-label=(label) {
            line class="axis" x1="0" y1=(HEIGHT) x2=(WIDTH) y2=(HEIGHT) {}
            @for (hour, counts) in hourly.counts.iter().enumerate() {
                @let x = hour as f64 * slot + 2.0;
                @let at = hourly.start + TimeDelta::hours(hour as i64);
                g {
                    title { (at.format("%H:00 UTC")) ": "
                        @for (s, count) in counts.iter().enumerate() { (count) " " (STACK[s].as_str()) @if s + 1 < STACK.len() { ", " } }
                    }
                    rect class="slot" x=(x) y=(TOP) width=(slot - 4.0) height=(HEIGHT - TOP) {}
                    @let mut y = HEIGHT;
                    @for (s, count) in counts.iter().enumerate() {
                        @if *count > 0 {
                            @let h = (*count as f64 / most as f64) * (HEIGHT - TOP);
                            @let top = { y -= h; y };
                            rect class=(format!("bar s-{}", STACK[s].as_str())) x=(x) y=(top) width=(slot - 4.0) height=(h) {}
                        }
                    }
                }
                @if hour % 6 == 0 {
                    text class="tick" x=(x) y=(HEIGHT + AXIS - 4.0) { (at.format("%H:00")) }
                }
            }
            text class="tick" x=(WIDTH - 2.0) y="12" text-anchor="end" { "max " (most) "/h" }
        }
        ul class="legend" {
            @for s in STACK { li { span class=(format!("swatch s-{}", s.as_str())) {} (s.as_str()) } }
        }
    }
}

/// `GET /console/apps/{app_id}`.
pub async fn page(
    State(state): State<ConsoleState>,
    ctx: Ctx,
    axum::extract::Path(app): axum::extract::Path<String>,
) -> Result<Response, Failure> {
    let app = app_id(&app)?;
    let now = state.service.now();
    let since = now - TimeDelta::hours(HOURS as i64);
    let mut runs: Vec<Run> = Vec::new();
    let mut cursor = None;
    let mut capped = false;
    loop {
        let page = state
            .service
            .runs(
                &app,
                RunQuery {
                    since: Some(since),
                    limit: Some(100),
                    cursor: cursor.take(),
                    ..RunQuery::default()
                },
            )
            .await?;
        runs.extend(page.runs);
        match page.next_cursor {
            Some(next) if runs.len() < MAX_RUNS => cursor = Some(next),
            Some(_) => {
                capped = true;
                break;
            }
            None => break,
        }
    }
    let failures = state
        .service
        .runs(
            &app,
            RunQuery {
                status: Some(RunStatus::Failed),
                limit: Some(FAILURES),
                ..RunQuery::default()
            },
        )
        .await?
        .runs;
    let automations = state.service.automations(&app, None).await?;
    let names: std::collections::HashMap<String, String> = automations
        .iter()
        .map(|a| (a.id.to_string(), a.name.clone()))
        .collect();
    let count = |s: AutomationStatus| automations.iter().filter(|a| a.status == s).count();
    let hourly = hourly(&runs, now);
    let body = html! {
        section class="card" {
            h2 { "Recent failures" }
            @if failures.is_empty() {
                p class="muted" { "No failed runs." }
            } @else {
                ul class="failures" {
                    @for run in &failures {
                        li {
                            a href=(app_url(&app, &format!("/runs/{}", run.id))) { code { (run.id) } }
                            " " (status(run.status.as_str())) " "
                            @let id = run.automation_id.to_string();
                            (super::runs::automation_cell(&app, &id, names.get(&id).map(String::as_str))) " "
                            (time(run.created_at)) " "
                            span class="muted" { (run.reason.as_deref().or(match &run.result {
                                Some(crate::domain::run::RunResult::Failure { error, .. }) => Some(error.as_str()),
                                _ => None,
                            }).unwrap_or("")) }
                        }
                    }
                }
                p { a href=(app_url(&app, "/runs?status=failed")) { "All failed runs" } }
            }
        }
        section class="card" {
            h2 { "Runs per hour, last 24 hours (UTC)" }
            (chart(&hourly))
            @if capped { p class="muted small" { "Counting the newest " (MAX_RUNS) " runs only." } }
        }
        section class="card" {
            h2 { "Automations" }
            p {
                a href=(app_url(&app, "/automations?status=running")) { (count(AutomationStatus::Running)) " running" } ", "
                a href=(app_url(&app, "/automations?status=paused")) { (count(AutomationStatus::Paused)) " paused" } ", "
                a href=(app_url(&app, "/automations?status=draft")) { (count(AutomationStatus::Draft)) " draft" }
            }
        }
    };
    Ok(layout::page(&ctx, &app, Section::Overview, "Overview", body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_counted_by_hour_and_status() {
        let now: DateTime<Utc> = "2026-11-29T18:30:00Z".parse().unwrap();
        let run = |at: &str, status: RunStatus| {
            let mut run: Run = serde_json::from_value(serde_json::json!({
                "id": "atr_01jdqm3k5v8x2n7w4c9b6e1f0a", "automation_id": "aut_01jdqm3k5v8x2n7w4c9b6e1f0a",
                "app_id": "default", "status": "pending", "trigger": "thread.created",
                "input": {"trigger": "thread.created", "payload": {}}, "result": null,
                "failure_kind": null, "reason": null, "attempt": 1, "retry_of": null,
                "rerun_of": null, "scheduled_at": null, "run_as_user_id": null, "config_id": null,
                "config_digest": null, "accounting": {}, "created_at": at, "started_at": null,
                "finished_at": null, "history": []
            }))
            .unwrap();
            run.status = status;
            run
        };
        let runs = [
            run("2026-11-29T18:05:00Z", RunStatus::Completed),
            run("2026-11-29T18:10:00Z", RunStatus::Failed),
            run("2026-11-28T19:00:00Z", RunStatus::Completed),
            run("2026-11-28T18:59:59Z", RunStatus::Completed),
        ];
        let hourly = hourly(&runs, now);
        assert_eq!(
            hourly.start,
            "2026-11-28T19:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(hourly.counts[23], [1, 1, 0, 0, 0]);
        assert_eq!(hourly.counts[0], [1, 0, 0, 0, 0]);
        assert_eq!(hourly.counts.iter().flatten().sum::<usize>(), 3);
        let svg = chart(&hourly).into_string();
        assert!(
            svg.contains("s-failed") && svg.contains("3 in all"),
            "{svg}"
        );
    }
}
