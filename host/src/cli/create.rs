//! `automata create automation|config|app|key`.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use bytes::Bytes;
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Map, Value, json};

use super::args::{AutomationType, api_name, json_object};
use super::client::Connection;
use super::output::bytes as human_bytes;
use super::views;

/// Create an automation, upload a compiled workflow as a config, or create an
/// app or an API key.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  automata create config --file target/guests/daily-digest.wasm
  automata create automation -n \"Nightly Report\" -t scheduled --schedule \"0 0 * * *\" \\
    --config-id cfg_abc123")]
pub struct Create {
    #[command(subcommand)]
    what: What,
    #[command(flatten)]
    connection: Connection,
}

// Parsed once per process: boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum What {
    /// Create an automation (in status draft; activate it to start it).
    #[command(after_help = "Examples:
  automata create automation -n \"Nightly Report\" -t scheduled --schedule \"0 0 * * *\" \\
    --config-id cfg_abc123
  automata create automation -n \"Welcome\" -t trigger --trigger thread.member_joined \\
    --config-id cfg_abc123
  automata create automation -n \"Weekday digest\" -t scheduled --schedule \"0 9 * * 1-5\" \\
    --timezone Europe/Berlin --run-as-user-id usr_reporter --lookup-key weekday-digest \\
    --metadata '{\"team\": \"ops\"}'
  automata create automation -n \"Welcome to chat\" -t trigger --trigger thread.member_joined \\
    --config-id cfg_abc123 --allow-host https://hooks.example.com --secret CHAT_WEBHOOK_URL")]
    Automation(CreateAutomation),
    /// Upload a compiled workflow component (.wasm) as a config and show its trigger nodes.
    #[command(after_help = "Examples:
  automata create config --file target/guests/welcome-new-members.wasm
  automata create config --file workflow.wasm -n \"Welcome v2\" -o json")]
    Config(CreateConfig),
    /// Create an app (admin key): a namespace for automations, configs, runs and keys.
    #[command(after_help = "Example:
  automata create app acme -n \"Acme Inc\"")]
    App(super::tenancy::CreateApp),
    /// Create an API key for the app (admin key); the key is shown once.
    #[command(after_help = "Examples:
  automata create key --app acme --role events -n \"billing producer\"
  automata create key --app acme --role read -n \"dashboard\" --expires-at 2027-01-01T00:00:00Z")]
    Key(super::tenancy::CreateKey),
}

#[derive(Debug, Args)]
struct CreateAutomation {
    /// Display name.
    #[arg(long, short = 'n')]
    name: String,
    /// What fires it: a platform event or a cron schedule.
    #[arg(long = "type", short = 't', value_enum, value_name = "TYPE")]
    kind: AutomationType,
    /// The event that fires a trigger automation (see `automata list events`).
    #[arg(long, required_if_eq("kind", "trigger"), value_name = "EVENT")]
    trigger: Option<String>,
    /// The cron expression of a scheduled automation: 5 fields, or 6 with seconds first.
    #[arg(long, required_if_eq("kind", "scheduled"), value_name = "CRON")]
    schedule: Option<String>,
    #[command(flatten)]
    fields: AutomationFields,
}

