//! How the CLI prints: aligned tables and field lists for people, the server's
//! JSON for scripts, status colours only on a terminal that wants them.

use std::io::IsTerminal as _;

use chrono::{DateTime, Utc};
use clap::ValueEnum;
use serde_json::Value;

/// `println!` for results: a stdout closed early (piped into `head`, say)
/// ends the output quietly instead of panicking.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// `print!` for results, with [`outln!`]'s tolerance of a closed stdout.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}

pub(super) use {out, outln};

/// The `-o/--output` choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned tables and fields for people.
    Table,
    /// The server's JSON, pretty-printed, for scripts.
    Json,
}

/// Prints results in the chosen format.
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    pub format: Format,
    color: bool,
    /// Tables are cut to this many columns (characters), if set.
    width: Option<usize>,
}

impl Printer {
    /// Colours only when stdout is a terminal and `NO_COLOR` is unset or empty;
    /// tables as wide as `COLUMNS` says, else as the terminal (none when piped).
    pub fn new(format: Format) -> Self {
        let terminal = std::io::stdout().is_terminal();
        Self {
            format,
            color: wants_color(std::env::var_os("NO_COLOR"), terminal),
            width: table_width(
                std::env::var("COLUMNS").ok().as_deref(),
                terminal
                    .then(|| terminal_size::terminal_size_of(std::io::stdout()))
                    .flatten()
                    .map(|(terminal_size::Width(w), _)| usize::from(w)),
            ),
        }
    }

    pub fn is_json(&self) -> bool {
        self.format == Format::Json
    }

    /// Prints a value as pretty JSON.
    pub fn json(&self, value: &Value) {
        outln!("{value:#}");
    }

    /// A status word, coloured by what it means when colours are on.
    pub fn status(&self, status: &str) -> Cell {
        let color = match status {
            "running" | "completed" => Some(Color::Green),
            "pending" => Some(Color::Cyan),
            "paused" | "cancelled" => Some(Color::Yellow),
            "failed" => Some(Color::Red),
            _ => None,
        };
        Cell {
            text: status.to_owned(),
            color: color.filter(|_| self.color),
        }
    }

    /// Prints a table with a header row; columns are padded to their widest cell.
    pub fn table(&self, headers: &[&str], rows: Vec<Vec<Cell>>) {
        out!("{}", self.render_table(Some(headers), &rows));
    }

    /// A table as text, with or without a header row, fitted to the width.
    pub fn render_table(&self, headers: Option<&[&str]>, rows: &[Vec<Cell>]) -> String {
        render_table(headers, rows, self.width)
    }

    /// Prints `Label:  value` lines with the values aligned.
    pub fn fields(&self, fields: &[(&str, Cell)]) {
        out!("{}", render_fields(fields));
    }
}

/// `COLUMNS` when it is a number (as `ls` reads it, piped or not), else the
/// terminal's width.
fn table_width(columns: Option<&str>, terminal: Option<usize>) -> Option<usize> {
    columns
        .and_then(|c| c.trim().parse().ok())
        .filter(|&c: &usize| c > 0)
        .or(terminal)
}

/// <https://no-color.org>: a non-empty `NO_COLOR` turns colour off; pipes
/// and files never get escape codes.
fn wants_color(no_color: Option<std::ffi::OsString>, stdout_is_terminal: bool) -> bool {
    stdout_is_terminal && no_color.is_none_or(|value| value.is_empty())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Color {
    Red,
    Green,
    Yellow,
    Cyan,
}

impl Color {
    fn code(self) -> &'static str {
        match self {
            Color::Red => "31",
            Color::Green => "32",
            Color::Yellow => "33",
            Color::Cyan => "36",
        }
    }
}

/// One table cell or field value: text and an optional colour, kept apart so
/// padding is computed on what the reader sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    text: String,
    color: Option<Color>,
}

impl Cell {
    fn width(&self) -> usize {
        self.text.chars().count()
    }

    /// At most `width` characters, the last one `…` when cut.
    fn truncated(&self, width: usize) -> Cell {
        if self.width() <= width {
            return self.clone();
        }
        let mut text: String = self.text.chars().take(width.saturating_sub(1)).collect();
        text.push('…');
        Cell {
            text,
            color: self.color,
        }
    }

