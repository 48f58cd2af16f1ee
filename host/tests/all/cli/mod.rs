//! The `automata` CLI against a real server: the built binary runs
//! `automata serve` on a loopback port and each test drives the CLI's commands
//! (the spec's exact command lines included) in table and JSON output.

use std::process::{Child, Command, Output, Stdio};

use automata::store::{RecordKind, SledStore, StoreOptions};
use automata_e2e::{ADMIN_TOKEN, ServeProcess, guest_path, spawn_serve};
use serde_json::Value;

mod readme;
mod secrets;

const BIN: &str = env!("CARGO_BIN_EXE_automata");

/// A server on `127.0.0.1:0` with its own data directory, killed on drop.
struct Server {
    child: Child,
    url: String,
    _data: tempfile::TempDir,
}

impl Server {
    fn start() -> Server {
        let data = tempfile::tempdir().unwrap();
        let ServeProcess { child, url } = spawn_serve(BIN, data.path(), &[]);
        Server {
            child,
            url,
            _data: data,
        }
    }

    /// Runs `automata <args>` against this server.
    fn cli(&self, args: &[&str]) -> Run {
        self.cli_with_env(args, &[])
    }

    fn cli_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut command = Command::new(BIN);
        command.args(args).env("AUTOMATA_URL", &self.url);
        let mut env = env.to_vec();
        env.insert(0, ("AUTOMATA_TOKEN", ADMIN_TOKEN));
        run(command, &env)
    }

    /// Runs a command that must succeed with `-o json` and returns its JSON.
    fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.extend(["-o", "json"]);
        self.cli(&args).ok().json()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A finished CLI invocation.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(mut command: Command, env: &[(&str, &str)]) -> Run {
    command
        .env_remove("AUTOMATA_APP")
        .env_remove("AUTOMATA_TOKEN")
        .env_remove("NO_COLOR")
        .envs(env.iter().copied())
        .stdin(Stdio::null());
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().expect("run automata");
    Run {
        code: status.code().expect("exited normally"),
        stdout: String::from_utf8(stdout).unwrap(),
        stderr: String::from_utf8(stderr).unwrap(),
    }
}

/// `automata <args>` with no server configured beyond `env`.
fn cli_without_server(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = Command::new(BIN);
    command.args(args).env_remove("AUTOMATA_URL");
    run(command, env)
}

impl Run {
    fn ok(self) -> Run {
        assert_eq!(self.code, 0, "expected success: {self:#?}");
        self
    }

    fn fails_with(self, code: i32, message: &str) -> Run {
        assert_eq!(self.code, code, "expected exit {code}: {self:#?}");
        assert!(
            self.stderr.contains(message),
            "expected stderr to contain {message:?}: {self:#?}"
        );
        self
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:#?}"))
    }

