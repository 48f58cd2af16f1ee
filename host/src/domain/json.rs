//! The one rule for JSON the host takes in: how deep it may nest and how large
//! it may be, wherever it comes from, and why every record that stores such
//! JSON reads back.
//!
//! | JSON taken in | Size | Depth | Refused with |
//! | --- | --- | --- | --- |
//! | A request body: an event and its payload, run-now input, an automation with its metadata | [`MAX_BODY_BYTES`] | [`MAX_DEPTH`] | 413 (size), 400 (depth) |
//! | An automation's `metadata` | [`MAX_METADATA_BYTES`] as JSON | within its body | 400 |
//! | A guest's returned payload | run limit `payload_bytes` ([`DEFAULT_GUEST_RESULT_BYTES`], at most [`MAX_GUEST_RESULT_BYTES`]) | [`MAX_DEPTH`] | a failed run, `failure_kind: invalid_payload` |
//! | A guest's returned error | run limit `error_bytes` (the same default and ceiling) | a string | a failed run, `failure_kind: invalid_payload` |
//! | A component's graph, read at upload and stored with its config | [`MAX_GRAPH_BYTES`] as JSON | its fixed shape | 422 |
//!
//! **Depth** counts the arrays and objects open at once: `1` is 0 levels
//! deep, `[]` 1, `{"a": [1]}` 2. [`check_depth`] measures it on the text,
//! before anything is parsed, so a refusal names this rule and not a parser's
//! recursion limit.
//!
//! **Stored records read back what the edge accepted.** The store writes
//! records as JSON and reads them with serde_json, which refuses more than
//! [`STORE_READ_DEPTH`] levels. A record holds a document at most
//! [`RECORD_NESTING`] levels below its top (a run's `input.payload` and
//! `result.payload`; an automation's `metadata` sits where it sat in its
//! request body), and `MAX_DEPTH + RECORD_NESTING` is checked at compile time
//! to stay within `STORE_READ_DEPTH`. (Before this rule, intake took what
//! serde_json's default limit took, the run record nested it one level deeper,
//! and the store could not read back what it had accepted.)
//!
//! Why these numbers: 64 levels is far beyond real event payloads (webhooks
//! nest well under 20) and leaves half of the reader's 127 to records and
//! responses that wrap a document (a run list adds two more levels); a guest's
//! serde_json reads the 63 levels a payload can have with room to spare. 1 MiB
//! bodies and guest results are a thousand times a typical payload and keep a
//! run record, read whole on every list, bounded; the ceiling (16 MiB, like
//! output) is for workflows that knowingly return bulk data.

/// Most levels of arrays and objects open at once in any JSON document the
/// host takes in: a request body or a guest's returned payload.
pub const MAX_DEPTH: usize = 64;

/// Largest JSON request body, in bytes (1 MiB).
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// Largest automation `metadata`, in bytes of its JSON text (16 KiB).
pub const MAX_METADATA_BYTES: usize = 16 * 1024;

/// Largest WorkflowGraph a component may declare, in bytes of its JSON
/// (64 KiB: a hundred steps with paragraph-long descriptions fit).
pub const MAX_GRAPH_BYTES: usize = 64 * 1024;

/// The default cap on a guest's returned payload (`payload_bytes`) and error
/// message (`error_bytes`), in bytes (1 MiB).
pub const DEFAULT_GUEST_RESULT_BYTES: usize = 1 << 20;

/// The host's ceiling on `payload_bytes` and `error_bytes` overrides, in
/// bytes (16 MiB).
pub const MAX_GUEST_RESULT_BYTES: usize = 16 << 20;

/// Most levels a stored record adds above a document it holds: a run record's
/// object and its `input` (or `result`) object.
pub const RECORD_NESTING: usize = 2;

/// Most levels the store's reader accepts: serde_json's fixed recursion limit
/// (it refuses the 128th level).
pub const STORE_READ_DEPTH: usize = 127;

const _: () = assert!(MAX_DEPTH + RECORD_NESTING <= STORE_READ_DEPTH);

/// A JSON document beyond this module's rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JsonLimitError {
    /// More than [`MAX_DEPTH`] levels of arrays and objects.
    #[error("it nests arrays and objects deeper than the limit of {MAX_DEPTH} levels")]
    TooDeep,
}

/// Checks that `json` opens at most [`MAX_DEPTH`] arrays and objects at once.
///
/// Reads the text once without recursion or allocation, so it is safe on any
/// input; text that is not JSON passes or fails here arbitrarily and is left
/// to the parser to refuse.
pub fn check_depth(json: &[u8]) -> Result<(), JsonLimitError> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &byte in json {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(JsonLimitError::TooDeep);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    /// `depth` nested one-key objects around `1`.
    fn nested(depth: usize) -> String {
        format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth))
    }

    #[test]
    fn depth_counts_open_arrays_and_objects() {
        assert_eq!(check_depth(b"1"), Ok(()));
        assert_eq!(check_depth(nested(MAX_DEPTH).as_bytes()), Ok(()));
        assert_eq!(
            check_depth(nested(MAX_DEPTH + 1).as_bytes()),
            Err(JsonLimitError::TooDeep)
        );
        let wide = format!("[{}]", vec!["[[1]]"; 10_000].join(","));
        assert_eq!(check_depth(wide.as_bytes()), Ok(()));
        let deep_array = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert_eq!(
            check_depth(deep_array.as_bytes()),
            Err(JsonLimitError::TooDeep)
        );
    }

    #[test]
    fn brackets_inside_strings_do_not_count() {
        let text = json!({
            "brackets": "[".repeat(1000),
            "escaped quote then brackets": "\\\"{{{{",
            "backslash at the end\\": ["{"],
        })
        .to_string();
        assert_eq!(check_depth(text.as_bytes()), Ok(()));
        let quoted_depth = format!(r#"["\"", {}]"#, nested(MAX_DEPTH));
        assert_eq!(
            check_depth(quoted_depth.as_bytes()),
            Err(JsonLimitError::TooDeep)
        );
    }

    #[test]
    fn the_store_reader_takes_exactly_store_read_depth() {
        // Pins serde_json's limit: if it ever changes, STORE_READ_DEPTH (and
        // the compile-time check against MAX_DEPTH) must follow.
        assert!(serde_json::from_str::<Value>(&nested(STORE_READ_DEPTH)).is_ok());
        let error = serde_json::from_str::<Value>(&nested(STORE_READ_DEPTH + 1)).unwrap_err();
        assert!(error.to_string().contains("recursion limit"), "{error}");
    }
}
