//! The page shell (header, navigation, sign-out) and the small pieces every
//! page uses: times, statuses, banners, error pages.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};

use super::session::Flash;
use super::{Ctx, PREFIX, app_url};
use crate::domain::ids::AppId;

/// Which navigation entry a page belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Overview,
    Automations,
    Runs,
    Configs,
    Events,
}

const SECTIONS: [(Section, &str, &str); 5] = [
    (Section::Overview, "Overview", ""),
    (Section::Automations, "Automations", "/automations"),
    (Section::Runs, "Runs", "/runs"),
    (Section::Configs, "Configs", "/configs"),
    (Section::Events, "Events", "/events"),
];

/// A whole page of `app`: header with navigation and sign-out, then `body`.
pub fn page(ctx: &Ctx, app: &AppId, section: Section, title: &str, body: Markup) -> Html<String> {
    let nav = html! {
        nav aria-label="Sections" {
            ul {
                @for (entry, label, rest) in SECTIONS {
                    li {
                        @if entry == section {
                            a href=(app_url(app, rest)) aria-current="page" { (label) }
                        } @else {
                            a href=(app_url(app, rest)) { (label) }
                        }
                    }
                }
            }
        }
    };
    shell(Some(ctx), Some(app), title, nav, body)
}

/// The document around a page's content; `ctx` is absent on the sign-in page.
pub fn shell(
    ctx: Option<&Ctx>,
    app: Option<&AppId>,
    title: &str,
    nav: Markup,
    body: Markup,
) -> Html<String> {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (title) " · Automata" }
                link rel="icon" type="image/svg+xml" href=(format!("{PREFIX}/assets/favicon.svg"));
                link rel="stylesheet" href=(format!("{PREFIX}/assets/console.css"));
                script src=(format!("{PREFIX}/assets/console.js")) defer {}
            }
            body {
                a class="skip" href="#main" { "Skip to content" }
                header class="top" {
                    a class="brand" href=(PREFIX) { "Automata" }
                    @if let Some(app) = app {
                        span class="app" { "app " code { (app) } }
                    }
                    (nav)
                    @if let Some(ctx) = ctx {
                        div class="who" {
                            @if let Some(who) = ctx.who() {
                                span { (who) }
                                form method="post" action=(format!("{PREFIX}/sign-out")) {
                                    input type="hidden" name="csrf" value=(ctx.session.csrf);
                                    button type="submit" class="link" { "Sign out" }
                                }
                            } @else {
                                span { "authentication off" }
                            }
                        }
                    }
                }
                main id="main" tabindex="-1" {
                    h1 { (title) }
                    @if let Some(flash) = ctx.and_then(|ctx| ctx.flash.as_ref()) {
                        (flash_banner(app, flash))
                    }
                    (body)
                }
            }
        }
    };
    Html(markup.into_string())
}

/// An error page: the status and the API's message.
pub fn error_page(status: StatusCode, message: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    let body = html! {
        p class="banner error" role="alert" { (message) }
        p { a href=(PREFIX) { "Back to the console" } }
    };
    (status, shell(None, None, title, html! {}, body)).into_response()
}

