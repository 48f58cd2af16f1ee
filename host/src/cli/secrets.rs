//! App secrets from the terminal: `set secret`, `list secrets`, `delete
//! secret` (the verbs live in `set.rs`, `list.rs`, `delete.rs`).
//!
//! A value never comes from the command line (it would show in `ps` and the
//! shell's history): it is read from stdin — typed without echo at a
//! terminal, or piped — or from a file. One trailing newline (`\n` or
//! `\r\n`) is dropped, so `echo "$TOKEN" | automata set secret TOKEN` stores
//! the token itself.

use std::io::{IsTerminal as _, Read as _};
use std::path::PathBuf;
use std::process::ExitCode;

use chrono::Utc;
use clap::Args;
use reqwest::Method;
use serde_json::json;

use super::args::UsageError;
use super::client::Connection;
use super::output::{Cell, ago, cell, outln, text};
use super::views::items;
use crate::domain::secret::{self, SecretName};

/// `set secret NAME [--from-file PATH]`.
#[derive(Debug, Args)]
pub(super) struct SetSecret {
    /// The secret's name: A–Z, 0–9 and `_`, not starting with a digit (e.g. SLACK_WEBHOOK).
    #[arg(value_name = "NAME", value_parser = secret_name)]
    name: String,
    /// Read the value from this file instead of stdin.
    #[arg(long, value_name = "PATH")]
    from_file: Option<PathBuf>,
}

/// `delete secret NAME`.
#[derive(Debug, Args)]
pub(super) struct DeleteSecret {
    /// The secret's name.
    #[arg(value_name = "NAME", value_parser = secret_name)]
    name: String,
}

fn secret_name(text: &str) -> Result<String, String> {
    text.parse::<SecretName>()
        .map(|name| name.to_string())
        .map_err(|e| e.to_string())
}

/// The value with one trailing newline dropped.
fn without_final_newline(mut value: String) -> String {
    if value.ends_with('\n') {
        value.pop();
        if value.ends_with('\r') {
            value.pop();
        }
    }
    value
}

/// Reads the value: from `--from-file`, or stdin (without echo at a terminal).
fn read_value(cmd: &SetSecret) -> anyhow::Result<String> {
    let not_text = |from: &str| UsageError(format!("the value {from} is not UTF-8 text"));
    let value = match &cmd.from_file {
        Some(path) => {
            let bytes = std::fs::read(path).map_err(|e| {
                UsageError(format!("cannot read --from-file {}: {e}", path.display()))
            })?;
            String::from_utf8(bytes).map_err(|_| not_text(&format!("in {}", path.display())))?
        }
        None if std::io::stdin().is_terminal() => {
            eprint!("Value for {} (not shown; end with Enter): ", cmd.name);
            let line = read_hidden_line()?;
            eprintln!();
            line
        }
        None => {
            let mut bytes = Vec::new();
            std::io::stdin().read_to_end(&mut bytes)?;
            if bytes.is_empty() {
                return Err(UsageError(format!(
                    "no value on stdin: pipe it in (`printf '%s' \"$VALUE\" | automata set secret {}`) \
                     or use --from-file PATH; a value is never taken from the command line",
                    cmd.name
                ))
                .into());
            }
            String::from_utf8(bytes).map_err(|_| not_text("on stdin"))?
        }
    };
    let value = without_final_newline(value);
    secret::check_value(&value).map_err(|e| UsageError(e.to_string()))?;
    Ok(value)
}

/// One line from the terminal on stdin with its echo turned off.
#[cfg(unix)]
fn read_hidden_line() -> anyhow::Result<String> {
    let fd = libc::STDIN_FILENO;
    // SAFETY: `termios` is plain data, filled by `tcgetattr` before use; the
    // saved settings are restored whatever the read does.
    let saved = unsafe {
        let mut settings: libc::termios = std::mem::zeroed();
        (libc::tcgetattr(fd, &mut settings) == 0).then_some(settings)
    };
    if let Some(saved) = saved {
        let mut quiet = saved;
        quiet.c_lflag &= !libc::ECHO;
        quiet.c_lflag |= libc::ECHONL;
        // SAFETY: a valid descriptor and settings read from it.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) };
    }
    let mut line = String::new();
    let read = std::io::stdin().read_line(&mut line);
    if let Some(saved) = saved {
        // SAFETY: as above.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &saved) };
    }
    read?;
    Ok(line)
}

#[cfg(not(unix))]
fn read_hidden_line() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(line)
}

pub(super) async fn set_secret(
    cmd: SetSecret,
    connection: &Connection,
) -> anyhow::Result<ExitCode> {
    let value = read_value(&cmd)?;
    let (api, out) = connection.open()?;
    let body = json!({ "value": value });
    drop(value);
    let secret = api
        .call(
            Method::PUT,
            api.app_url(&["secrets", &cmd.name]),
            Some(&body),
        )
        .await?;
    drop(body);
    if out.is_json() {
        out.json(&secret);
        return Ok(ExitCode::SUCCESS);
    }
    // A new secret's two dates are the same instant; a replaced one keeps
    // its creation date.
    let verb = if secret["created_at"] == secret["updated_at"] {
        "Created"
    } else {
        "Updated"
    };
    outln!(
        "{verb} secret {} in app `{}` (stored encrypted; its value is never shown).",
        text(&secret, "name"),
        connection.app
    );
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn list_secrets(connection: &Connection) -> anyhow::Result<ExitCode> {
    let (api, out) = connection.open()?;
    let list = api.get(&["secrets"], &[]).await?;
    if out.is_json() {
        out.json(&list);
        return Ok(ExitCode::SUCCESS);
    }
    let now = Utc::now();
    let rows: Vec<Vec<Cell>> = items(&list)
        .iter()
        .map(|s| {
            let granted: Vec<String> = s["granted_to"]
                .as_array()
                .map(|a| a.iter().map(|g| text(g, "name")).collect())
                .unwrap_or_default();
            let granted = if granted.is_empty() {
                "-".to_owned()
            } else {
                granted.join(", ")
            };
            vec![
                cell(s, "name"),
                ago(s, "created_at", now),
                ago(s, "updated_at", now),
                cell(s, "updated_by"),
                Cell::from(granted),
            ]
        })
        .collect();
    if rows.is_empty() {
        eprintln!("No secrets found in app `{}`.", connection.app);
    } else {
        out.table(
            &["NAME", "CREATED", "UPDATED", "UPDATED BY", "GRANTED TO"],
            rows,
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn delete_secret(
    cmd: DeleteSecret,
    connection: &Connection,
) -> anyhow::Result<ExitCode> {
    let (api, out) = connection.open()?;
    api.delete(&["secrets", &cmd.name]).await?;
    if out.is_json() {
        out.json(&json!({"name": cmd.name, "deleted": true}));
    } else {
        outln!(
            "Deleted secret {}: runs that start from now on read it as absent.",
            cmd.name
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_final_newline_is_dropped() {
        assert_eq!(without_final_newline("tok\n".into()), "tok");
        assert_eq!(without_final_newline("tok\r\n".into()), "tok");
        assert_eq!(without_final_newline("tok\n\n".into()), "tok\n");
        assert_eq!(without_final_newline("tok".into()), "tok");
    }

    #[test]
    fn names_are_checked_before_anything_is_read() {
        assert_eq!(secret_name("SLACK_WEBHOOK").unwrap(), "SLACK_WEBHOOK");
        let error = secret_name("slack").unwrap_err();
        assert!(error.contains("did you mean `SLACK`"), "{error}");
    }
}