/// Optional automation fields shared by `create` and `update`.
#[derive(Debug, Args)]
pub(super) struct AutomationFields {
    /// IANA time zone the schedule is read in (default UTC), e.g. Europe/Berlin.
    #[arg(long, value_name = "ZONE")]
    timezone: Option<String>,
    /// The workflow config to run (`cfg_…`).
    #[arg(long, value_name = "CONFIG_ID", value_parser = super::args::config_id)]
    config_id: Option<String>,
    /// Free-text description.
    #[arg(long)]
    description: Option<String>,
    /// User identity the workflow executes as.
    #[arg(long, value_name = "USER_ID")]
    run_as_user_id: Option<String>,
    /// Unique slug in the app; usable wherever an automation ID is.
    #[arg(long, value_name = "SLUG")]
    lookup_key: Option<String>,
    /// Arbitrary metadata, a JSON object.
    #[arg(long, value_parser = json_object, value_name = "JSON")]
    metadata: Option<Value>,
    /// What a scheduled automation does with ticks missed while the host was down or it was paused.
    #[arg(long, value_enum, help_heading = "Execution policy")]
    catchup: Option<Catchup>,
    /// How far back `--catchup run_all` goes, in seconds.
    #[arg(long, value_name = "SECONDS", help_heading = "Execution policy")]
    catchup_window_seconds: Option<u64>,
    /// What a tick does while a run of the automation is still running.
    #[arg(long, value_enum, help_heading = "Execution policy")]
    overlap: Option<Overlap>,
    /// Most runs of this automation executing at once.
    #[arg(long, value_name = "N", help_heading = "Execution policy")]
    max_concurrency: Option<u32>,
    /// Retry policy, e.g. '{"max_attempts": 3, "backoff_base_ms": 1000, "retry_guest_errors": false}'.
    #[arg(long, value_parser = json_object, value_name = "JSON", help_heading = "Execution policy")]
    retry: Option<Value>,
    /// Sandbox limit overrides, e.g. '{"fuel": 10000000, "memory_bytes": 67108864, "timeout_ms": 5000}'.
    #[arg(long, value_parser = json_object, value_name = "JSON", help_heading = "Execution policy")]
    limits: Option<Value>,
    /// Let the workflow send HTTP requests to HOST: `host` (ports 80 and 443),
    /// `host:port` or `https://host[:port]`. Repeat for more hosts; on update,
    /// replaces the hosts allowed before.
    #[arg(
        long = "allow-host",
        value_name = "HOST",
        help_heading = "Capabilities"
    )]
    allow_hosts: Vec<String>,
    /// Let the workflow read the app secret NAME (`automata set secret`).
    /// Repeat for more secrets; on update, replaces the secrets granted before.
    #[arg(long = "secret", value_name = "NAME", help_heading = "Capabilities")]
    secrets: Vec<String>,
}

/// Missed-tick policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Catchup {
    /// Record the missed tick as a cancelled run; run nothing.
    #[value(name = "skip")]
    Skip,
    /// Run the latest missed tick.
    #[value(name = "run_once")]
    RunOnce,
    /// Run every missed tick within the catch-up window.
    #[value(name = "run_all")]
    RunAll,
}

/// Overlapping-run policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Overlap {
    /// Run concurrently.
    Allow,
    /// Record the tick as a cancelled run.
    Skip,
    /// Queue it behind the running one.
    Queue,
}

impl AutomationFields {
    /// Whether `--allow-host` or `--secret` was given.
    pub(super) fn sets_capabilities(&self) -> bool {
        !self.allow_hosts.is_empty() || !self.secrets.is_empty()
    }

    /// Adds the fields that were given to a request body. `--allow-host`
    /// and `--secret` each replace their part of `current` (the
    /// automation's `capabilities` before an update), keeping the other.
    pub(super) fn insert_into(self, body: &mut Map<String, Value>, current: Option<&Value>) {
        if self.sets_capabilities() {
            let mut capabilities = current
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            if !self.allow_hosts.is_empty() {
                capabilities.insert("http".into(), json!({ "allowed_hosts": self.allow_hosts }));
            }
            if !self.secrets.is_empty() {
                capabilities.insert("secrets".into(), json!(self.secrets));
            }
            body.insert("capabilities".into(), Value::Object(capabilities));
        }
        let strings = [
            ("timezone", self.timezone),
            ("config_id", self.config_id),
            ("description", self.description),
            ("run_as_user_id", self.run_as_user_id),
            ("lookup_key", self.lookup_key),
        ];
        for (key, value) in strings {
            if let Some(value) = value {
                body.insert(key.into(), Value::String(value));
            }
        }
        let objects = [
            ("metadata", self.metadata),
            ("retry", self.retry),
            ("limits", self.limits),
            ("catchup", self.catchup.map(|c| Value::from(api_name(c)))),
            ("overlap", self.overlap.map(|o| Value::from(api_name(o)))),
            (
                "catchup_window_seconds",
                self.catchup_window_seconds.map(Value::from),
            ),
            ("max_concurrency", self.max_concurrency.map(Value::from)),
        ];
        for (key, value) in objects {
            if let Some(value) = value {
                body.insert(key.into(), value);
            }
        }
    }
}

