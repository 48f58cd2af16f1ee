//! Prometheus metrics (`prometheus-client`): what the host counts and
//! measures, kept in one registry per server and served as text at
//! `/metrics` on the `--metrics-listen` address.
//!
//! Every metric name starts with `automata_`. Label values come from closed
//! sets — route templates (never paths), statuses, failure kinds, the host's
//! own cancel reasons, `event`/`schedule` — except `app`, which is capped:
//! the first [`MetricsOptions::max_app_labels`] apps seen get their own
//! value, later ones share [`OTHER_APPS`]. Units are in the names
//! (`_seconds`, `_bytes`); counters end in `_total` when encoded.
//!
//! Recording is a few atomic adds; nothing here does IO. Values that are a
//! state rather than a count (queue depth, busy workers, data directory size)
//! are set by the scrape handler right before encoding.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::domain::ids::AppId;
use crate::domain::run::{Run, RunStatus};
use crate::domain::workflow::SCHEDULED_TRIGGER;

/// The `app` label of every app past the cap.
pub const OTHER_APPS: &str = "_other";

/// The content type of [`Metrics::encode`]'s text (OpenMetrics, which
/// Prometheus reads).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Cancel reasons that get their own `reason` label value; any other is
/// counted as `other`, so a new reason cannot grow the label set unnoticed.
const KNOWN_REASONS: [&str; 9] = [
    crate::domain::dispatch::REASON_MISSED,
    crate::domain::dispatch::REASON_OVERLAP,
    crate::domain::dispatch::REASON_QUEUE_FULL,
    crate::domain::dispatch::REASON_CANCELLED_BY_OPERATOR,
    crate::domain::dispatch::REASON_HOST_SHUT_DOWN,
    crate::domain::dispatch::REASON_HOST_RESTARTED,
    crate::domain::dispatch::REASON_AUTOMATION_PAUSED,
    crate::domain::dispatch::REASON_AUTOMATION_DELETED,
    "",
];

/// How the metrics are labelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsOptions {
    /// How many apps get an `app` label value of their own; the rest share
    /// `_other`. 0 puts every app under `_other`.
    pub max_app_labels: usize,
}

impl Default for MetricsOptions {
    fn default() -> Self {
        MetricsOptions { max_app_labels: 50 }
    }
}

/// Where a run came from, for `automata_runs_created_total{origin}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOrigin {
    /// Event intake (`POST /events`).
    Event,
    /// A cron tick (on time or caught up).
    Schedule,
    /// `POST …/run`.
    RunNow,
    /// `POST …/rerun`.
    Rerun,
    /// The retry policy after a failed attempt.
    Retry,
}

impl RunOrigin {
    fn as_str(self) -> &'static str {
        match self {
            RunOrigin::Event => "event",
            RunOrigin::Schedule => "schedule",
            RunOrigin::RunNow => "run_now",
            RunOrigin::Rerun => "rerun",
            RunOrigin::Retry => "retry",
        }
    }
}

/// What happened to an event at intake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventResult {
    /// Stored, with its runs.
    Accepted,
    /// A repeated idempotency key: the first answer was replayed.
    Replayed,
    /// Refused with 429: the queue was full.
    Refused,
    /// Refused with 422: its idempotency key was used for another request.
    KeyReused,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CreatedLabels {
    app: String,
    trigger_kind: &'static str,
    origin: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndedLabels {
    app: String,
    trigger_kind: &'static str,
    status: &'static str,
    failure_kind: &'static str,
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AppLabel {
    app: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    result: &'static str,
}

/// Buckets for durations: 100 µs to about 13 s, doubling.
fn seconds_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 18))
}

/// Buckets for scheduler lag: 1 ms to about 70 min, ×4.
fn lag_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 4.0, 12))
}

/// Buckets for fuel: 1,000 to about 6.7e10 units, ×4.
fn fuel_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1000.0, 4.0, 14))
}

/// Buckets for counts: 1 to 2,048, doubling.
fn count_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 12))
}

/// What the store measures about its writes; the store records, the
/// server's [`Metrics`] registers.
#[derive(Debug, Clone)]
pub struct StoreMetrics {
    /// One store write (a transaction), including any wait for the disk.
    pub write_seconds: Histogram,
    /// One flush to disk.
    pub flush_seconds: Histogram,
    /// Writes one flush made durable (the group commit's batch).
    pub flush_batch_writes: Histogram,
}