    /// The value of a `Label:  value` line of a detail view.
    fn field(&self, label: &str) -> String {
        let prefix = format!("{label}:");
        self.stdout
            .lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {label:?} field: {self:#?}"))
            .trim()
            .to_owned()
    }

    /// The table's rows (header excluded) split on runs of 2+ spaces.
    fn rows(&self) -> Vec<Vec<String>> {
        self.stdout
            .lines()
            .skip(1)
            .map(|line| {
                line.split("  ")
                    .map(str::trim)
                    .filter(|cell| !cell.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .collect()
    }

    fn header(&self) -> Vec<String> {
        let first = self.stdout.lines().next().unwrap_or_default();
        first.split_whitespace().map(str::to_owned).collect()
    }
}

/// Uploads an example component and returns its config ID.
fn upload(server: &Server, example: &str) -> String {
    let config = server.json(&[
        "create",
        "config",
        "--file",
        &guest_path(example).to_string_lossy(),
    ]);
    config["id"].as_str().expect("config id").to_owned()
}

#[test]
fn the_specs_command_lines_work_as_written() {
    let server = Server::start();
    let digest_config = upload(&server, "daily-digest");
    let other_config = upload(&server, "welcome-new-members");

    // archastro create automation -n "Nightly Report" -t scheduled --schedule "0 0 * * *" --config-id cfg_abc123
    let created = server
        .cli(&[
            "create",
            "automation",
            "-n",
            "Nightly Report",
            "-t",
            "scheduled",
            "--schedule",
            "0 0 * * *",
            "--config-id",
            &digest_config,
        ])
        .ok();
    let id = created.field("ID");
    assert!(id.starts_with("aut_"), "{created:#?}");
    assert_eq!(created.field("Name"), "Nightly Report");
    assert_eq!(created.field("Status"), "draft");
    assert_eq!(created.field("Schedule"), "0 0 * * *");

    // archastro list automations
    let listed = server.cli(&["list", "automations"]).ok();
    assert_eq!(
        listed.header(),
        [
            "ID",
            "NAME",
            "TYPE",
            "STATUS",
            "TRIGGER/SCHEDULE",
            "CONFIG",
            "NEXT",
            "RUN",
            "UPDATED"
        ]
    );
    let rows = listed.rows();
    assert_eq!(rows.len(), 1, "{listed:#?}");
    assert_eq!(
        rows[0][..4],
        [id.as_str(), "Nightly Report", "scheduled", "draft"]
    );

    // archastro list automations --type trigger
    let triggers = server
        .cli(&["list", "automations", "--type", "trigger"])
        .ok();
    assert_eq!(triggers.stdout, "");
    assert!(
        triggers.stderr.contains("No automations found"),
        "{triggers:#?}"
    );

    // archastro activate automation aut_abc123
    let activated = server.cli(&["activate", "automation", &id]).ok();
    assert_eq!(activated.field("Status"), "running");
    assert!(
        activated.field("Next run").starts_with("20"),
        "{activated:#?}"
    );

    // archastro pause automation aut_abc123
    let paused = server.cli(&["pause", "automation", &id]).ok();
    assert_eq!(paused.field("Status"), "paused");

    // archastro update automation aut_abc123 -n "Updated Name" --config-id cfg_def456
    let updated = server
        .cli(&[
            "update",
            "automation",
            &id,
            "-n",
            "Updated Name",
            "--config-id",
            &other_config,
        ])
        .ok();
    assert_eq!(updated.field("Name"), "Updated Name");
    assert_eq!(updated.field("Config"), other_config);

    // archastro list automationruns --automation aut_abc123 (and --status failed)
    let runs = server
        .cli(&["list", "automationruns", "--automation", &id])
        .ok();
    assert!(runs.stderr.contains("No runs found"), "{runs:#?}");
    server
        .cli(&[
            "list",
            "automationruns",
            "--automation",
            &id,
            "--status",
            "failed",
        ])
        .ok();

    // archastro delete automation aut_abc123
    let deleted = server.cli(&["delete", "automation", &id]).ok();
    assert_eq!(deleted.stdout.trim(), format!("Deleted automation {id}."));
    server
        .cli(&["describe", "automation", &id])
        .fails_with(1, &id);
}

#[test]
fn schedules_are_previewed_before_use() {
    let server = Server::start();
    // `automata preview schedule`: the reading, then fire times in the zone
    // and UTC. 2026-03-27 is a Friday; Berlin is on CEST from the 29th
    // (instants from Python's zoneinfo).
    let previewed = server
        .cli(&[
            "preview",
            "schedule",
            "0 9 * * 1-5",
            "--timezone",
            "Europe/Berlin",
            "--after",
            "2026-03-27T09:00:00Z",
            "--count",
            "2",
        ])
        .ok();
    assert_eq!(previewed.field("Expression"), "0 9 * * 1-5");
    assert_eq!(previewed.field("Time zone"), "Europe/Berlin");
    assert_eq!(
        previewed.field("Description"),
        "At 09:00, Monday through Friday, in Europe/Berlin"
    );
    let lines: Vec<&str> = previewed.stdout.lines().collect();
    let table = lines
        .iter()
        .position(|line| line.starts_with("NEXT (Europe/Berlin)"))
        .unwrap_or_else(|| panic!("no table: {previewed:#?}"));
    assert!(lines[table].contains("UTC"), "{previewed:#?}");
    let rows: Vec<Vec<&str>> = lines[table + 1..]
        .iter()
        .map(|line| {
            line.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect()
        })
        .collect();
    assert_eq!(
        rows,
        [
            ["Mon 2026-03-30 09:00:00 CEST", "2026-03-30T07:00:00Z"],
            ["Tue 2026-03-31 09:00:00 CEST", "2026-03-31T07:00:00Z"]
        ]
    );
    let json = server.json(&[
        "preview",
        "schedule",
        "CRON_TZ=America/Santiago @daily",
        "--after",
        "2026-09-05T12:00:00Z",
        "-n",
        "1",
    ]);
    assert_eq!(json["timezone"], "America/Santiago");
    // Santiago skips midnight on 2026-09-06: the run is at 01:00 -03.
    assert_eq!(json["next"], serde_json::json!(["2026-09-06T04:00:00Z"]));
    // Bad input: the server's message and exit 1; a usage error is 2.
    server
        .cli(&["preview", "schedule", "0 9 * * 1-5 2027"])
        .fails_with(1, "six fields are read as seconds-first");
    server
        .cli(&["preview", "schedule", "* * * * *", "--count", "0"])
        .fails_with(2, "--count");
    server
        .cli(&["preview", "schedule", "* * * * *", "--after", "soon"])
        .fails_with(2, "RFC 3339");

    // A draft's describe shows its next 5 runs as they would be.
    let draft = server.json(&[
        "create",
        "automation",
        "-n",
        "Report",
        "-t",
        "scheduled",
        "--schedule",
        "0 9 * * 1-5",
        "--timezone",
        "Europe/Berlin",
    ]);
    let id = draft["id"].as_str().unwrap();
    let described = server.cli(&["describe", "automation", id]).ok();
    assert_eq!(
        described.field("Reads as"),
        "At 09:00, Monday through Friday, in Europe/Berlin"
    );
    let lines: Vec<&str> = described.stdout.lines().collect();
    let table = lines
        .iter()
        .position(|line| line.starts_with("NEXT RUNS IF RUNNING (Europe/Berlin)"))
        .unwrap_or_else(|| panic!("no table: {described:#?}"));
    assert_eq!(lines[table + 1..].len(), 5, "{described:#?}");
    assert!(lines[table + 1].contains(" 09:00:00 CE"), "{described:#?}");
}

#[test]
fn automations_move_through_their_lifecycle_in_json() {
    let server = Server::start();
    let config = upload(&server, "welcome-new-members");
    let created = server.json(&[
        "create",
        "automation",
        "-n",
        "Welcome",
        "-t",
        "trigger",
        "--trigger",
        "thread.member_joined",
        "--config-id",
        &config,
        "--description",
        "Greets new members",
        "--run-as-user-id",
        "usr_greeter",
        "--lookup-key",
        "welcome",
        "--metadata",
        r#"{"team": "community"}"#,
    ]);
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["type"], "trigger");
    assert_eq!(created["status"], "draft");
    assert_eq!(created["trigger"], "thread.member_joined");
    assert_eq!(created["run_as_user_id"], "usr_greeter");
    assert_eq!(created["metadata"]["team"], "community");

    // By ID and by lookup key, in both formats.
    assert_eq!(
        server.json(&["describe", "automation", "welcome"])["id"],
        id.as_str()
    );
    let described = server.cli(&["describe", "automation", &id]).ok();
    assert_eq!(described.field("Lookup key"), "welcome");
    assert_eq!(described.field("Description"), "Greets new members");
    assert_eq!(described.field("Metadata"), r#"{"team":"community"}"#);

    assert_eq!(
        server.json(&["activate", "automation", &id])["status"],
        "running"
    );
    assert_eq!(
        server.json(&["pause", "automation", &id])["status"],
        "paused"
    );
    assert_eq!(
        server.json(&["reset", "automation", &id])["status"],
        "draft"
    );

    let listed = server.json(&["list", "automations", "--type", "trigger"]);
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
    let scheduled = server.json(&["list", "automations", "--type", "scheduled"]);
    assert_eq!(scheduled["data"], Value::Array(vec![]));

    let updated = server.json(&[
        "update",
        "automation",
        &id,
        "--overlap",
        "skip",
        "--max-concurrency",
        "2",
        "--clear",
        "lookup_key,run_as_user_id",
    ]);
    assert_eq!(updated["overlap"], "skip");
    assert_eq!(updated["max_concurrency"], 2);
    assert_eq!(updated["lookup_key"], Value::Null);
    assert_eq!(updated["run_as_user_id"], Value::Null);

    // A draft can change type: the new type's field set, the old one cleared.
    let retyped = server
        .cli(&[
            "update",
            "automation",
            &id,
            "-t",
            "scheduled",
            "--schedule",
            "0 9 * * 1-5",
            "--timezone",
            "Europe/Berlin",
            "--clear",
            "trigger",
        ])
        .ok();
    assert_eq!(retyped.field("Type"), "scheduled");
    assert_eq!(retyped.field("Schedule"), "0 9 * * 1-5");
    assert_eq!(retyped.field("Time zone"), "Europe/Berlin");
    assert!(!retyped.stdout.contains("Trigger:"), "{retyped:#?}");

    let deleted = server.json(&["delete", "automation", &id]);
    assert_eq!(deleted, serde_json::json!({"id": id, "deleted": true}));
    assert_eq!(
        server.json(&["list", "automations"])["data"],
        Value::Array(vec![])
    );
}

#[test]
fn refused_transitions_and_activations_show_the_servers_reason() {
    let server = Server::start();
    let config = upload(&server, "welcome-new-members");
    let id = server.json(&[
        "create",
        "automation",
        "-n",
        "No config",
        "-t",
        "trigger",
        "--trigger",
        "thread.created",
    ])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Draft cannot be paused: 409 naming the current status.
    server
        .cli(&["pause", "automation", &id])
        .fails_with(1, "draft");
    // Activation needs a config whose graph handles the trigger: 422.
    server
        .cli(&["activate", "automation", &id])
        .fails_with(1, "config");
    server
        .cli(&["update", "automation", &id, "--config-id", &config])
        .ok();
    server
        .cli(&["activate", "automation", &id])
        .fails_with(1, "thread.created");
}

#[test]
fn grants_are_given_as_flags_and_shown_by_describe() {
    let server = Server::start();
    let created = server.json(&[
        "create",
        "automation",
        "-n",
        "Caller",
        "-t",
        "trigger",
        "--trigger",
        "thread.created",
        "--allow-host",
        "https://hooks.example.com",
        "--allow-host",
        "127.0.0.1:9000",
        "--secret",
        "CHAT_WEBHOOK_URL",
    ]);
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(
        created["capabilities"],
        serde_json::json!({
            "http": {"allowed_hosts": ["https://hooks.example.com", "127.0.0.1:9000"]},
            "secrets": ["CHAT_WEBHOOK_URL"],
        })
    );
    // Replacing the hosts keeps the secrets.
    server
        .cli(&[
            "update",
            "automation",
            &id,
            "--allow-host",
            "api.example.com",
        ])
        .ok();
    let shown = server.cli(&["describe", "automation", &id]).ok();
    assert_eq!(shown.field("Allowed hosts"), "api.example.com");
    assert_eq!(shown.field("Secrets"), "CHAT_WEBHOOK_URL");
    // A bad entry is refused in the flag's terms.
    server
        .cli(&["update", "automation", &id, "--secret", "chat-url"])
        .fails_with(1, "--secret: `chat-url` is not a secret name");
    server
        .cli(&["update", "automation", &id, "--clear", "capabilities"])
        .ok();
    let shown = server.cli(&["describe", "automation", &id]).ok();
    assert_eq!(shown.field("Allowed hosts"), "none");
    assert_eq!(shown.field("Secrets"), "none");
}

#[test]
fn configs_are_uploaded_listed_described_and_deleted() {
    let server = Server::start();
    let path = guest_path("ingestion-failure-alert")
        .to_string_lossy()
        .into_owned();
    let uploaded = server
        .cli(&[
            "create",
            "config",
            "--file",
            &path,
            "-n",
            "Ingestion alerts",
        ])
        .ok();
    let id = uploaded.field("ID");
    assert!(id.starts_with("cfg_"), "{uploaded:#?}");
    assert_eq!(uploaded.field("Name"), "Ingestion alerts");
    assert_eq!(uploaded.field("Trigger nodes"), "context.ingestion.failed");
    assert!(uploaded.field("Digest").starts_with("sha256:"));
    let size = std::fs::metadata(&path).unwrap().len();
    assert!(uploaded.field("Size").ends_with(" bytes)"), "{uploaded:#?}");
    assert!(uploaded.stdout.contains("Steps:"), "{uploaded:#?}");

    let listed_json = server.json(&["list", "configs"]);
    assert_eq!(listed_json["data"][0]["id"], id.as_str());
    let listed = server.cli(&["list", "configs"]).ok();
    assert_eq!(
        listed.header(),
        ["ID", "NAME", "TRIGGERS", "SIZE", "DIGEST", "CREATED"]
    );
    assert_eq!(
        listed.rows()[0][..3],
        [id.as_str(), "Ingestion alerts", "context.ingestion.failed"]
    );

    let described = server.json(&["describe", "config", &id]);
    assert_eq!(described["size"], size);
    assert_eq!(
        described["graph"]["triggers"][0],
        "context.ingestion.failed"
    );

    server.cli(&["delete", "config", &id]).ok();
    server.cli(&["describe", "config", &id]).fails_with(1, &id);

    // A file that is not a component: the server's reason, exit 1.
    let junk = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(junk.path(), b"not wasm").unwrap();
    server
        .cli(&["create", "config", "--file", junk.path().to_str().unwrap()])
        .fails_with(1, "error:");
    // A file that does not exist never reaches the server.
    server
        .cli(&["create", "config", "--file", "/nonexistent/workflow.wasm"])
        .fails_with(1, "cannot read /nonexistent/workflow.wasm");
}

#[test]
fn the_event_catalogue_lists_the_specs_22_events() {
    let server = Server::start();
    let events = server.cli(&["list", "events"]).ok();
    assert_eq!(events.header(), ["NAME", "DESCRIPTION"]);
    let rows = events.rows();
    // The spec's tables list 22 events (5 thread, 3 conversation session,
    // 1 connector, 6 context, 2 credential, 2 email, 3 agent session).
    assert_eq!(rows.len(), 22, "{events:#?}");
    assert!(rows.contains(&vec![
        "thread.created".to_owned(),
        "A new thread was created".to_owned()
    ]));
    let json = server.json(&["list", "events"]);
    assert_eq!(json["data"].as_array().unwrap().len(), 22);
}

#[test]
fn a_reader_that_stops_early_is_not_an_error() {
    let server = Server::start();
    // Like `automata list events | head -n1`: stdout closes before the CLI writes.
    let mut child = Command::new(BIN)
        .args(["list", "events"])
        .env("AUTOMATA_URL", &server.url)
        .env("AUTOMATA_TOKEN", ADMIN_TOKEN)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{:?}: {stderr}", output.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn apps_come_from_the_flag_or_the_environment() {
    let server = Server::start();
    server.cli(&["create", "app", "team-a"]).ok();
    let args = [
        "create",
        "automation",
        "-n",
        "A",
        "-t",
        "trigger",
        "--trigger",
        "thread.created",
    ];
    server
        .cli_with_env(&args, &[("AUTOMATA_APP", "team-a")])
        .ok();
    let in_a = server
        .cli(&["list", "automations", "--app", "team-a", "-o", "json"])
        .ok();
    assert_eq!(in_a.json()["data"].as_array().unwrap().len(), 1);
    let in_default = server.json(&["list", "automations"]);
    assert_eq!(in_default["data"], Value::Array(vec![]));
    // The flag wins over the environment.
    let flag_wins = server
        .cli_with_env(
            &["list", "automations", "--app", "default", "-o", "json"],
            &[("AUTOMATA_APP", "team-a")],
        )
        .ok();
    assert_eq!(flag_wins.json()["data"], Value::Array(vec![]));
}

#[test]
fn server_errors_exit_1_with_the_servers_message() {
    let server = Server::start();
    server
        .cli(&["describe", "automation", "aut_00000000000000000000000000"])
        .fails_with(1, "aut_00000000000000000000000000");
    server
        .cli(&[
            "describe",
            "automationrun",
            "atr_00000000000000000000000000",
        ])
        .fails_with(1, "atr_00000000000000000000000000");
    let invalid_cron = server.cli(&[
        "create",
        "automation",
        "-n",
        "Bad",
        "-t",
        "scheduled",
        "--schedule",
        "61 * * * *",
    ]);
    let invalid_cron = invalid_cron.fails_with(1, "error:");
    assert!(
        invalid_cron.stderr.contains("schedule"),
        "{invalid_cron:#?}"
    );
    assert_eq!(invalid_cron.stdout, "");
    server
        .cli(&[
            "create",
            "automation",
            "-n",
            "Bad",
            "-t",
            "trigger",
            "--trigger",
            "no.such_event",
        ])
        .fails_with(2, "`no.such_event` is not a platform event");
}

#[test]
fn an_unreachable_server_is_named_and_exits_1() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    cli_without_server(&["list", "automations"], &[("AUTOMATA_URL", &url)])
        .fails_with(1, &format!("cannot reach the Automata server at {url}"));
    cli_without_server(&["list", "automations", "--url", &url], &[]).fails_with(1, &url);
}

#[test]
fn usage_errors_exit_2() {
    let no_server = [("AUTOMATA_URL", "http://127.0.0.1:9")];
    for args in [
        vec!["list"],
        vec!["list", "widgets"],
        vec!["create", "automation", "-n", "X", "-t", "scheduled"],
        vec!["create", "automation", "-n", "X", "-t", "trigger"],
        vec!["create", "automation", "-n", "X", "-t", "sometimes"],
        vec!["list", "automations", "-o", "yaml"],
        vec!["list", "automationruns", "--since", "a while"],
        vec!["describe", "automation", "atr_01jdqm3k5v8x2n7w4c9b6e1f0a"],
        vec![
            "create",
            "automation",
            "-n",
            "X",
            "-t",
            "trigger",
            "--config-id",
            "cfg_x",
        ],
        vec!["--app", "x", "serve"],
        vec![
            "list",
            "automationruns",
            "--automation",
            "aut_1",
            "--limit",
            "101",
        ],
        vec!["list", "automations", "--app", "no spaces"],
        vec!["list", "automations", "--url", "localhost:7070"],
        vec![
            "create",
            "automation",
            "-n",
            "X",
            "-t",
            "trigger",
            "--trigger",
            "a",
            "--metadata",
            "[1]",
        ],
        vec!["send", "event", "thread.created", "--payload", "{not json"],
        vec!["completions", "tcsh"],
    ] {
        let run = cli_without_server(&args, &no_server);
        assert_eq!(run.code, 2, "{args:?}: {run:#?}");
        assert!(run.stderr.contains("error"), "{args:?}: {run:#?}");
    }
    // Checked by the CLI after parsing, before anything is sent.
    cli_without_server(&["update", "automation", "nightly"], &no_server)
        .fails_with(2, "nothing to update");
    cli_without_server(
        &[
            "update",
            "automation",
            "nightly",
            "-n",
            "X",
            "--clear",
            "lookup_key",
            "--lookup-key",
            "k",
        ],
        &no_server,
    )
    .fails_with(2, "both set and cleared");
}

#[test]
fn every_command_has_help_with_an_example() {
    let commands: &[&[&str]] = &[
        &[],
        &["list"],
        &["list", "automations"],
        &["list", "automationruns"],
        &["list", "configs"],
        &["list", "events"],
        &["describe"],
        &["describe", "automation"],
        &["describe", "automationrun"],
        &["describe", "config"],
        &["preview"],
        &["preview", "schedule"],
        &["create"],
        &["create", "automation"],
        &["create", "config"],
        &["update"],
        &["update", "automation"],
        &["delete"],
        &["delete", "automation"],
        &["delete", "config"],
        &["activate"],
        &["activate", "automation"],
        &["pause"],
        &["pause", "automation"],
        &["reset"],
        &["reset", "automation"],
        &["send"],
        &["send", "event"],
        &["run"],
        &["run", "automation"],
        &["rerun"],
        &["rerun", "automationrun"],
        &["cancel"],
        &["cancel", "automationrun"],
        &["completions"],
        &["run-local"],
        &["serve"],
        &["doctor"],
    ];
    for command in commands {
        let mut args = command.to_vec();
        args.push("--help");
        let help = cli_without_server(&args, &[]).ok();
        // An `Example:` heading on its own line, then the example's command
        // line indented under it (not reflowed into a paragraph).
        let example = help
            .stdout
            .lines()
            .skip_while(|line| !matches!(*line, "Example:" | "Examples:"))
            .nth(1)
            .unwrap_or_default();
        assert!(
            example.starts_with("  automata "),
            "{command:?} has no example laid out as one: {}",
            help.stdout
        );
    }
}

#[test]
fn completions_are_generated_for_each_shell() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef automata"),
        ("fish", "complete -c automata"),
    ] {
        let script = cli_without_server(&["completions", shell], &[]).ok();
        assert!(
            script.stdout.contains(marker),
            "{shell}: {}",
            &script.stdout[..200.min(script.stdout.len())]
        );
        assert!(script.stdout.contains("automationruns"), "{shell}");
    }
}

/// A running trigger automation on `thread.created` running the sleeper test
/// workflow, which fails, sleeps or echoes as its payload asks.
fn sleeper_automation(server: &Server) -> String {
    let config = upload(server, "sleeper");
    let created = server.json(&[
        "create",
        "automation",
        "-n",
        "Sleeper",
        "-t",
        "trigger",
        "--trigger",
        "thread.created",
        "--config-id",
        &config,
    ]);
    let id = created["id"].as_str().unwrap().to_owned();
    server.cli(&["activate", "automation", &id]).ok();
    id
}

#[test]
fn events_create_runs_that_can_be_followed_and_listed() {
    let server = Server::start();
    let automation = sleeper_automation(&server);

    let sent = server
        .cli(&[
            "send",
            "event",
            "thread.created",
            "--payload",
            r#"{"error": "boom"}"#,
        ])
        .ok();
    assert!(
        sent.stdout
            .starts_with("Event thread.created accepted: 1 run created."),
        "{sent:#?}"
    );
    let table = Run {
        stdout: sent.stdout.lines().skip(1).collect::<Vec<_>>().join("\n"),
        ..sent
    };
    assert_eq!(
        table.header(),
        [
            "ID",
            "AUTOMATION",
            "STATUS",
            "TRIGGER",
            "ATTEMPT",
            "CREATED",
            "DURATION",
            "ERROR"
        ]
    );
    let failed_run = table.rows()[0][0].clone();
    assert_eq!(table.rows()[0][1], automation);

    // Follow until it ends (exit 1: it failed), then the spec's
    // `describe automationrun atr_…`.
    let followed = server.cli(&["describe", "automationrun", &failed_run, "--follow"]);
    assert_eq!(followed.code, 1, "{followed:#?}");
    assert_eq!(followed.field("Status"), "failed");
    assert!(
        followed.stdout.starts_with("attempt 1 of run"),
        "the output is streamed first: {followed:#?}"
    );
    let described = server.cli(&["describe", "automationrun", &failed_run]).ok();
    assert_eq!(described.field("Automation"), automation);
    assert_eq!(described.field("Trigger"), "thread.created");
    assert!(
        described
            .field("Fuel")
            .chars()
            .all(|c| c.is_ascii_digit() || c == ',')
    );
    assert!(
        described.stdout.contains("Error:\n  boom\n"),
        "{described:#?}"
    );
    assert!(
        described.stdout.contains("Output:\n  attempt 1 of run"),
        "{described:#?}"
    );
    assert!(
        described.stdout.contains("History:\n  pending"),
        "{described:#?}"
    );

    let ok = server.json(&[
        "send",
        "event",
        "thread.created",
        "--payload",
        r#"{"n": 1}"#,
    ]);
    let ok_run = ok["run_ids"][0].as_str().unwrap().to_owned();
    let finished = server.json(&["describe", "automationrun", &ok_run, "--follow"]);
    assert_eq!(finished["status"], "completed");
    assert_eq!(
        finished["input"],
        serde_json::json!({"trigger": "thread.created", "payload": {"n": 1}})
    );
    let shown = server.cli(&["describe", "automationrun", &ok_run]).ok();
    assert!(shown.stdout.contains("Payload:\n  {"), "{shown:#?}");

    // archastro list automationruns --automation aut_abc123 --status failed
    let failed = server
        .cli(&[
            "list",
            "automationruns",
            "--automation",
            &automation,
            "--status",
            "failed",
        ])
        .ok();
    assert_eq!(
        failed.header(),
        [
            "ID", "STATUS", "TRIGGER", "ATTEMPT", "CREATED", "DURATION", "ERROR"
        ]
    );
    let rows = failed.rows();
    assert_eq!(rows.len(), 1, "{failed:#?}");
    assert_eq!(
        rows[0][..4],
        [failed_run.as_str(), "failed", "thread.created", "1"]
    );
    assert_eq!(rows[0].last().unwrap(), "boom");
    let all = server.json(&["list", "automationruns", "--automation", &automation]);
    assert_eq!(all["data"].as_array().unwrap().len(), 2);

    // A repeated idempotency key creates nothing and says so.
    let first = server.json(&[
        "send",
        "event",
        "thread.created",
        "--idempotency-key",
        "k-1",
    ]);
    let again = server
        .cli(&[
            "send",
            "event",
            "thread.created",
            "--idempotency-key",
            "k-1",
        ])
        .ok();
    assert!(again.stdout.contains("already received"), "{again:#?}");
    assert!(
        again.stdout.contains(first["run_ids"][0].as_str().unwrap()),
        "{again:#?}"
    );

    // An event nobody listens to is accepted with no runs; an unknown one is refused.
    let quiet = server.cli(&["send", "event", "email.received"]).ok();
    assert_eq!(
        quiet.stdout.trim(),
        "Event email.received accepted: 0 runs created."
    );
    server
        .cli(&["send", "event", "thread.exploded"])
        .fails_with(2, "`thread.exploded` is not a platform event");
}

#[test]
fn runs_can_be_started_waited_for_cancelled_and_rerun() {
    let server = Server::start();
    let automation = sleeper_automation(&server);

    let completed = server
        .cli(&[
            "run",
            "automation",
            &automation,
            "--wait",
            "--input",
            r#"{"payload": {"hello": "world"}}"#,
        ])
        .ok();
    assert_eq!(completed.field("Status"), "completed");
    assert!(
        completed.stdout.contains("\"hello\": \"world\""),
        "{completed:#?}"
    );

    // --wait exits 1 when the run did not complete, after showing it.
    let failed = server.cli(&[
        "run",
        "automation",
        &automation,
        "--wait",
        "--input",
        r#"{"payload": {"error": "nope"}}"#,
    ]);
    assert_eq!(failed.code, 1, "{failed:#?}");
    assert_eq!(failed.field("Status"), "failed");
    let failed_run = failed.field("ID");

    let rerun = server.cli(&["rerun", "automationrun", &failed_run, "--wait"]);
    assert_eq!(rerun.code, 1, "{rerun:#?}");
    assert_eq!(rerun.field("Rerun of"), failed_run);

    // A long run is interrupted by cancel; cancelling it again is refused.
    let long = server.json(&[
        "run",
        "automation",
        &automation,
        "--input",
        r#"{"payload": {"sleep_ms": 60000}}"#,
    ]);
    let long_run = long["id"].as_str().unwrap().to_owned();
    let cancelled = server.json(&["cancel", "automationrun", &long_run]);
    assert_eq!(cancelled["status"], "cancelled");
    let shown = server.cli(&["describe", "automationrun", &long_run]).ok();
    assert_eq!(shown.field("Status"), "cancelled");
    server
        .cli(&["cancel", "automationrun", &long_run])
        .fails_with(1, "error:");
    server
        .cli(&["run", "automation", "aut_00000000000000000000000000"])
        .fails_with(1, "aut_00000000000000000000000000");
}

#[test]
fn all_runs_are_listed_by_following_cursors() {
    let server = Server::start();
    let automation = sleeper_automation(&server);
    for _ in 0..5 {
        server
            .cli(&["run", "automation", &automation, "--wait"])
            .ok();
    }
    let page = server
        .cli(&[
            "list",
            "automationruns",
            "--automation",
            &automation,
            "--limit",
            "2",
        ])
        .ok();
    assert_eq!(page.rows().len(), 2, "{page:#?}");
    assert!(page.stderr.contains("--all, or --cursor "), "{page:#?}");

    let all = server
        .cli(&[
            "list",
            "automationruns",
            "--automation",
            &automation,
            "--limit",
            "2",
            "--all",
        ])
        .ok();
    let ids: Vec<String> = all.rows().into_iter().map(|row| row[0].clone()).collect();
    assert_eq!(ids.len(), 5, "{all:#?}");
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 5, "{all:#?}");
    assert_eq!(all.stderr, "");