#[derive(Debug, Args)]
struct CreateConfig {
    /// The compiled workflow component.
    #[arg(long, short = 'f', value_name = "PATH")]
    file: PathBuf,
    /// Display name (the server uses the workflow's own name when omitted).
    #[arg(long, short = 'n')]
    name: Option<String>,
}

impl Create {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        let (api, out) = self.connection.open()?;
        let now = chrono::Utc::now();
        match self.what {
            What::App(app) => return super::tenancy::create_app(app, &self.connection).await,
            What::Key(key) => return super::tenancy::create_key(key, &self.connection).await,
            What::Automation(automation) => {
                let mut body = Map::new();
                body.insert("name".into(), json!(automation.name));
                body.insert("type".into(), json!(api_name(automation.kind)));
                if let Some(trigger) = automation.trigger {
                    super::catalogue::check_event(&api, &trigger).await?;
                    body.insert("trigger".into(), json!(trigger));
                }
                if let Some(schedule) = automation.schedule {
                    body.insert("schedule".into(), json!(schedule));
                }
                automation.fields.insert_into(&mut body, None);
                let created = api
                    .post(&["automations"], Some(&Value::Object(body)))
                    .await
                    .map_err(super::client::ApiError::in_flag_terms)?;
                if out.is_json() {
                    out.json(&created);
                } else {
                    views::automation_detail(&out, &created, now);
                }
            }
            What::Config(config) => {
                let bytes = std::fs::read(&config.file)
                    .with_context(|| format!("cannot read {}", config.file.display()))?;
                let mut url = api.app_url(&["configs"]);
                if let Some(name) = &config.name {
                    url.query_pairs_mut().append_pair("name", name);
                }
                let length = bytes.len() as u64;
                let progress = Progress::start(&config.file, length);
                let body = upload_body(Bytes::from(bytes), progress.clone());
                let uploaded = api.post_body(url, "application/wasm", length, body).await;
                if let Some(progress) = progress {
                    progress.finish();
                }
                let created = uploaded?;
                if let Some(message) = created["message"].as_str().filter(|_| !out.is_json()) {
                    // "already uploaded as cfg_… (name); nothing was stored"
                    let mut chars = message.chars();
                    let first = chars.next().map(|c| c.to_ascii_uppercase());
                    eprintln!("{}{}.", first.unwrap_or_default(), chars.as_str());
                }
                if out.is_json() {
                    out.json(&created);
                } else {
                    views::config_detail(&out, &created, now);
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// Uploads at least this large show progress on a terminal.
const PROGRESS_THRESHOLD: u64 = 1024 * 1024;
const CHUNK: usize = 64 * 1024;

/// The request body: streamed in chunks that move the progress line as the
/// connection takes them, or sent whole when there is no progress to show.
fn upload_body(bytes: Bytes, progress: Option<Arc<Progress>>) -> reqwest::Body {
    let Some(progress) = progress else {
        return reqwest::Body::from(bytes);
    };
    let chunks: Vec<Bytes> = (0..bytes.len())
        .step_by(CHUNK)
        .map(|start| bytes.slice(start..bytes.len().min(start + CHUNK)))
        .collect();
    let stream = futures_util::stream::iter(chunks.into_iter().map(move |chunk| {
        progress.advance(chunk.len() as u64);
        Ok::<_, std::io::Error>(chunk)
    }));
    reqwest::Body::wrap_stream(stream)
}

/// A one-line progress display on stderr: "Uploading f.wasm  42%  8.4 MiB / 20.0 MiB".
#[derive(Debug)]
struct Progress {
    label: String,
    total: u64,
    sent: AtomicU64,
}

impl Progress {
    /// Only for large files, and only when stderr is a terminal.
    fn start(path: &std::path::Path, total: u64) -> Option<Arc<Self>> {
        if total < PROGRESS_THRESHOLD || !std::io::stderr().is_terminal() {
            return None;
        }
        let label = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let progress = Arc::new(Self {
            label,
            total,
            sent: AtomicU64::new(0),
        });
        progress.draw();
        Some(progress)
    }

    fn advance(&self, n: u64) {
        self.sent.fetch_add(n, Ordering::Relaxed);
        self.draw();
    }

    fn draw(&self) {
        // Back to the line's start and clear it: a shorter line leaves no tail.
        eprint!(
            "\r\x1b[K{}",
            progress_line(&self.label, self.sent.load(Ordering::Relaxed), self.total)
        );
    }

    fn finish(&self) {
        eprintln!();
    }
}

fn progress_line(label: &str, sent: u64, total: u64) -> String {
    let percent = (sent * 100).checked_div(total).unwrap_or(100);
    format!(
        "Uploading {label}  {percent:>3}%  {} / {}",
        human_bytes(sent),
        human_bytes(total)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines_show_percent_and_sizes() {
        assert_eq!(
            progress_line("w.wasm", 5 * 1024 * 1024, 20 * 1024 * 1024),
            "Uploading w.wasm   25%  5.0 MiB / 20.0 MiB"
        );
        assert_eq!(
            progress_line("w.wasm", 0, 0),
            "Uploading w.wasm  100%  0 B / 0 B"
        );
    }

    #[test]
    fn automation_fields_only_send_what_was_given() {
        let fields = AutomationFields {
            timezone: Some("Europe/Berlin".into()),
            config_id: None,
            description: Some(String::new()),
            run_as_user_id: None,
            lookup_key: None,
            metadata: Some(json!({"team": "ops"})),
            catchup: Some(Catchup::RunOnce),
            catchup_window_seconds: None,
            overlap: None,
            max_concurrency: Some(2),
            retry: None,
            limits: None,
            allow_hosts: vec![],
            secrets: vec![],
        };
        let mut body = Map::new();
        fields.insert_into(&mut body, None);
        assert_eq!(
            Value::Object(body),
            json!({
                "timezone": "Europe/Berlin",
                "description": "",
                "metadata": {"team": "ops"},
                "catchup": "run_once",
                "max_concurrency": 2
            })
        );
    }

    #[test]
    fn grant_flags_replace_their_part_and_keep_the_other() {
        let fields = |allow_hosts: &[&str], secrets: &[&str]| AutomationFields {
            timezone: None,
            config_id: None,
            description: None,
            run_as_user_id: None,
            lookup_key: None,
            metadata: None,
            catchup: None,
            catchup_window_seconds: None,
            overlap: None,
            max_concurrency: None,
            retry: None,
            limits: None,
            allow_hosts: allow_hosts.iter().map(|h| (*h).to_owned()).collect(),
            secrets: secrets.iter().map(|s| (*s).to_owned()).collect(),
        };
        let current = json!({"http": {"allowed_hosts": ["old.example.com"]}, "secrets": ["KEEP"]});
        let mut body = Map::new();
        fields(&["api.example.com", "hooks.example.com:8443"], &[])
            .insert_into(&mut body, Some(&current));
        assert_eq!(
            body["capabilities"],
            json!({"http": {"allowed_hosts": ["api.example.com", "hooks.example.com:8443"]}, "secrets": ["KEEP"]})
        );
        let mut body = Map::new();
        fields(&[], &["NEW"]).insert_into(&mut body, None);
        assert_eq!(body["capabilities"], json!({"secrets": ["NEW"]}));
        let mut body = Map::new();
        fields(&[], &[]).insert_into(&mut body, Some(&current));
        assert!(body.is_empty());
    }
}
