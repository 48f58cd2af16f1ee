//! Secrets in a run: what the guest may read through `secrets.get`, and the
//! masking that keeps their values out of everything the run leaves behind.
//!
//! The host resolves a run's secrets before it starts ([`RunSecrets`]: the
//! automation's granted names, each with its value or why it has none); the
//! runner never touches the store.
//!
//! **Masking rule.** Every value the run is granted — read or not — is
//! replaced by `***` wherever it appears in the run's output lines (stdout,
//! stderr, log lines; live output included), its returned payload (strings,
//! object keys and numbers) and its error. Matching is exact and on whole
//! lines, so a value written in several chunks is caught once its line is
//! complete. A value of several lines is masked whole, and each of its lines
//! of at least [`MIN_VALUE_BYTES`] bytes is masked on its own, since output is
//! cut into lines; shorter lines of such a value are not. Where the host cuts
//! an endless line at the output cap, a trailing start of a value is masked
//! too. Values are at least [`MIN_VALUE_BYTES`] bytes (refused at `PUT`).
//!
//! Masking guards against accidents, not against a hostile workflow: code
//! that is granted a secret can transform it (reverse, encode, split) before
//! printing it. Grant secrets only to workflows you trust with them.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use aho_corasick::{AhoCorasick, MatchKind};
use serde_json::{Map, Value};

use crate::domain::outcome::{Failure, Outcome};
use crate::domain::secret::MIN_VALUE_BYTES;

/// What replaces a secret's value.
pub const MASK: &str = "***";

/// How the name a guest asked `secrets.get` for is kept in the run's host
/// calls: as asked, or — past the longest secret name, when it cannot be
/// one — cut there and marked `…`, so a guest cannot swell its run's record
/// with names of megabytes.
pub fn recorded_name(name: &str) -> Cow<'_, str> {
    let longest = crate::domain::capabilities::MAX_SECRET_NAME_LEN;
    match name.char_indices().nth(longest) {
        None => Cow::Borrowed(name),
        Some((cut, _)) => Cow::Owned(format!("{}…", &name[..cut])),
    }
}

/// `value` as a host-call record writes a URL (`HTTP://user@Host/x` as
/// `http://Host/x`: the scheme lower-cased, user information dropped), when
/// it is a URL and that differs.
fn as_recorded_url(value: &str) -> Option<String> {
    let (scheme, rest) = value.split_once("://")?;
    if scheme.is_empty()
        || !scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+.-".contains(&b))
    {
        return None;
    }
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let host = authority.rsplit('@').next().unwrap_or(authority);
    let recorded = format!("{}://{host}{tail}", scheme.to_ascii_lowercase());
    (recorded != value).then_some(recorded)
}

/// One granted secret, as the run sees it.
#[derive(Clone, PartialEq, Eq)]
enum Grant {
    /// Its value.
    Value(String),
    /// Granted, but no value to give: why (not set, cannot be opened).
    Unavailable(String),
}

/// The secrets a run is granted: by name, each with its value or the reason
/// it has none. Cheap to clone; `Debug` shows names only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RunSecrets {
    grants: Arc<BTreeMap<String, Grant>>,
}

impl fmt::Debug for RunSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.grants.keys()).finish()
    }
}

/// Why `secrets.get` gave the guest nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The automation is not granted the name.
    NotGranted,
    /// Granted, but there is no value: why.
    Unavailable(String),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NotGranted => f.write_str(
                "not granted to this automation (add the name to its capabilities.secrets)",
            ),
            Refusal::Unavailable(why) => f.write_str(why),
        }
    }
}

impl RunSecrets {
    /// Grants built from `(name, Ok(value) | Err(why it has none))`.
    pub fn new(grants: impl IntoIterator<Item = (String, Result<String, String>)>) -> Self {
        let grants = grants
            .into_iter()
            .map(|(name, value)| {
                let grant = match value {
                    Ok(value) => Grant::Value(value),
                    Err(why) => Grant::Unavailable(why),
                };
                (name, grant)
            })
            .collect();
        RunSecrets {
            grants: Arc::new(grants),
        }
    }

    /// The value of `name` for the guest, or why there is none.
    pub fn get(&self, name: &str) -> Result<&str, Refusal> {
        match self.grants.get(name) {
            Some(Grant::Value(value)) => Ok(value),
            Some(Grant::Unavailable(why)) => Err(Refusal::Unavailable(why.clone())),
            None => Err(Refusal::NotGranted),
        }
    }

    /// The masker for every granted value.
    pub fn masker(&self) -> Masker {
        Masker::new(self.values())
    }

