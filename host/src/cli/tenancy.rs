//! Apps and API keys from the terminal: `create app|key`, `list apps|keys`,
//! `delete app|key` (the verbs live in `create.rs`, `list.rs`, `delete.rs`).

use std::process::ExitCode;

use chrono::Utc;
use clap::{Args, ValueEnum};
use reqwest::Method;
use serde_json::{Value, json};

use super::client::Connection;
use super::output::{Cell, ago, cell, outln, text, when};
use super::views::items;

/// `create app ID [--name NAME]`.
#[derive(Debug, Args)]
pub(super) struct CreateApp {
    /// The new app's id: 1–64 characters of `A-Z a-z 0-9 _ -`.
    #[arg(value_name = "APP_ID")]
    id: String,
    /// Display name (default: the id).
    #[arg(long, short = 'n')]
    name: Option<String>,
}

/// `delete app ID [--force]`.
#[derive(Debug, Args)]
pub(super) struct DeleteApp {
    /// The app to delete, with everything in it.
    #[arg(value_name = "APP_ID")]
    id: String,
    /// Pause its running automations first instead of refusing.
    #[arg(long)]
    force: bool,
}

/// The role of a new app key.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(super) enum KeyRole {
    /// Only send events (`POST …/events`): the key a producer holds.
    Events,
    /// Read everything of the app.
    Read,
    /// Read and change everything of the app, and send its events.
    Write,
}

/// `create key --role ROLE --name NAME [--expires-at TIME]`.
#[derive(Debug, Args)]
pub(super) struct CreateKey {
    /// What the key may do in its app.
    #[arg(long, value_enum)]
    role: KeyRole,
    /// What the key is for, e.g. "billing producer".
    #[arg(long, short = 'n')]
    name: String,
    /// When the key stops working (RFC 3339, e.g. 2027-01-01T00:00:00Z).
    #[arg(long, value_name = "TIME")]
    expires_at: Option<chrono::DateTime<Utc>>,
}

/// `delete key KEY_ID`.
#[derive(Debug, Args)]
pub(super) struct DeleteKey {
    /// The key's id (`key_…`, from `automata list keys`).
    #[arg(value_name = "KEY_ID")]
    id: String,
}

pub(super) async fn create_app(
    cmd: CreateApp,
    connection: &Connection,
) -> anyhow::Result<ExitCode> {
    let (api, out) = connection.open()?;
    let mut body = json!({"id": cmd.id});
    if let Some(name) = cmd.name {
        body["name"] = json!(name);
    }
    let app = api
        .call(Method::POST, api.root_url(&["apps"]), Some(&body))
        .await?;
    if out.is_json() {
        out.json(&app);
    } else {
        outln!("Created app {} ({}).", text(&app, "id"), text(&app, "name"));
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn list_apps(connection: &Connection) -> anyhow::Result<ExitCode> {
    let (api, out) = connection.open()?;
    let list = api.call(Method::GET, api.root_url(&["apps"]), None).await?;
    if out.is_json() {
        out.json(&list);
        return Ok(ExitCode::SUCCESS);
    }
    let now = Utc::now();
    let rows: Vec<Vec<Cell>> = items(&list)
        .iter()
        .map(|a| vec![cell(a, "id"), cell(a, "name"), ago(a, "created_at", now)])
        .collect();
    if rows.is_empty() {
        outln!("No apps found.");
    } else {
        out.table(&["ID", "NAME", "CREATED"], rows);
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn delete_app(
    cmd: DeleteApp,
    connection: &Connection,
) -> anyhow::Result<ExitCode> {
    let (api, out) = connection.open()?;
    let mut url = api.root_url(&["apps", &cmd.id]);
    if cmd.force {
        url.set_query(Some("force=true"));
    }
    api.call(Method::DELETE, url, None).await?;
    if out.is_json() {
        out.json(&json!({"id": cmd.id, "deleted": true}));
    } else {
        outln!("Deleted app {} and everything in it.", cmd.id);
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn create_key(
    cmd: CreateKey,
    connection: &Connection,
) -> anyhow::Result<ExitCode> {
    let (api, out) = connection.open()?;
    let role = cmd
        .role
        .to_possible_value()
        .map(|v| v.get_name().to_owned())
        .unwrap_or_default();
    let mut body = json!({"name": cmd.name, "role": role});
    if let Some(at) = cmd.expires_at {
        body["expires_at"] = json!(at);
    }
    let key = api.post(&["keys"], Some(&body)).await?;
    if out.is_json() {
        out.json(&key);
        return Ok(ExitCode::SUCCESS);
    }
    let now = Utc::now();
    out.fields(&[
        ("ID", cell(&key, "id")),
        ("App", Cell::from(connection.app.clone())),
        ("Name", cell(&key, "name")),
        ("Role", cell(&key, "role")),
        (
            "Expires",
            when(&key, "expires_at", now).unwrap_or_else(|| Cell::from("never")),
        ),
    ]);
    outln!();
    outln!("Key (shown only now; the server keeps its hash):");
    outln!("  {}", text(&key, "key_secret"));
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn list_keys(connection: &Connection) -> anyhow::Result<ExitCode> {
    let (api, out) = connection.open()?;
    let list = api.get(&["keys"], &[]).await?;
    if out.is_json() {
        out.json(&list);
        return Ok(ExitCode::SUCCESS);
    }
    let now = Utc::now();
    let never =
        |key: &Value, field: &str| when(key, field, now).unwrap_or_else(|| Cell::from("never"));
    let rows: Vec<Vec<Cell>> = items(&list)
        .iter()
        .map(|k| {
            vec![
                cell(k, "id"),
                cell(k, "name"),
                cell(k, "role"),
                cell(k, "prefix"),
                ago(k, "created_at", now),
                never(k, "last_used_at"),
                never(k, "expires_at"),
            ]
        })
        .collect();
    if rows.is_empty() {
        outln!("No keys found in app `{}`.", connection.app);
    } else {
        out.table(
            &[
                "ID",
                "NAME",
                "ROLE",
                "PREFIX",
                "CREATED",
                "LAST USED",
                "EXPIRES",
            ],
            rows,
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn delete_key(
    cmd: DeleteKey,
    connection: &Connection,
) -> anyhow::Result<ExitCode> {
    let (api, out) = connection.open()?;
    api.delete(&["keys", &cmd.id]).await?;
    if out.is_json() {
        out.json(&json!({"id": cmd.id, "deleted": true}));
    } else {
        outln!(
            "Revoked key {}: requests with it are refused from now on.",
            cmd.id
        );
    }
    Ok(ExitCode::SUCCESS)
}