impl Default for StoreMetrics {
    fn default() -> Self {
        StoreMetrics {
            write_seconds: seconds_histogram(),
            flush_seconds: seconds_histogram(),
            flush_batch_writes: count_histogram(),
        }
    }
}

/// Values the scrape handler reads from the running host.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Pending runs waiting for a worker.
    pub queue_depth: u64,
    /// Workers executing a run.
    pub workers_busy: u64,
    /// Workers in all.
    pub workers: u64,
    /// Bytes of every file under the data directory.
    pub data_dir_bytes: u64,
}

/// The server's metrics. Create one per server, hand it to the parts that
/// record, encode it at scrape time.
pub struct Metrics {
    registry: Registry,
    options: MetricsOptions,
    apps: Mutex<HashSet<AppId>>,
    runs_created: Family<CreatedLabels, Counter>,
    runs_ended: Family<EndedLabels, Counter>,
    run_duration: Histogram,
    run_queue_wait: Histogram,
    run_fuel: Histogram,
    run_instantiate: Histogram,
    scheduler_lag: Histogram,
    ticks_missed: Counter,
    ticks_skipped: Family<ReasonLabel, Counter>,
    events_received: Family<AppLabel, Counter>,
    events_replayed: Family<AppLabel, Counter>,
    events_refused: Family<AppLabel, Counter>,
    http_requests: Family<RequestLabels, Counter>,
    http_duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
    compile_cache: Family<CacheLabels, Counter>,
    runs_pruned: Counter,
    blobs_pruned: Counter,
    queue_depth: Gauge,
    workers_busy: Gauge,
    workers: Gauge,
    data_dir_bytes: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new(MetricsOptions::default())
    }
}

impl Metrics {
    /// Every metric registered, at zero.
    pub fn new(options: MetricsOptions) -> Self {
        let mut metrics = Metrics {
            registry: Registry::with_prefix("automata"),
            options,
            apps: Mutex::default(),
            runs_created: Family::default(),
            runs_ended: Family::default(),
            run_duration: seconds_histogram(),
            run_queue_wait: seconds_histogram(),
            run_fuel: fuel_histogram(),
            run_instantiate: seconds_histogram(),
            scheduler_lag: lag_histogram(),
            ticks_missed: Counter::default(),
            ticks_skipped: Family::default(),
            events_received: Family::default(),
            events_replayed: Family::default(),
            events_refused: Family::default(),
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(seconds_histogram),
            compile_cache: Family::default(),
            runs_pruned: Counter::default(),
            blobs_pruned: Counter::default(),
            queue_depth: Gauge::default(),
            workers_busy: Gauge::default(),
            workers: Gauge::default(),
            data_dir_bytes: Gauge::default(),
        };
        metrics.register();
        metrics
    }