    /// The masker for host-call records, whose HTTP targets are URLs as
    /// the host records them: scheme in lower case, no user information, no
    /// query. Every granted value, the value written that way, and each of
    /// the two cut before a `?` or `#` (when at least [`MIN_VALUE_BYTES`]
    /// long), so a webhook URL kept as a secret is masked in its record
    /// however it was written.
    pub fn url_masker(&self) -> Masker {
        let mut patterns: Vec<String> = Vec::new();
        for value in self.values() {
            let recorded = as_recorded_url(value);
            for form in std::iter::once(value.to_owned()).chain(recorded) {
                let before_query = form.split(['?', '#']).next().unwrap_or_default();
                if before_query.len() >= MIN_VALUE_BYTES && before_query != form {
                    patterns.push(before_query.to_owned());
                }
                patterns.push(form);
            }
        }
        Masker::new(patterns.iter().map(String::as_str))
    }

    fn values(&self) -> impl Iterator<Item = &str> {
        self.grants.values().filter_map(|grant| match grant {
            Grant::Value(value) => Some(value.as_str()),
            Grant::Unavailable(_) => None,
        })
    }
}

/// Replaces secret values by [`MASK`] in text and JSON. Cheap to clone;
/// `Debug` never shows a value.
#[derive(Clone, Default)]
pub struct Masker {
    /// Longest first, no duplicates.
    patterns: Arc<Vec<String>>,
    /// All of `patterns` in one automaton, so a text is searched once
    /// whatever the number of values (`None` when there are none).
    searcher: Option<Arc<AhoCorasick>>,
}

impl fmt::Debug for Masker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Masker({} patterns)", self.patterns.len())
    }
}