    let json = server.json(&[
        "list",
        "automationruns",
        "--automation",
        &automation,
        "--limit",
        "2",
        "--all",
    ]);
    assert_eq!(json["data"].as_array().unwrap().len(), 5);
    assert_eq!(json["next_cursor"], Value::Null);
    // The same runs, newest first, as the table.
    let json_ids: Vec<&str> = json["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|run| run["id"].as_str().unwrap())
        .collect();
    assert_eq!(json_ids, ids);
}

#[test]
fn doctor_checks_a_stopped_servers_store_and_refuses_a_running_one() {
    let mut server = Server::start();
    upload(&server, "welcome-new-members");
    let data = server._data.path().to_str().unwrap().to_owned();
    let doctor = || cli_without_server(&["doctor", "--data-dir", &data], &[]);
    doctor().fails_with(1, "is in use by a running automata server");

    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let healthy = doctor().ok();
    assert!(healthy.stdout.contains("records read back"), "{healthy:#?}");
    assert!(healthy.stdout.contains("quarantine  empty"), "{healthy:#?}");

    let store = SledStore::open(server._data.path(), &StoreOptions::default()).unwrap();
    store
        .write_raw_record(RecordKind::Config, b"default/cfg_torn", b"{\"id\":\"cfg_")
        .unwrap();
    drop(store);
    let found = doctor();
    assert_eq!(found.code, 1, "{found:#?}");
    assert!(
        found
            .stdout
            .contains("1 unreadable record(s) moved to the quarantine"),
        "{found:#?}"
    );
    assert!(
        found.stdout.contains("config `default/cfg_torn` (11 bytes"),
        "{found:#?}"
    );
    // Still listed until discarded, not moved twice.
    let again = doctor();
    assert_eq!(again.code, 1, "{again:#?}");
    assert!(!again.stdout.contains("moved"), "{again:#?}");
    assert!(again.stdout.contains("default/cfg_torn"), "{again:#?}");
    let json = cli_without_server(&["doctor", "--data-dir", &data, "-o", "json"], &[]).json();
    assert_eq!(json["healthy"], false);
    let names: Vec<&str> = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|check| check["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["records", "indexes", "quarantine"]);
    let problems = json["checks"][2]["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{json:#}");
    assert!(problems[0].as_str().unwrap().contains("default/cfg_torn"));

    let empty = tempfile::tempdir().unwrap();
    let path = empty.path().to_str().unwrap();
    cli_without_server(&["doctor", "--data-dir", path], &[])
        .fails_with(1, "holds no automata store");
}

#[test]
fn apps_and_keys_are_made_listed_and_revoked_from_the_cli() {
    let server = Server::start();
    let created = server
        .cli(&["create", "app", "acme", "-n", "Acme Inc"])
        .ok();
    assert_eq!(created.stdout.trim(), "Created app acme (Acme Inc).");
    let apps = server.cli(&["list", "apps"]).ok();
    assert!(apps.stdout.starts_with("ID"), "{}", apps.stdout);
    assert!(
        apps.stdout.contains("acme") && apps.stdout.contains("Acme Inc"),
        "{}",
        apps.stdout
    );

    let key = server
        .cli(&[
            "create", "key", "--app", "acme", "--role", "events", "-n", "producer",
        ])
        .ok();
    assert!(
        key.stdout.contains("Role:") && key.stdout.contains("events"),
        "{}",
        key.stdout
    );
    assert!(key.stdout.contains("shown only now"), "{}", key.stdout);
    let json = server.json(&[
        "create",
        "key",
        "--app",
        "acme",
        "--role",
        "read",
        "-n",
        "dashboard",
    ]);
    let secret = json["key_secret"].as_str().unwrap().to_owned();
    let key_id = json["id"].as_str().unwrap().to_owned();

    // The read key reads its app and nothing else.
    let read = Command::new(BIN);
    let mut read = read;
    read.args(["list", "automations", "--app", "acme"])
        .env("AUTOMATA_URL", &server.url);
    run(read, &[("AUTOMATA_TOKEN", &secret)]).ok();
    let mut other = Command::new(BIN);
    other
        .args(["list", "automations"])
        .env("AUTOMATA_URL", &server.url);
    run(other, &[("AUTOMATA_TOKEN", &secret)]).fails_with(
        1,
        "this key belongs to app `acme` and cannot act on app `default`",
    );

    let keys = server.cli(&["list", "keys", "--app", "acme"]).ok();
    assert!(
        keys.stdout.contains(&secret[..11]),
        "the prefix: {}",
        keys.stdout
    );
    assert!(
        !keys.stdout.contains(&secret),
        "never the key: {}",
        keys.stdout
    );
    assert!(
        keys.stdout.contains("dashboard") && keys.stdout.contains("never"),
        "{}",
        keys.stdout
    );
    server
        .cli(&["delete", "key", &key_id, "--app", "acme"])
        .ok();
    let mut revoked = Command::new(BIN);
    revoked
        .args(["list", "automations", "--app", "acme"])
        .env("AUTOMATA_URL", &server.url);
    run(revoked, &[("AUTOMATA_TOKEN", &secret)]).fails_with(1, "unknown or revoked");

    server
        .cli(&[
            "create", "key", "--app", "acme", "--role", "admin", "-n", "x",
        ])
        .fails_with(2, "invalid value 'admin'");
    // Changes name the key that made them.
    let created = server.json(&[
        "create",
        "automation",
        "--app",
        "acme",
        "-n",
        "Nightly",
        "-t",
        "scheduled",
        "--schedule",
        "0 0 * * *",
    ]);
    let id = created["id"].as_str().unwrap();
    let shown = server
        .cli(&["describe", "automation", id, "--app", "acme"])
        .ok();
    assert!(
        shown.stdout.contains("Created by:") && shown.stdout.contains("env"),
        "{}",
        shown.stdout
    );
    server.cli(&["delete", "app", "acme"]).ok();
    server
        .cli(&["list", "automations", "--app", "acme"])
        .fails_with(1, "app `acme` does not exist");
}

#[test]
fn the_cli_talks_https_to_a_server_with_its_own_certificate() {
    let data = tempfile::tempdir().unwrap();
    let tls = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls");
    let (cert, key) = (tls.join("server.pem"), tls.join("server.key"));
    let ServeProcess { child, url } = spawn_serve(
        BIN,
        data.path(),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let server = Server {
        child,
        url: url.replace("127.0.0.1", "localhost"),
        _data: data,
    };
    assert!(
        server.url.starts_with("https://localhost:"),
        "{}",
        server.url
    );
    let ca = tls.join("ca.pem");
    let listed = server
        .cli_with_env(
            &["list", "apps"],
            &[("AUTOMATA_CA_CERT", ca.to_str().unwrap())],
        )
        .ok();
    assert!(listed.stdout.contains("default"), "{}", listed.stdout);
    // Without the CA the certificate is not trusted.
    server.cli(&["list", "apps"]).fails_with(1, "");
}

#[test]
fn the_readme_runs_as_written_on_an_empty_server() {
    let server = Server::start();
    let reader = readme::Reader {
        url: &server.url,
        token: Some(ADMIN_TOKEN),
        binary: BIN,
        data_dir: server._data.path(),
    };
    reader.run("").assert_clean();
}

#[test]
fn the_readme_runs_as_written_next_to_the_demos_examples() {
    let server = Server::start();
    let reader = readme::Reader {
        url: &server.url,
        token: Some(ADMIN_TOKEN),
        binary: BIN,
        data_dir: server._data.path(),
    };
    let transcript = reader.run(r#"scripts/demo-setup "$AUTOMATA_URL/apps/default""#);
    transcript.assert_clean();
    assert!(
        transcript.stdout.contains("ingestion-alert"),
        "the demo's examples were set up first:\n{transcript}"
    );
}

#[test]
fn runs_across_automations_are_one_command_showing_the_last_attempt() {
    let server = Server::start();
    let automation = sleeper_automation(&server);
    let retrying = r#"{"max_attempts": 2, "backoff_base_ms": 10, "backoff_max_ms": 10}"#;
    server
        .cli(&["update", "automation", &automation, "--retry", retrying])
        .ok();
    // Attempt 1 traps, its retry completes: --wait follows the chain.
    let waited = server
        .cli(&[
            "run",
            "automation",
            &automation,
            "--wait",
            "--input",
            r#"{"payload": {"trap_before_attempt": 2}}"#,
        ])
        .ok();
    assert_eq!(waited.field("Attempt"), "2");
    assert_eq!(waited.field("Status"), "completed");
    let first_attempt = waited.field("Retry of");
    assert!(
        waited.stderr.contains("Attempt 1 failed (trap: "),
        "{waited:#?}"
    );
    // Following the first attempt ends at the last one, exit 0.
    let followed = server
        .cli(&["describe", "automationrun", &first_attempt, "--follow"])
        .ok();
    assert_eq!(followed.field("Attempt"), "2");
    assert!(
        followed.stdout.contains("attempt 1 of run")
            && followed.stdout.contains("attempt 2 of run"),
        "both attempts' lines are streamed: {followed:#?}"
    );
    server
        .cli(&[
            "send",
            "event",
            "thread.created",
            "--payload",
            r#"{"error": "boom"}"#,
        ])
        .ok();
    // "What failed in the last hour?" — every automation, last attempts only.
    let failed = server
        .cli(&[
            "list",
            "automationruns",
            "--status",
            "failed",
            "--since",
            "1h",
        ])
        .ok();
    assert_eq!(
        failed.header(),
        [
            "ID",
            "AUTOMATION",
            "STATUS",
            "TRIGGER",
            "ATTEMPT",
            "CREATED",
            "DURATION",
            "ERROR"
        ]
    );
    let rows = failed.rows();
    assert_eq!(rows.len(), 1, "{failed:#?}");
    assert_eq!(
        rows[0][1..4],
        [automation.as_str(), "failed", "thread.created"]
    );
    assert_eq!(rows[0].last().unwrap(), "boom");
    let every = server.json(&["list", "automationruns", "--all-attempts"]);
    assert_eq!(every["data"].as_array().unwrap().len(), 3);
    let latest = server.json(&["list", "automationruns", "--trigger", "thread.created"]);
    assert_eq!(latest["data"].as_array().unwrap().len(), 2);
    let none = server
        .cli(&["list", "automationruns", "--since", "2099-01-01T00:00:00Z"])
        .ok();
    assert_eq!(none.stderr.trim(), "No runs found.");
    server
        .cli(&["list", "automationruns", "--since", "yesterday"])
        .fails_with(2, "neither a duration");
}

/// A server on a fixed loopback port (so it can be restarted there), killed on drop.
struct FixedServer {
    child: Child,
}

impl FixedServer {
    fn start(data: &std::path::Path, port: u16) -> FixedServer {
        use std::io::BufRead as _;
        let mut child = Command::new(BIN)
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(data)
            .env("AUTOMATA_ADMIN_TOKEN", ADMIN_TOKEN)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (up, listening) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if line.contains("listening") {
                    let _ = up.send(());
                }
            }
        });
        listening
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("the server starts");
        FixedServer { child }
    }
}

impl Drop for FixedServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A child's output lines, read as they come.
fn lines_of(reader: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead as _;
    let (sender, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(reader)
            .lines()
            .map_while(Result::ok)
        {
            let _ = sender.send(line);
        }
    });
    lines
}

