//! `automata set|list|delete secret` against a real server: values come from
//! stdin or a file and never appear in what the CLI prints, and a value set
//! from the terminal is what a granted run reads (masked in its output).

use std::io::Write as _;
use std::process::{Command, Stdio};

use super::{ADMIN_TOKEN, BIN, Run, Server, upload};

const VALUE: &str = "cli-SECRET-value-9f8e7d6c5b4a";

/// `automata <args>` against `server` with `stdin` piped in.
fn with_stdin(server: &Server, args: &[&str], stdin: &[u8]) -> Run {
    let mut child = Command::new(BIN)
        .args(args)
        .env("AUTOMATA_URL", &server.url)
        .env("AUTOMATA_TOKEN", ADMIN_TOKEN)
        .env_remove("AUTOMATA_APP")
        .env_remove("NO_COLOR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run automata");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let output = child.wait_with_output().unwrap();
    Run {
        code: output.status.code().expect("exited normally"),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

fn assert_never_printed(run: &Run) {
    assert!(
        !run.stdout.contains(VALUE) && !run.stderr.contains(VALUE),
        "{run:#?}"
    );
}

#[test]
fn secrets_round_trip_from_stdin_or_a_file_to_a_granted_run() {
    let server = Server::start();
    let set = with_stdin(
        &server,
        &["set", "secret", "API_TOKEN"],
        format!("{VALUE}\n").as_bytes(),
    )
    .ok();
    assert_eq!(
        set.stdout.trim(),
        "Created secret API_TOKEN in app `default` (stored encrypted; its value is never shown)."
    );
    assert_never_printed(&set);
    let again = with_stdin(&server, &["set", "secret", "API_TOKEN"], VALUE.as_bytes()).ok();
    assert!(
        again.stdout.starts_with("Updated secret API_TOKEN"),
        "{again:#?}"
    );
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), "from-a-file-0123456789\r\n").unwrap();
    server
        .cli(&[
            "set",
            "secret",
            "FILE_TOKEN",
            "--from-file",
            &file.path().to_string_lossy(),
        ])
        .ok();

    // A run granted API_TOKEN reads what stdin gave, newline dropped.
    let config = upload(&server, "hostile");
    let automation = server.json(&[
        "create",
        "automation",
        "-n",
        "Reads a secret",
        "-t",
        "trigger",
        "--trigger",
        "thread.created",
        "--config-id",
        &config,
        "--secret",
        "API_TOKEN",
    ]);
    let id = automation["id"].as_str().unwrap();
    let ran = server
        .cli(&[
            "run",
            "automation",
            id,
            "--wait",
            "--input",
            r#"{"payload": {"case": "secret", "names": ["API_TOKEN"]}}"#,
        ])
        .ok();
    assert!(ran.stdout.contains("API_TOKEN=***"), "{ran:#?}");
    assert_never_printed(&ran);

    let list = server.cli(&["list", "secrets"]).ok();
    assert_eq!(
        list.header(),
        [
            "NAME", "CREATED", "UPDATED", "UPDATED", "BY", "GRANTED", "TO"
        ]
    );
    let rows = list.rows();
    assert_eq!(rows[0][0], "API_TOKEN");
    assert_eq!(rows[0].last().unwrap(), "Reads a secret");
    assert_eq!(rows[1][0], "FILE_TOKEN");
    assert_eq!(rows[1].last().unwrap(), "-");
    assert_never_printed(&list);
    let json = server.json(&["list", "secrets"]);
    assert_eq!(json["data"][0]["granted_to"][0]["id"], id);

    server.cli(&["delete", "secret", "FILE_TOKEN"]).ok();
    server
        .cli(&["delete", "secret", "FILE_TOKEN"])
        .fails_with(1, "no secret `FILE_TOKEN` in app `default`");
    assert_eq!(
        server.json(&["list", "secrets"])["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn a_value_is_never_an_argument_and_bad_input_is_a_usage_error() {
    let server = Server::start();
    // No value on stdin (the tests' CLI runs get /dev/null).
    server
        .cli(&["set", "secret", "API_TOKEN"])
        .fails_with(2, "no value on stdin");
    server
        .cli(&["set", "secret", "API_TOKEN", VALUE])
        .fails_with(2, "unexpected argument");
    with_stdin(&server, &["set", "secret", "slack-hook"], VALUE.as_bytes())
        .fails_with(2, "did you mean `SLACK_HOOK`?");
    with_stdin(&server, &["set", "secret", "PIN"], b"1234\n")
        .fails_with(2, "at least 8 bytes (this one has 4)");
    with_stdin(&server, &["set", "secret", "BINARY"], b"\xff\xfe not text")
        .fails_with(2, "not UTF-8 text");
    server
        .cli(&[
            "set",
            "secret",
            "FILE_TOKEN",
            "--from-file",
            "/nonexistent/value",
        ])
        .fails_with(2, "cannot read --from-file /nonexistent/value");
    server
        .cli(&["delete", "secret", "lower"])
        .fails_with(2, "invalid secret name `lower`");
    // Nothing was stored.
    assert_eq!(
        server.json(&["list", "secrets"])["data"],
        serde_json::json!([])
    );
}