impl Masker {
    /// A masker for `values`: each whole, and each line of a value of
    /// several lines that is at least [`MIN_VALUE_BYTES`] long.
    pub fn new<'a>(values: impl IntoIterator<Item = &'a str>) -> Self {
        let mut patterns: Vec<String> = Vec::new();
        for value in values {
            if value.is_empty() {
                continue;
            }
            patterns.push(value.to_owned());
            // As it reads inside a JSON string or Rust's `{:?}`: printing a
            // request body or a debug dump is a common accident.
            let json = serde_json::to_string(value).unwrap_or_default();
            let json = json.trim_matches('"');
            let debug = value.escape_debug().to_string();
            for escaped in [json, debug.as_str()] {
                if escaped != value && escaped.len() >= MIN_VALUE_BYTES {
                    patterns.push(escaped.to_owned());
                }
            }
            if value.contains('\n') {
                patterns.extend(
                    value
                        .split('\n')
                        .map(|line| line.strip_suffix('\r').unwrap_or(line))
                        .filter(|line| line.len() >= MIN_VALUE_BYTES)
                        .map(str::to_owned),
                );
            }
        }
        patterns.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        patterns.dedup();
        // Standard semantics: the only kind that reports overlapping matches.
        // Building cannot fail here: a run is granted at most 64 secrets of
        // at most 64 KiB each, far below the automaton's 2^31 states.
        let searcher = (!patterns.is_empty()).then(|| {
            let automaton = AhoCorasick::builder()
                .match_kind(MatchKind::Standard)
                .build(&patterns)
                .expect("an automaton for at most 64 values of at most 64 KiB");
            Arc::new(automaton)
        });
        Masker {
            patterns: Arc::new(patterns),
            searcher,
        }
    }

    /// Whether there is nothing to mask.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// `text` with every occurrence of a value replaced by [`MASK`]
    /// (overlapping occurrences become one mask).
    pub fn mask<'t>(&self, text: &'t str) -> Cow<'t, str> {
        self.mask_ranges(text, false)
    }

    /// As [`mask`](Self::mask), for text cut short: a value's beginning at
    /// its very end is masked too.
    pub fn mask_cut<'t>(&self, text: &'t str) -> Cow<'t, str> {
        self.mask_ranges(text, true)
    }

    fn mask_ranges<'t>(&self, text: &'t str, cut: bool) -> Cow<'t, str> {
        let Some(searcher) = self.searcher.as_ref().filter(|_| !text.is_empty()) else {
            return Cow::Borrowed(text);
        };
        // Every occurrence of every value, overlapping ones included, in one
        // pass over the text.
        let mut ranges: Vec<(usize, usize)> = searcher
            .find_overlapping_iter(text)
            .map(|found| (found.start(), found.end()))
            .collect();
        if cut {
            for pattern in self.patterns.iter() {
                if let Some(k) = (1..pattern.len())
                    .rev()
                    .find(|&k| pattern.is_char_boundary(k) && text.ends_with(&pattern[..k]))
                {
                    ranges.push((text.len() - k, text.len()));
                }
            }
        }
        if ranges.is_empty() {
            return Cow::Borrowed(text);
        }
        ranges.sort_unstable();
        let mut masked = String::with_capacity(text.len());
        let mut written = 0;
        let mut current: Option<(usize, usize)> = None;
        for (start, end) in ranges {
            match &mut current {
                Some((_, current_end)) if start <= *current_end => {
                    *current_end = (*current_end).max(end);
                }
                _ => {
                    if let Some((s, e)) = current.take() {
                        masked.push_str(&text[written..s]);
                        masked.push_str(MASK);
                        written = e;
                    }
                    current = Some((start, end));
                }
            }
        }
        if let Some((s, e)) = current {
            masked.push_str(&text[written..s]);
            masked.push_str(MASK);
            written = e;
        }
        masked.push_str(&text[written..]);
        Cow::Owned(masked)
    }

    /// `outcome` with its payload or failure message masked.
    pub fn mask_outcome(&self, outcome: Outcome) -> Outcome {
        if self.is_empty() {
            return outcome;
        }
        match outcome {
            Outcome::Completed(payload) => Outcome::Completed(self.mask_json(payload)),
            Outcome::Failed(failure) => Outcome::Failed(Failure {
                message: self.mask(&failure.message).into_owned(),
                ..failure
            }),
            Outcome::Cancelled => Outcome::Cancelled,
        }
    }

    /// `value` with every string, object key and number masked; a number
    /// holding a value becomes a string.
    pub fn mask_json(&self, value: Value) -> Value {
        if self.is_empty() {
            return value;
        }
        match value {
            Value::String(text) => match self.mask(&text) {
                Cow::Borrowed(_) => Value::String(text),
                Cow::Owned(masked) => Value::String(masked),
            },
            Value::Number(number) => {
                let text = number.to_string();
                match self.mask(&text) {
                    Cow::Borrowed(_) => Value::Number(number),
                    Cow::Owned(masked) => Value::String(masked),
                }
            }
            Value::Array(items) => {
                Value::Array(items.into_iter().map(|v| self.mask_json(v)).collect())
            }
            Value::Object(fields) => Value::Object(
                fields
                    .into_iter()
                    .map(|(key, v)| (self.mask(&key).into_owned(), self.mask_json(v)))
                    .collect::<Map<_, _>>(),
            ),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const TOKEN: &str = "tok-4f9a8b7c";
    const HOOK: &str = "https://hooks.example.com/T0/B0";

    fn masker() -> Masker {
        Masker::new([TOKEN, HOOK])
    }

    #[test]
    fn every_occurrence_is_masked_and_the_rest_kept() {
        let m = masker();
        assert_eq!(m.mask("nothing here"), "nothing here");
        assert!(matches!(m.mask("nothing here"), Cow::Borrowed(_)));
        assert_eq!(
            m.mask(&format!("token={TOKEN}, again {TOKEN}; url {HOOK}/x")),
            "token=***, again ***; url ***/x"
        );
        assert_eq!(m.mask(&format!("{TOKEN}{TOKEN}")), "***");
        assert_eq!(Masker::default().mask(TOKEN), TOKEN);
    }

    #[test]
    fn overlapping_values_leave_nothing_of_either() {
        let m = Masker::new(["abcdefgh", "efghijkl"]);
        assert_eq!(m.mask("xxabcdefghijklyy"), "xx***yy");
        let periodic = Masker::new(["aaaaaaaa"]);
        assert_eq!(periodic.mask("aaaaaaaaa!"), "***!");
    }

    #[test]
    fn the_most_values_a_run_can_be_granted_are_all_masked() {
        let values: Vec<String> = (0..64)
            .map(|i| format!("value-{i:02}-{}", "s".repeat(i * 1000)))
            .collect();
        let m = Masker::new(values.iter().map(String::as_str));
        let text = format!(
            "first {} then {} last {}",
            values[63], values[0], values[31]
        );
        assert_eq!(m.mask(&text), "first *** then *** last ***");
        // A fragment of a value is left alone.
        assert_eq!(m.mask("value-10-"), "value-10-");
    }

    #[test]
    fn a_cut_line_masks_a_values_beginning_at_its_end() {
        let m = masker();
        assert_eq!(m.mask_cut("prefix tok-4f"), "prefix ***");
        assert_eq!(
            m.mask_cut(&format!("{TOKEN} and https://hoo")),
            "*** and ***"
        );
        assert_eq!(m.mask("prefix tok-4f"), "prefix tok-4f", "only when cut");
        assert_eq!(m.mask_cut("nothing"), "nothing");
    }

    #[test]
    fn a_value_of_several_lines_is_masked_whole_and_by_line() {
        let pem = "-----BEGIN KEY-----\r\nMIIBVwIBADANBgkq\r\nabc\r\n-----END KEY-----";
        let m = Masker::new([pem]);
        assert_eq!(m.mask(&format!("key: {pem}")), "key: ***");
        assert_eq!(m.mask("MIIBVwIBADANBgkq"), "***");
        assert_eq!(m.mask("-----END KEY-----"), "***");
        assert_eq!(
            m.mask("abc"),
            "abc",
            "lines under 8 bytes are not masked alone"
        );
    }

    #[test]
    fn json_strings_keys_and_numbers_are_masked_and_nothing_else() {
        let m = Masker::new([TOKEN, "12345678901234567890"]);
        let payload = json!({
            "sent": format!("Bearer {TOKEN}"),
            TOKEN: [1, true, null, {"deep": TOKEN}],
            "n": serde_json::from_str::<Value>("12345678901234567890").unwrap(),
            "kept": 42,
        });
        assert_eq!(
            m.mask_json(payload),
            json!({
                "sent": "Bearer ***",
                "***": [1, true, null, {"deep": "***"}],
                "n": "***",
                "kept": 42,
            })
        );
    }

    #[test]
    fn host_call_records_mask_a_secret_url_without_its_query_too() {
        let secrets = RunSecrets::new([
            ("HOOK".to_owned(), Ok(format!("{HOOK}?token=abc"))),
            ("TOKEN".to_owned(), Ok(TOKEN.to_owned())),
        ]);
        let masker = secrets.url_masker();
        assert_eq!(masker.mask(&format!("POST {HOOK}")), "POST ***");
        assert_eq!(masker.mask(&format!("GET {HOOK}?token=abc")), "GET ***");
        assert_eq!(masker.mask(TOKEN), "***");
        // The plain masker knows the whole value only.
        assert_eq!(
            secrets.masker().mask(&format!("POST {HOOK}")),
            format!("POST {HOOK}")
        );
        // A URL written with capitals in its scheme, or with user
        // information, is recorded lower-cased and without it.
        let secrets = RunSecrets::new([(
            "HOOK".to_owned(),
            Ok("HTTPS://bot:pw@Hooks.example.com/services/T0/SecretPath?x=1".to_owned()),
        )]);
        let masker = secrets.url_masker();
        assert_eq!(
            masker.mask("POST https://Hooks.example.com/services/T0/SecretPath"),
            "POST ***"
        );
        assert_eq!(as_recorded_url("https://a.example/x"), None);
        assert_eq!(as_recorded_url("not a url"), None);
    }

    #[test]
    fn a_value_escaped_in_json_or_debug_output_is_masked_too() {
        let value = r#"pa"ss\word-12345"#;
        let m = Masker::new([value]);
        assert_eq!(m.mask(&format!("{value:?}")), "\"***\"");
        assert_eq!(
            m.mask(&serde_json::json!({"password": value}).to_string()),
            r#"{"password":"***"}"#
        );
        assert_eq!(m.mask(value), "***");
    }

    #[test]
    fn recorded_names_are_cut_past_the_longest_secret_name() {
        assert_eq!(recorded_name("API_TOKEN"), "API_TOKEN");
        let longest = "K".repeat(64);
        assert_eq!(recorded_name(&longest), longest);
        let huge = "é".repeat(1 << 20);
        assert_eq!(recorded_name(&huge), format!("{}…", "é".repeat(64)));
    }

    #[test]
    fn grants_give_values_or_say_why_not_and_debug_shows_names_only() {
        let secrets = RunSecrets::new([
            ("TOKEN".to_owned(), Ok(TOKEN.to_owned())),
            (
                "GONE".to_owned(),
                Err("not set in app `default`".to_owned()),
            ),
        ]);
        assert_eq!(secrets.get("TOKEN"), Ok(TOKEN));
        assert_eq!(
            secrets.get("GONE"),
            Err(Refusal::Unavailable("not set in app `default`".into()))
        );
        assert_eq!(secrets.get("OTHER"), Err(Refusal::NotGranted));
        assert_eq!(format!("{secrets:?}"), r#"{"GONE", "TOKEN"}"#);
        assert_eq!(secrets.masker().mask(TOKEN), "***");
        assert!(!format!("{:?}", secrets.masker()).contains("tok"));
    }
}