/// Waits for a line containing `wanted`; everything read so far.
fn wait_for_line(lines: &std::sync::mpsc::Receiver<String>, wanted: &str, seen: &mut Vec<String>) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !seen.iter().any(|line| line.contains(wanted)) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => panic!("no line with {wanted:?} in {seen:#?}"),
        }
    }
}

#[test]
fn a_follow_streams_output_and_survives_a_server_restart() {
    let data = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let first = FixedServer::start(data.path(), port);
    let client = Server {
        child: Command::new("true").spawn().unwrap(),
        url: url.clone(),
        _data: tempfile::tempdir().unwrap(),
    };
    let automation = sleeper_automation(&client);
    let retrying = r#"{"max_attempts": 2, "backoff_base_ms": 10, "backoff_max_ms": 10}"#;
    client
        .cli(&["update", "automation", &automation, "--retry", retrying])
        .ok();
    // Sleeps on attempt 1 (which the restart interrupts), not on attempt 2.
    let sent = client.json(&[
        "send",
        "event",
        "thread.created",
        "--payload",
        r#"{"sleep_ms": 60000, "sleep_until_attempt": 2}"#,
    ]);
    let run = sent["run_ids"][0].as_str().unwrap().to_owned();
    let mut follower = Command::new(BIN)
        .args(["describe", "automationrun", &run, "--follow"])
        .env("AUTOMATA_URL", &url)
        .env("AUTOMATA_TOKEN", ADMIN_TOKEN)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = lines_of(follower.stdout.take().unwrap());
    let stderr = lines_of(follower.stderr.take().unwrap());
    let mut out = Vec::new();
    wait_for_line(&stdout, "sleeping 60000 ms", &mut out);
    assert!(out[0].starts_with("attempt 1 of run"), "{out:#?}");

    // The host dies mid-run (once its start is on disk: run progress is
    // flushed within 10 ms) and comes back on the same port.
    std::thread::sleep(std::time::Duration::from_millis(300));
    drop(first);
    let mut err = Vec::new();
    wait_for_line(&stderr, "reconnecting", &mut err);
    let _second = FixedServer::start(data.path(), port);
    wait_for_line(&stderr, "Reconnected", &mut err);
    let status = follower.wait().unwrap();
    out.extend(stdout.iter());
    err.extend(stderr.iter());
    let out = out.join("\n");
    assert!(status.success(), "{out}\n{err:#?}");
    assert!(
        err.iter()
            .any(|line| line.contains("Attempt 1 failed (host_restarted")),
        "{err:#?}"
    );
    assert!(out.contains("attempt 2 of run"), "{out}");
    assert!(out.contains("\nStatus:         completed\n"), "{out}");
    assert!(out.contains("\nAttempt:        2\n"), "{out}");
    drop(client);
}