    /// Whether the text is one of our ids (`aut_`, `atr_`, `cfg_`…): cut last.
    fn is_id(&self) -> bool {
        self.text.len() == 30
            && self.text.as_bytes()[3] == b'_'
            && self
                .text
                .bytes()
                .all(|b| b == b'_' || b.is_ascii_alphanumeric())
    }

    fn write_padded(&self, out: &mut String, width: usize) {
        match self.color {
            Some(color) => {
                out.push_str(&format!("\x1b[{}m{}\x1b[0m", color.code(), self.text));
            }
            None => out.push_str(&self.text),
        }
        out.extend(std::iter::repeat_n(' ', width.saturating_sub(self.width())));
    }
}

impl From<String> for Cell {
    fn from(text: String) -> Self {
        Cell { text, color: None }
    }
}

impl From<&str> for Cell {
    fn from(text: &str) -> Self {
        Cell::from(text.to_owned())
    }
}

/// Between two columns.
const GAP: usize = 3;
/// Columns are not cut below this many characters, ids not below their length
/// unless nothing else is left to cut.
const MIN_COLUMN: usize = 4;

fn render_table(headers: Option<&[&str]>, rows: &[Vec<Cell>], width: Option<usize>) -> String {
    let header: Option<Vec<Cell>> = headers.map(|h| h.iter().map(|h| Cell::from(*h)).collect());
    let columns = header
        .as_ref()
        .map_or(0, Vec::len)
        .max(rows.iter().map(Vec::len).max().unwrap_or(0));
    let mut widths = vec![0; columns];
    for row in header.iter().chain(rows) {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.width());
        }
    }
    if let Some(width) = width {
        let ids: Vec<bool> = (0..columns)
            .map(|i| {
                let mut cells = rows.iter().filter_map(|row| row.get(i));
                let mut any = false;
                let all = cells.all(|cell| {
                    any |= cell.is_id();
                    cell.is_id() || cell.text == "-"
                });
                any && all
            })
            .collect();
        fit(&mut widths, &ids, width);
    }
    let mut out = String::new();
    for row in header.iter().chain(rows) {
        let mut line = String::new();
        for (i, (cell, width)) in row.iter().zip(&widths).enumerate() {
            let last = i + 1 == row.len();
            let cell = cell.truncated(*width);
            cell.write_padded(&mut line, if last { 0 } else { *width });
            if !last {
                line.push_str(&" ".repeat(GAP));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Narrows the widest columns until the row fits in `total` characters:
/// other columns first, id columns only when nothing else can give, none
/// below [`MIN_COLUMN`]. A row may still be wider if even that is not enough.
fn fit(widths: &mut [usize], ids: &[bool], total: usize) {
    let row =
        |widths: &[usize]| widths.iter().sum::<usize>() + GAP * widths.len().saturating_sub(1);
    for cut_ids in [false, true] {
        while row(widths) > total {
            let widest = (0..widths.len())
                .filter(|&i| (cut_ids || !ids[i]) && widths[i] > MIN_COLUMN)
                .max_by_key(|&i| (widths[i], i));
            let Some(i) = widest else { break };
            widths[i] -= 1;
        }
    }
}

fn render_fields(fields: &[(&str, Cell)]) -> String {
    let width = fields
        .iter()
        .map(|(label, _)| label.len() + 1)
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (label, value) in fields {
        let label = format!("{label}:");
        out.push_str(&format!("{label:<width$}  "));
        value.write_padded(&mut out, 0);
        out.push('\n');
    }
    out
}

/// The string at `key`, or "" when absent or null; other JSON shown compactly.
pub fn text(value: &Value, key: &str) -> String {
    match value.get(key) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// The string at `key`, or "-" for a table cell with nothing in it.
pub fn cell(value: &Value, key: &str) -> Cell {
    let text = text(value, key);
    Cell::from(if text.is_empty() {
        "-".to_owned()
    } else {
        text
    })
}

/// An RFC 3339 time at `key` as "3m ago" / "in 2h", or "-".
pub fn ago(value: &Value, key: &str, now: DateTime<Utc>) -> Cell {
    Cell::from(
        timestamp(value, key).map_or_else(|| "-".to_owned(), |time| relative_time(time, now)),
    )
}

/// An RFC 3339 time at `key` with its relative form, for detail views.
pub fn when(value: &Value, key: &str, now: DateTime<Utc>) -> Option<Cell> {
    let time = timestamp(value, key)?;
    Some(Cell::from(format!(
        "{} ({})",
        time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        relative_time(time, now)
    )))
}

pub fn timestamp(value: &Value, key: &str) -> Option<DateTime<Utc>> {
    let text = value.get(key)?.as_str()?;
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// "just now", "42s ago", "3m ago", "5h ago", "2d ago", "in 10m"; a date
/// beyond a month.
pub fn relative_time(time: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let delta = now.signed_duration_since(time);
    let seconds = delta.num_seconds().unsigned_abs();
    if seconds < 2 {
        return "just now".into();
    }
    let amount = if seconds < 60 {
        format!("{seconds}s")
    } else if seconds < 3600 {
        format!("{}m", seconds / 60)
    } else if seconds < 86_400 {
        format!("{}h", seconds / 3600)
    } else if seconds < 30 * 86_400 {
        format!("{}d", seconds / 86_400)
    } else {
        return time.format("%Y-%m-%d").to_string();
    };
    if delta.num_seconds() >= 0 {
        format!("{amount} ago")
    } else {
        format!("in {amount}")
    }
}

/// Milliseconds as "850µs", "12ms", "1.25s", "2m 5s" or "1h 30m".
pub fn duration_ms(ms: f64) -> String {
    if ms < 1.0 {
        return format!("{:.0}µs", ms * 1000.0);
    }
    if ms < 1000.0 {
        return format!("{ms:.0}ms");
    }
    if ms < 60_000.0 {
        let seconds = format!("{:.2}", ms / 1000.0);
        return format!("{}s", seconds.trim_end_matches('0').trim_end_matches('.'));
    }
    let seconds = (ms / 1000.0).round() as u64;
    let (big, small, big_unit, small_unit) = if seconds < 3600 {
        (seconds / 60, seconds % 60, "m", "s")
    } else {
        (seconds / 3600, seconds % 3600 / 60, "h", "m")
    };
    if small == 0 {
        format!("{big}{big_unit}")
    } else {
        format!("{big}{big_unit} {small}{small_unit}")
    }
}

/// Bytes as "812 B", "1.5 KiB", "20.0 MiB".
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A large count with thousands separators: 1234567 → "1,234,567".
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// Pretty JSON indented by `by` spaces, for payloads inside a detail view.
pub fn indented_json(value: &Value, by: usize) -> String {
    indent(&format!("{value:#}"), by)
}

/// Every line of `text` indented by `by` spaces.
pub fn indent(text: &str, by: usize) -> String {
    let pad = " ".repeat(by);
    text.lines().map(|line| format!("{pad}{line}\n")).collect()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;
    use serde_json::json;

    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0).unwrap()
    }

    #[test]
    fn relative_times_read_naturally_both_ways() {
        let at = |s: i64| now() - chrono::Duration::seconds(s);
        assert_eq!(relative_time(at(0), now()), "just now");
        assert_eq!(relative_time(at(42), now()), "42s ago");
        assert_eq!(relative_time(at(3 * 60 + 5), now()), "3m ago");
        assert_eq!(relative_time(at(5 * 3600), now()), "5h ago");
        assert_eq!(relative_time(at(2 * 86_400 + 7), now()), "2d ago");
        assert_eq!(relative_time(at(-600), now()), "in 10m");
        assert_eq!(relative_time(at(40 * 86_400), now()), "2026-10-19");
    }

    #[test]
    fn times_are_read_from_rfc3339_fields() {
        let run = json!({"created_at": "2026-11-28T11:57:00Z", "finished_at": null});
        assert_eq!(ago(&run, "created_at", now()), Cell::from("3m ago"));
        assert_eq!(ago(&run, "finished_at", now()), Cell::from("-"));
        assert_eq!(
            when(&run, "created_at", now()),
            Some(Cell::from("2026-11-28T11:57:00Z (3m ago)"))
        );
    }

    #[test]
    fn tables_align_columns_and_colours_do_not_shift_them() {
        let coloured = Printer {
            format: Format::Table,
            color: true,
            width: None,
        };
        let rows = vec![
            vec![
                Cell::from("aut_1"),
                coloured.status("running"),
                Cell::from("x"),
            ],
            vec![
                Cell::from("aut_22"),
                coloured.status("draft"),
                Cell::from(""),
            ],
        ];
        let table = render_table(Some(&["ID", "STATUS", "NAME"]), &rows, None);
        assert_eq!(
            table,
            "ID       STATUS    NAME\n\
             aut_1    \x1b[32mrunning\x1b[0m   x\n\
             aut_22   draft\n"
        );
    }

    #[test]
    fn tables_fit_the_width_cutting_text_before_ids() {
        let id = "aut_01jdqm3k5v8x2n7w4c9b6e1f0a";
        let rows = vec![vec![
            Cell::from(id),
            Cell::from("A rather long automation name"),
            Cell::from("thread.member_joined"),
        ]];
        let headers = Some(&["ID", "NAME", "TRIGGER"][..]);
        let table = render_table(headers, &rows, Some(60));
        for line in table.lines() {
            assert!(line.chars().count() <= 60, "{line:?}");
        }
        let row = table.lines().nth(1).unwrap();
        assert!(row.starts_with(id), "ids are kept whole: {row}");
        assert!(row.contains('…'), "{row}");
        assert_eq!(
            render_table(headers, &rows, Some(200)),
            render_table(headers, &rows, None)
        );
        let narrow = render_table(headers, &rows, Some(20));
        assert_eq!(narrow.lines().count(), 2, "never wraps into more rows");
        for line in narrow.lines() {
            assert!(line.chars().count() <= 20, "ids give way last: {line:?}");
        }
    }

    #[test]
    fn the_width_comes_from_columns_or_the_terminal() {
        assert_eq!(table_width(Some("80"), Some(120)), Some(80));
        assert_eq!(table_width(Some("wide"), Some(120)), Some(120));
        assert_eq!(table_width(None, None), None);
        assert_eq!(table_width(Some("0"), None), None);
    }

    #[test]
    fn colour_needs_a_terminal_and_no_no_color() {
        assert!(wants_color(None, true));
        assert!(wants_color(Some("".into()), true));
        assert!(!wants_color(Some("1".into()), true));
        assert!(!wants_color(None, false));
    }

    #[test]
    fn colours_are_off_unless_enabled() {
        let plain = Printer {
            format: Format::Table,
            color: false,
            width: None,
        };
        assert_eq!(plain.status("failed"), Cell::from("failed"));
    }

    #[test]
    fn fields_align_their_values() {
        let out = render_fields(&[("ID", Cell::from("aut_1")), ("Status", Cell::from("draft"))]);
        assert_eq!(out, "ID:      aut_1\nStatus:  draft\n");
    }

    #[test]
    fn numbers_are_humanised() {
        assert_eq!(duration_ms(0.25), "250µs");
        assert_eq!(duration_ms(12.4), "12ms");
        assert_eq!(duration_ms(1250.0), "1.25s");
        assert_eq!(duration_ms(1000.0), "1s");
        assert_eq!(duration_ms(1500.0), "1.5s");
        assert_eq!(duration_ms(125_000.0), "2m 5s");
        assert_eq!(duration_ms(300_000.0), "5m");
        assert_eq!(duration_ms(5_400_000.0), "1h 30m");
        assert_eq!(bytes(812), "812 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(20 * 1024 * 1024), "20.0 MiB");
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1_234_567), "1,234,567");
    }

    #[test]
    fn text_shows_missing_and_null_as_empty() {
        let v = json!({"a": "x", "b": null, "c": 3, "d": ["p"]});
        assert_eq!(text(&v, "a"), "x");
        assert_eq!(text(&v, "b"), "");
        assert_eq!(text(&v, "missing"), "");
        assert_eq!(text(&v, "c"), "3");
        assert_eq!(text(&v, "d"), r#"["p"]"#);
        assert_eq!(cell(&v, "b"), Cell::from("-"));
    }

    #[test]
    fn payloads_indent_every_line() {
        assert_eq!(
            indented_json(&json!({"a": 1}), 2),
            "  {\n    \"a\": 1\n  }\n"
        );
    }
}