/// The outcome of the action that led to this page (a [`Flash`]): its
/// message, the HTTP status of a refusal in `data-status`, and the runs it
/// created, linked.
fn flash_banner(app: Option<&AppId>, flash: &Flash) -> Markup {
    let (kind, role) = match flash.outcome {
        Ok(()) => ("ok", "status"),
        Err(_) => ("error", "alert"),
    };
    html! {
        div id="flash" class=(format!("banner {kind}")) role=(role) data-status=[flash.outcome.err()] {
            p class="message" { (flash.message) }
            @if !flash.runs.is_empty() {
                ul class="created-runs" {
                    @for id in &flash.runs {
                        li {
                            @match app {
                                Some(app) => a href=(app_url(app, &format!("/runs/{id}"))) { code { (id) } },
                                None => code { (id) },
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A name that may be long (up to 200 characters), linked to `href`:
/// shown whole up to a width, then cut with `…`, the whole name (and
/// `detail`, e.g. the id) in its `title`.
pub fn name_link(href: &str, name: &str, detail: Option<&str>) -> Markup {
    let title = match detail {
        Some(detail) => format!("{name} ({detail})"),
        None => name.to_owned(),
    };
    html! { a class="name" href=(href) title=(title) { (name) } }
}

/// A banner for an action's outcome.
pub fn banner(kind: &str, message: &str) -> Markup {
    let role = if kind == "error" { "alert" } else { "status" };
    html! { p class=(format!("banner {kind}")) role=(role) { (message) } }
}

/// A time as `2026-11-29 18:00:05 UTC`, with the RFC 3339 form in `datetime`.
pub fn time(at: DateTime<Utc>) -> Markup {
    html! {
        time datetime=(at.to_rfc3339()) { (at.format("%Y-%m-%d %H:%M:%S UTC")) }
    }
}

/// An optional time, `—` when absent.
pub fn maybe_time(at: Option<DateTime<Utc>>) -> Markup {
    match at {
        Some(at) => time(at),
        None => html! { span class="muted" { "—" } },
    }
}

/// A status as a coloured badge (`completed`, `failed`, `running`, …).
pub fn status(name: &str) -> Markup {
    html! { span class=(format!("badge s-{name}")) { (name) } }
}

/// A duration in microseconds for people: `850 µs`, `12.3 ms`, `4.20 s`.
pub fn micros(us: Option<u64>) -> String {
    match us {
        None => "—".into(),
        Some(us) if us < 1_000 => format!("{us} µs"),
        Some(us) if us < 1_000_000 => format!("{:.1} ms", us as f64 / 1e3),
        Some(us) => format!("{:.2} s", us as f64 / 1e6),
    }
}

/// A byte count for people: `512 B`, `1.5 KiB`, `20.0 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Pretty-printed JSON in a `<pre>`.
pub fn json_block(value: &impl serde::Serialize) -> Markup {
    let text = serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("({e})"));
    html! { pre class="json" { (text) } }
}

/// A hidden CSRF field for a form of this session.
pub fn csrf(ctx: &Ctx) -> Markup {
    html! { input type="hidden" name="csrf" value=(ctx.session.csrf); }
}

/// A form that is one button, posting to `action`; `confirm` asks first.
pub fn button_form(
    ctx: &Ctx,
    action: &str,
    label: &str,
    confirm: Option<&str>,
    class: &str,
) -> Markup {
    html! {
        form method="post" action=(action) class="inline" data-confirm=[confirm] {
            (csrf(ctx))
            button type="submit" class=(class) { (label) }
        }
    }
}

/// A definition list row.
pub fn row(label: &str, value: Markup) -> Markup {
    html! { dt { (label) } dd { (value) } }
}

/// Text or `—`.
pub fn text_or_dash(value: Option<&str>) -> Markup {
    match value {
        Some(value) if !value.is_empty() => html! { (value) },
        _ => html! { span class="muted" { "—" } },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_read_well() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(micros(Some(850)), "850 µs");
        assert_eq!(micros(Some(12_300)), "12.3 ms");
        assert_eq!(micros(Some(4_200_000)), "4.20 s");
        assert_eq!(micros(None), "—");
    }

    #[test]
    fn a_long_name_keeps_its_whole_text_in_the_title() {
        let name = "n".repeat(200);
        let html = name_link("/x", &name, Some("aut_1")).into_string();
        assert!(
            html.contains(&format!(r#"title="{name} (aut_1)""#)),
            "{html}"
        );
        assert!(html.contains(r#"class="name""#), "{html}");
    }

    #[test]
    fn a_flash_shows_its_status_and_links_its_runs() {
        let app: AppId = "default".parse().unwrap();
        let mut flash = Flash::refused(409, "cannot <pause>");
        flash.runs.push("atr_1".into());
        let html = flash_banner(Some(&app), &flash).into_string();
        assert!(html.contains(r#"data-status="409""#), "{html}");
        assert!(html.contains("cannot &lt;pause&gt;"), "{html}");
        assert!(
            html.contains(r#"href="/console/apps/default/runs/atr_1""#),
            "{html}"
        );
    }

    #[test]
    fn text_is_escaped() {
        let html = banner("error", "<script>alert(1)</script>").into_string();
        assert!(html.contains("&lt;script&gt;"), "{html}");
    }
}