#[test]
fn ctrl_c_while_following_says_how_to_cancel() {
    let server = Server::start();
    sleeper_automation(&server);
    let sent = server.json(&[
        "send",
        "event",
        "thread.created",
        "--payload",
        r#"{"sleep_ms": 60000}"#,
    ]);
    let run = sent["run_ids"][0].as_str().unwrap().to_owned();
    let mut follower = Command::new(BIN)
        .args(["describe", "automationrun", &run, "--follow"])
        .env("AUTOMATA_URL", &server.url)
        .env("AUTOMATA_TOKEN", ADMIN_TOKEN)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = lines_of(follower.stdout.take().unwrap());
    wait_for_line(&stdout, "sleeping 60000 ms", &mut Vec::new());
    let interrupted = Command::new("kill")
        .args(["-INT", &follower.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    let output = follower.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "To cancel it: automata cancel automationrun {run}"
        )),
        "{stderr}"
    );
    let shown = server.json(&["describe", "automationrun", &run]);
    assert_eq!(shown["status"], "running", "following stopped, not the run");
}

#[test]
fn the_cli_speaks_in_flags_ids_and_commands() {
    let server = Server::start();
    let config = upload(&server, "welcome-new-members");
    // A malformed id names the flag and the expected form; no JSON position.
    let bad = server
        .cli(&[
            "create",
            "automation",
            "-n",
            "x",
            "-t",
            "trigger",
            "--trigger",
            "thread.created",
            "--config-id",
            "cfg_doesnotexist",
        ])
        .fails_with(2, "--config-id");
    assert!(
        bad.stderr
            .contains("not a config id (cfg_ followed by 26 characters)"),
        "{bad:#?}"
    );
    assert!(
        !bad.stderr.contains("JSON") && !bad.stderr.contains("column"),
        "{bad:#?}"
    );
    let retry = server
        .cli(&[
            "create",
            "automation",
            "-n",
            "x",
            "-t",
            "trigger",
            "--trigger",
            "thread.created",
            "--retry",
            r#"{"max_attempts": "three"}"#,
        ])
        .fails_with(1, "--retry: `max_attempts`");
    assert!(!retry.stderr.contains("line 1 column"), "{retry:#?}");
    // Near-miss events get a suggestion and the command that lists them.
    server
        .cli(&["send", "event", "thread.member_join"])
        .fails_with(
            2,
            "did you mean `thread.member_joined`? (`automata list events` lists them)",
        );
    // Ids in the wrong place say what they are; ids in any case work.
    let created = server.json(&[
        "create",
        "automation",
        "-n",
        "Greeter",
        "-t",
        "trigger",
        "--trigger",
        "thread.member_joined",
        "--config-id",
        &config.to_uppercase(),
    ]);
    let automation = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["config_id"], config.as_str());
    let shown = server.json(&["describe", "automation", &automation.to_uppercase()]);
    assert_eq!(shown["id"], automation.as_str());
    server
        .cli(&["describe", "automation", "atr_01jdqm3k5v8x2n7w4c9b6e1f0a"])
        .fails_with(2, "is a run id, not an automation id");
    server
        .cli(&["describe", "automationrun", &automation])
        .fails_with(2, "is an automation id, not a run id");
    // Global flags before the command.
    let before = server
        .cli(&["-o", "json", "--app", "default", "list", "automations"])
        .ok();
    assert_eq!(before.json()["data"].as_array().unwrap().len(), 1);
    cli_without_server(&["--url", &server.url, "serve"], &[]).fails_with(2, "--url");
    // Tables fit the width; nothing wraps.
    let narrow = server
        .cli_with_env(&["list", "automations"], &[("COLUMNS", "110")])
        .ok();
    for line in narrow.stdout.lines() {
        assert!(line.chars().count() <= 110, "{line:?}");
    }
    assert!(narrow.stdout.contains('…'), "{narrow:#?}");
    assert!(
        narrow.stdout.contains(&automation),
        "ids stay whole: {narrow:#?}"
    );
    // The config says who uses it, refuses to go, and a repeat upload says it is stored.
    let described = server.cli(&["describe", "config", &config]).ok();
    assert_eq!(
        described.field("Used by"),
        format!("{automation} (Greeter, draft)")
    );
    server
        .cli(&["delete", "config", &config])
        .fails_with(1, &automation);
    let again = server
        .cli(&[
            "create",
            "config",
            "--file",
            &guest_path("welcome-new-members").to_string_lossy(),
        ])
        .ok();
    assert!(
        again
            .stderr
            .contains(&format!("Already uploaded as {config} (")),
        "{again:#?}"
    );
    // An event for an app with no automations warns.
    server.cli(&["create", "app", "acmee"]).ok();
    let lonely = server
        .cli(&["send", "event", "thread.created", "--app", "acmee"])
        .ok();
    assert!(
        lonely
            .stderr
            .contains("warning: app acmee has no automations"),
        "{lonely:#?}"
    );
}