    fn register(&mut self) {
        let r = &mut self.registry;
        r.register(
            "runs_created",
            "Runs created, by app, trigger kind (event, schedule) and origin (event, schedule, run_now, rerun, retry)",
            self.runs_created.clone(),
        );
        r.register(
            "runs_ended",
            "Runs ended, by app, trigger kind, status (completed, failed, cancelled), failure_kind (failed runs) and reason (cancelled runs)",
            self.runs_ended.clone(),
        );
        r.register(
            "run_duration_seconds",
            "Execution time of runs that executed, instantiation included",
            self.run_duration.clone(),
        );
        r.register(
            "run_queue_wait_seconds",
            "Time from a run's creation to its start",
            self.run_queue_wait.clone(),
        );
        r.register(
            "run_fuel_consumed",
            "Fuel units burned by runs that executed",
            self.run_fuel.clone(),
        );
        r.register(
            "run_instantiate_seconds",
            "Time spent instantiating the component, per executed run",
            self.run_instantiate.clone(),
        );
        r.register(
            "scheduler_lag_seconds",
            "Fire time minus due time of each cron tick that became a run",
            self.scheduler_lag.clone(),
        );
        r.register(
            "scheduler_ticks_missed",
            "Cron ticks not run because they were missed (catch-up policy)",
            self.ticks_missed.clone(),
        );
        r.register(
            "scheduler_ticks_skipped",
            "On-time cron ticks recorded as cancelled, by reason (overlap, queue full)",
            self.ticks_skipped.clone(),
        );
        r.register(
            "events_received",
            "Valid events that reached intake, by app",
            self.events_received.clone(),
        );
        r.register(
            "events_replayed",
            "Events answered from an earlier receipt (repeated idempotency key), by app",
            self.events_replayed.clone(),
        );
        r.register(
            "events_refused",
            "Events refused with 429 because the queue was full, by app",
            self.events_refused.clone(),
        );
        r.register(
            "http_requests",
            "HTTP requests answered, by method, route template and status",
            self.http_requests.clone(),
        );
        r.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route template",
            self.http_duration.clone(),
        );
        r.register(
            "compile_cache_lookups",
            "Component loads by whether the compiled artifact came from the on-disk cache (hit) or was compiled (miss)",
            self.compile_cache.clone(),
        );
        r.register(
            "retention_runs_pruned",
            "Runs removed by retention",
            self.runs_pruned.clone(),
        );
        r.register(
            "retention_blobs_pruned",
            "Component blobs removed by retention because nothing referenced them",
            self.blobs_pruned.clone(),
        );
        r.register(
            "queue_depth",
            "Pending runs waiting for a worker",
            self.queue_depth.clone(),
        );
        r.register(
            "workers_busy",
            "Workers executing a run",
            self.workers_busy.clone(),
        );
        r.register("workers", "Workers in all", self.workers.clone());
        r.register(
            "data_dir_bytes",
            "Bytes of every file under the data directory",
            self.data_dir_bytes.clone(),
        );
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        r.register(
            "build_info",
            "Always 1; the version label says which build is running",
            build,
        );
    }

    /// Registers the store's write and flush measurements.
    pub fn register_store(&mut self, store: &StoreMetrics) {
        let r = &mut self.registry;
        r.register(
            "store_write_seconds",
            "One store write (transaction), including any wait for the disk",
            store.write_seconds.clone(),
        );
        r.register(
            "store_flush_seconds",
            "One flush of the store to disk",
            store.flush_seconds.clone(),
        );
        r.register(
            "store_flush_batch_writes",
            "Writes made durable by one flush (group commit batch size)",
            store.flush_batch_writes.clone(),
        );
    }

    /// The `app` label of `app`: its id while under the cap, else `_other`.
    fn app_label(&self, app: &AppId) -> String {
        let mut seen = self.apps.lock().unwrap_or_else(|p| p.into_inner());
        if seen.contains(app) {
            return app.to_string();
        }
        if seen.len() < self.options.max_app_labels {
            seen.insert(app.clone());
            return app.to_string();
        }
        OTHER_APPS.to_owned()
    }

    /// A run was stored by `origin`. Runs created already ended (a missed or
    /// skipped tick) are counted by [`run_ended`](Self::run_ended) too.
    pub fn run_created(&self, run: &Run, origin: RunOrigin) {
        self.runs_created
            .get_or_create(&CreatedLabels {
                app: self.app_label(&run.app_id),
                trigger_kind: trigger_kind(run),
                origin: origin.as_str(),
            })
            .inc();
    }

    /// `count` pending runs of an automation of `app` were cancelled for
    /// `reason` (a pause or delete), without a worker seeing them.
    pub fn runs_cancelled(&self, app: &AppId, scheduled: bool, reason: &str, count: u64) {
        if count == 0 {
            return;
        }
        self.runs_ended
            .get_or_create(&EndedLabels {
                app: self.app_label(app),
                trigger_kind: if scheduled { "schedule" } else { "event" },
                status: RunStatus::Cancelled.as_str(),
                failure_kind: "",
                reason: reason_label(Some(reason)),
            })
            .inc_by(count);
    }

    /// A run reached an end state: counted by status, failure kind and
    /// reason; an executed run's duration, queue wait, fuel and
    /// instantiation time are observed.
    pub fn run_ended(&self, run: &Run) {
        let failure_kind = match (run.status, run.failure_kind) {
            (RunStatus::Failed, Some(kind)) => kind.as_str(),
            (RunStatus::Failed, None) => "not_run",
            _ => "",
        };
        let reason = match run.status {
            RunStatus::Cancelled => reason_label(run.reason.as_deref()),
            _ => "",
        };
        self.runs_ended
            .get_or_create(&EndedLabels {
                app: self.app_label(&run.app_id),
                trigger_kind: trigger_kind(run),
                status: run.status.as_str(),
                failure_kind,
                reason,
            })
            .inc();
        let accounting = &run.accounting;
        let seconds = |micros: u64| micros as f64 / 1e6;
        if let Some(wall) = accounting.wall_time_us {
            self.run_duration.observe(seconds(wall));
        }
        if let Some(pending) = accounting.pending_us {
            self.run_queue_wait.observe(seconds(pending));
        }
        if let Some(fuel) = accounting.fuel_consumed {
            self.run_fuel.observe(fuel as f64);
        }
        if let Some(instantiate) = accounting.instantiate_time_us {
            self.run_instantiate.observe(seconds(instantiate));
        }
    }

    /// A cron tick became a run `lag` after it was due.
    pub fn tick_fired(&self, lag: Duration) {
        self.scheduler_lag.observe(lag.as_secs_f64());
    }

    /// `count` cron ticks were missed and will not run.
    pub fn ticks_missed(&self, count: u64) {
        self.ticks_missed.inc_by(count);
    }

    /// An on-time tick was recorded cancelled for `reason`.
    pub fn tick_skipped(&self, reason: &str) {
        self.ticks_skipped
            .get_or_create(&ReasonLabel {
                reason: reason_label(Some(reason)),
            })
            .inc();
    }

    /// An event of `app` reached intake and was accepted, replayed or refused.
    pub fn event(&self, app: &AppId, result: EventResult) {
        let labels = AppLabel {
            app: self.app_label(app),
        };
        self.events_received.get_or_create(&labels).inc();
        match result {
            EventResult::Accepted | EventResult::KeyReused => {}
            EventResult::Replayed => {
                self.events_replayed.get_or_create(&labels).inc();
            }
            EventResult::Refused => {
                self.events_refused.get_or_create(&labels).inc();
            }
        }
    }

    /// An HTTP request to `route` (a template such as
    /// `/apps/{app_id}/events`, or `unmatched`) was answered with `status`
    /// after `elapsed`.
    /// `method` is labelled as itself when it is one of the standard
    /// methods ([`method_label`]), `other` otherwise.
    pub fn http_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let method = method_label(method);
        self.http_requests
            .get_or_create(&RequestLabels {
                method: method.to_owned(),
                route: route.to_owned(),
                status,
            })
            .inc();
        self.http_duration
            .get_or_create(&RouteLabels {
                method: method.to_owned(),
                route: route.to_owned(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// A component was loaded; `hit` when its compiled artifact came from
    /// the on-disk compile cache.
    pub fn compile_cache(&self, hit: bool) {
        let result = if hit { "hit" } else { "miss" };
        self.compile_cache
            .get_or_create(&CacheLabels { result })
            .inc();
    }

    /// Retention removed `runs` runs and `blobs` unreferenced blobs.
    pub fn pruned(&self, runs: u64, blobs: u64) {
        self.runs_pruned.inc_by(runs);
        self.blobs_pruned.inc_by(blobs);
    }

    /// The text exposition of every metric, with `snapshot`'s values set
    /// first.
    pub fn encode(&self, snapshot: Snapshot) -> String {
        let gauge = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
        self.queue_depth.set(gauge(snapshot.queue_depth));
        self.workers_busy.set(gauge(snapshot.workers_busy));
        self.workers.set(gauge(snapshot.workers));
        self.data_dir_bytes.set(gauge(snapshot.data_dir_bytes));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

/// `schedule` for cron runs, `event` for the rest.
fn trigger_kind(run: &Run) -> &'static str {
    if run.trigger == SCHEDULED_TRIGGER {
        "schedule"
    } else {
        "event"
    }
}

fn reason_label(reason: Option<&str>) -> &'static str {
    let reason = reason.unwrap_or("");
    KNOWN_REASONS
        .into_iter()
        .find(|known| *known == reason)
        .unwrap_or("other")
}

/// The `method` label of the HTTP metrics: one of the methods RFC 9110
/// (section 9) and RFC 5789 (`PATCH`) define, or `other` for anything else a
/// client sends (`curl -X M123`), so clients cannot create label values.
pub fn method_label(method: &str) -> &'static str {
    const STANDARD: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    ];
    STANDARD
        .into_iter()
        .find(|standard| *standard == method)
        .unwrap_or("other")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::domain::automation::{Automation, NewAutomation};
    use crate::domain::ids::{AutomationId, RunId};
    use crate::domain::outcome::FailureKind;
    use crate::domain::workflow::TriggerInput;

    fn run_of(app: &str, trigger: &str) -> Run {
        let new: NewAutomation = serde_json::from_value(
            json!({"name": "t", "type": "trigger", "trigger": "thread.created"}),
        )
        .unwrap();
        let now = "2026-03-01T09:00:00Z".parse().unwrap();
        let automation =
            Automation::create(AutomationId::from_value(1), app.parse().unwrap(), new, now)
                .unwrap();
        let input = TriggerInput {
            trigger: trigger.into(),
            payload: json!({}),
        };
        Run::pending(RunId::from_value(2), &automation, input, now)
    }

    #[test]
    fn apps_past_the_cap_share_one_label() {
        let metrics = Metrics::new(MetricsOptions { max_app_labels: 1 });
        metrics.run_created(&run_of("first", "thread.created"), RunOrigin::Event);
        metrics.run_created(&run_of("second", "thread.created"), RunOrigin::Event);
        metrics.run_created(&run_of("third", SCHEDULED_TRIGGER), RunOrigin::Schedule);
        let text = metrics.encode(Snapshot::default());
        for line in [
            "automata_runs_created_total{app=\"first\",trigger_kind=\"event\",origin=\"event\"} 1",
            "automata_runs_created_total{app=\"_other\",trigger_kind=\"event\",origin=\"event\"} 1",
            "automata_runs_created_total{app=\"_other\",trigger_kind=\"schedule\",origin=\"schedule\"} 1",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        assert!(text.contains("automata_build_info{version=\""), "{text}");
    }

    #[test]
    fn endings_are_labelled_from_closed_sets() {
        let metrics = Metrics::default();
        let now = "2026-03-01T09:00:01Z".parse().unwrap();
        let mut failed = run_of("a", "thread.created");
        failed.transition(RunStatus::Running, now, None).unwrap();
        failed.transition(RunStatus::Failed, now, None).unwrap();
        failed.failure_kind = Some(FailureKind::Timeout);
        metrics.run_ended(&failed);
        let mut cancelled = run_of("a", "thread.created");
        cancelled
            .transition(RunStatus::Cancelled, now, Some("made-up reason 42".into()))
            .unwrap();
        metrics.run_ended(&cancelled);
        metrics.runs_cancelled(
            &"a".parse().unwrap(),
            true,
            crate::domain::dispatch::REASON_AUTOMATION_PAUSED,
            3,
        );
        let text = metrics.encode(Snapshot {
            queue_depth: 4,
            ..Snapshot::default()
        });
        for line in [
            "automata_runs_ended_total{app=\"a\",trigger_kind=\"event\",status=\"failed\",failure_kind=\"timeout\",reason=\"\"} 1",
            "automata_runs_ended_total{app=\"a\",trigger_kind=\"event\",status=\"cancelled\",failure_kind=\"\",reason=\"other\"} 1",
            "automata_runs_ended_total{app=\"a\",trigger_kind=\"schedule\",status=\"cancelled\",failure_kind=\"\",reason=\"automation paused\"} 3",
            "automata_queue_depth 4",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }

    #[test]
    fn methods_outside_the_standard_set_share_one_label() {
        let metrics = Metrics::default();
        let second = Duration::from_secs(1);
        metrics.http_request("PATCH", "unmatched", 404, second);
        metrics.http_request("M123", "unmatched", 405, second);
        metrics.http_request("M124", "unmatched", 405, second);
        metrics.http_request("get", "unmatched", 405, second);
        let text = metrics.encode(Snapshot::default());
        for line in [
            "automata_http_requests_total{method=\"PATCH\",route=\"unmatched\",status=\"404\"} 1",
            "automata_http_requests_total{method=\"other\",route=\"unmatched\",status=\"405\"} 3",
            "automata_http_request_duration_seconds_count{method=\"other\",route=\"unmatched\"} 3",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        assert!(
            !text.contains("M123") && !text.contains("\"get\""),
            "{text}"
        );
    }

    #[test]
    fn failure_kind_labels_are_the_api_names() {
        for kind in [
            FailureKind::GuestError,
            FailureKind::Panic,
            FailureKind::Trap,
            FailureKind::Timeout,
            FailureKind::FuelExhausted,
            FailureKind::MemoryLimit,
            FailureKind::StackOverflow,
            FailureKind::InvalidPayload,
            FailureKind::Instantiate,
            FailureKind::ConfigUnavailable,
            FailureKind::HostRestarted,
        ] {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
    }
}