#[test]
fn completions_into_a_closed_pipe_do_not_panic() {
    // Like `automata completions bash | head`: stdout closes before the CLI writes.
    let mut child = Command::new(BIN)
        .args(["completions", "bash"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{:?}: {stderr}", output.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn doctor_verifies_the_indexes_against_the_records_and_repairs_them() {
    let mut server = Server::start();
    let config = upload(&server, "welcome-new-members");
    let automation = server.json(&[
        "create",
        "automation",
        "-n",
        "Welcome",
        "-t",
        "trigger",
        "--trigger",
        "thread.member_joined",
        "--config-id",
        &config,
        "--lookup-key",
        "welcome",
    ]);
    let automation = automation["id"].as_str().unwrap().to_owned();
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let data = server._data.path().to_str().unwrap().to_owned();
    let doctor = |extra: &[&str]| {
        let mut args = vec!["doctor", "--data-dir", data.as_str()];
        args.extend(extra.iter().copied());
        cli_without_server(&args, &[])
    };
    let clean = doctor(&[]).ok();
    assert!(
        clean.stdout.contains("indexes     agree with the"),
        "{clean:#?}"
    );

    // A lookup key pointing at the wrong automation, and one nothing owns.
    let store = SledStore::open(server._data.path(), &StoreOptions::default()).unwrap();
    let ghost = "aut_00000000000000000000000000";
    for key in ["lk/default/welcome", "lk/default/ghost"] {
        store
            .write_raw_record(RecordKind::IndexEntry, key.as_bytes(), ghost.as_bytes())
            .unwrap();
    }
    drop(store);
    let found = doctor(&[]);
    assert_eq!(found.code, 1, "{found:#?}");
    assert!(
        found.stdout.contains("1 missing or wrong, 1 stray entries"),
        "{found:#?}"
    );
    assert!(
        found.stdout.contains("stray: lk/default/ghost"),
        "{found:#?}"
    );
    assert!(found.stdout.contains("doctor --repair"), "{found:#?}");

    let repaired = doctor(&["--repair"]).ok();
    assert!(repaired.stdout.contains("repaired"), "{repaired:#?}");
    assert!(
        doctor(&[]).ok().stdout.contains("indexes     agree"),
        "clean after the repair"
    );
    let store = SledStore::open(server._data.path(), &StoreOptions::default()).unwrap();
    let app = "default".parse().unwrap();
    use automata::store::Store as _;
    assert_eq!(
        store
            .automation_by_lookup_key(&app, "welcome")
            .unwrap()
            .map(|a| a.id.to_string()),
        Some(automation)
    );
    assert_eq!(store.automation_by_lookup_key(&app, "ghost").unwrap(), None);
}
