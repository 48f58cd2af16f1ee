//! Captures what a run prints — WASI stdout and stderr, and `log` calls — as one
//! ordered list of lines, capped in line count and bytes, with the values of
//! the run's secrets masked (`super::secrets`) before a line is kept or shown
//! to followers.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::watch;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use crate::domain::limits::OutputLimits;
use crate::domain::outcome::CapturedOutput;

use super::secrets::Masker;

/// Where a line came from; stderr and log lines are marked in the transcript.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Stdout,
    Stderr,
}

#[derive(Debug)]
struct State {
    limits: OutputLimits,
    lines: Vec<String>,
    bytes: usize,
    truncated: bool,
    /// Bytes of an unfinished line per stream, kept until its newline arrives.
    partial: [Vec<u8>; 2],
    /// Watches stderr for Rust's panic report, whatever the caps dropped.
    panic: PanicScanner,
    /// Readers of the lines while the run goes on, if anyone may follow it.
    live: Option<LiveOutput>,
    /// Masks secret values in every line.
    mask: Masker,
}

impl State {
    fn push_line(&mut self, line: String) {
        if self.truncated {
            return;
        }
        if self.lines.len() >= self.limits.max_lines
            || self.bytes + line.len() > self.limits.max_bytes
        {
            self.truncated = true;
            return;
        }
        self.bytes += line.len();
        if let Some(live) = &self.live {
            live.push(&line);
        }
        self.lines.push(line);
    }

    fn write(&mut self, source: Source, mut bytes: &[u8]) {
        while let Some(newline) = bytes.iter().position(|b| *b == b'\n') {
            let (head, tail) = bytes.split_at(newline);
            let mut line = std::mem::take(&mut self.partial[source as usize]);
            line.extend_from_slice(head);
            self.end_line(source, &line);
            bytes = &tail[1..];
        }
        if self.truncated {
            return;
        }
        let partial = &mut self.partial[source as usize];
        // An endless line is cut at the byte cap and kept, rather than buffered
        // forever; nothing after it is recorded.
        let room = self
            .limits
            .max_bytes
            .saturating_sub(self.bytes + partial.len());
        if bytes.len() > room {
            partial.extend_from_slice(&bytes[..room]);
            let line = std::mem::take(partial);
            // Cut at the cap: a secret's beginning at the cut is masked too.
            let text = self.mask.mask_cut(&text_of(&line)).into_owned();
            self.push_line(render(source, &text));
            self.truncated = true;
            return;
        }
        partial.extend_from_slice(bytes);
    }

    fn finish(&mut self) {
        for source in [Source::Stdout, Source::Stderr] {
            let line = std::mem::take(&mut self.partial[source as usize]);
            if !line.is_empty() {
                self.end_line(source, &line);
            }
        }
        self.panic.finish();
    }

    fn end_line(&mut self, source: Source, line: &[u8]) {
        let text = text_of(line);
        let text = self.mask.mask(&text);
        if source == Source::Stderr {
            self.panic.observe(&text);
        }
        self.push_line(render(source, &text));
    }
}

/// A panic a Rust guest reported on stderr before aborting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestPanic {
    /// Where it panicked, e.g. `src/lib.rs:12:5`.
    pub location: String,
    /// The panic message.
    pub message: String,
}

/// Longest panic message kept.
const MAX_PANIC_MESSAGE: usize = 4 * 1024;

/// Recognises std's panic report: `thread '<name>' panicked at <location>:`,
/// the message lines, then (for the first panic) a `note: run with
/// RUST_BACKTRACE…` line.
#[derive(Debug, Default)]
enum PanicScanner {
    #[default]
    Watching,
    Reading(GuestPanic),
    Found(GuestPanic),
}

impl PanicScanner {
    fn observe(&mut self, line: &str) {
        let line = line.strip_suffix('\r').unwrap_or(line);
        match self {
            PanicScanner::Watching => {
                if let Some(location) = panic_location(line) {
                    *self = PanicScanner::Reading(GuestPanic {
                        location: location.to_owned(),
                        message: String::new(),
                    });
                }
            }
            PanicScanner::Reading(panic) => {
                if line.starts_with("note: ") {
                    self.finish();
                } else if panic.message.len() < MAX_PANIC_MESSAGE {
                    if !panic.message.is_empty() {
                        panic.message.push('\n');
                    }
                    let room = MAX_PANIC_MESSAGE - panic.message.len();
                    panic.message.push_str(truncate_at_char(line, room));
                }
            }
            PanicScanner::Found(_) => {}
        }
    }

    fn finish(&mut self) {
        if let PanicScanner::Reading(panic) = self {
            *self = PanicScanner::Found(std::mem::replace(
                panic,
                GuestPanic {
                    location: String::new(),
                    message: String::new(),
                },
            ));
        }
    }
}

/// `src/lib.rs:3:5` from `thread '<name>' panicked at src/lib.rs:3:5:`, or
/// from `thread '<name>' (<id>) panicked at …` as newer std writes it.
fn panic_location(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("thread '")?;
    let (_, rest) = rest.split_once(" panicked at ")?;
    rest.strip_suffix(':')
}

fn truncate_at_char(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// A line's text, without its `\r` and with invalid UTF-8 replaced.
fn text_of(line: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(line.strip_suffix(b"\r").unwrap_or(line))
}

fn render(source: Source, text: &str) -> String {
    match source {
        Source::Stdout => text.to_owned(),
        Source::Stderr => format!("[stderr] {text}"),
    }
}

/// The shared transcript of one run. Cheap to clone: clones write to the same
/// lines.
#[derive(Debug, Clone)]
pub struct Transcript {
    state: Arc<Mutex<State>>,
}

impl Transcript {
    /// An empty transcript with the given caps.
    pub fn new(limits: OutputLimits) -> Self {
        Self::with_live(limits, None)
    }

    /// An empty transcript that also hands every line it keeps to `live`,
    /// as it is kept (a line is kept when its newline arrives, or when the
    /// transcript finishes).
    pub fn with_live(limits: OutputLimits, live: Option<LiveOutput>) -> Self {
        Self::masked(limits, live, Masker::default())
    }

    /// As [`with_live`](Self::with_live), with `mask` applied to every line
    /// (written or recorded) before it is kept or handed to `live`.
    pub fn masked(limits: OutputLimits, live: Option<LiveOutput>, mask: Masker) -> Self {
        Transcript {
            state: Arc::new(Mutex::new(State {
                limits,
                lines: Vec::new(),
                bytes: 0,
                truncated: false,
                partial: [Vec::new(), Vec::new()],
                panic: PanicScanner::default(),
                live,
                mask,
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock only means another writer panicked mid-push; the
        // lines themselves are still consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The stream the guest's stdout writes to.
    pub fn stdout(&self) -> CaptureStream {
        CaptureStream {
            transcript: self.clone(),
            source: Source::Stdout,
        }
    }

    /// The stream the guest's stderr writes to.
    pub fn stderr(&self) -> CaptureStream {
        CaptureStream {
            transcript: self.clone(),
            source: Source::Stderr,
        }
    }

    /// Records one line written by the host on the guest's behalf (a log call).
    pub fn record(&self, line: String) {
        let mut state = self.lock();
        let line = match state.mask.mask(&line) {
            std::borrow::Cow::Borrowed(_) => line,
            std::borrow::Cow::Owned(masked) => masked,
        };
        state.push_line(line);
    }

    /// Ends the transcript: unfinished lines are kept as lines.
    pub fn finish(&self) -> CapturedOutput {
        let mut state = self.lock();
        state.finish();
        CapturedOutput {
            lines: std::mem::take(&mut state.lines),
            truncated: state.truncated,
        }
    }
}

impl Transcript {
    /// The panic the guest reported on stderr, if any; complete once
    /// [`finish`](Self::finish) has been called.
    pub fn panic(&self) -> Option<GuestPanic> {
        match &self.lock().panic {
            PanicScanner::Found(panic) | PanicScanner::Reading(panic) => Some(panic.clone()),
            PanicScanner::Watching => None,
        }
    }
}

/// What a run has printed so far, as followers see it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveLines {
    /// The lines kept so far, oldest first: the same lines, in the same
    /// order, as the run's final output (so an offset into one is an offset
    /// into the other).
    pub lines: Vec<String>,
}

/// A run's output while it runs: the [`Transcript`] pushes each kept line,
/// followers [`subscribe`](Self::subscribe) and are woken per line. When the
/// last clone is dropped (the run is over and its owner let go), followers'
/// `changed()` fails: nothing more will come. Cheap to clone.
#[derive(Debug, Clone)]
pub struct LiveOutput {
    lines: Arc<watch::Sender<LiveLines>>,
}

impl Default for LiveOutput {
    fn default() -> Self {
        Self::new()
    }
}

impl LiveOutput {
    /// No lines yet.
    pub fn new() -> Self {
        LiveOutput {
            lines: Arc::new(watch::Sender::new(LiveLines::default())),
        }
    }

    fn push(&self, line: &str) {
        self.lines
            .send_modify(|live| live.lines.push(line.to_owned()));
    }

    /// Follows the lines: the receiver sees every line pushed so far and is
    /// woken by each new one.
    pub fn subscribe(&self) -> watch::Receiver<LiveLines> {
        self.lines.subscribe()
    }
}

/// One of the guest's output streams, feeding a [`Transcript`].
#[derive(Debug, Clone)]
pub struct CaptureStream {
    transcript: Transcript,
    source: Source,
}

/// Room a stream reports to the guest: writes past the caps are accepted and
/// dropped, so the guest never blocks or fails on output.
const WRITE_BUDGET: usize = 64 * 1024;

impl OutputStream for CaptureStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.transcript.lock().write(self.source, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_BUDGET)
    }
}

#[async_trait::async_trait]
impl Pollable for CaptureStream {
    async fn ready(&mut self) {}
}

impl IsTerminal for CaptureStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CaptureStream {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(AsyncCapture(self.clone()))
    }
}

/// The tokio-facing side of a [`CaptureStream`] (used by WASI p3 paths).
struct AsyncCapture(CaptureStream);

impl tokio::io::AsyncWrite for AsyncCapture {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.0.transcript.lock().write(self.0.source, buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_lines: usize, max_bytes: usize) -> OutputLimits {
        OutputLimits {
            max_lines,
            max_bytes,
        }
    }

    #[test]
    fn splits_lines_across_writes_and_streams() {
        let transcript = Transcript::new(OutputLimits::default());
        let mut out = transcript.stdout();
        let mut err = transcript.stderr();
        out.write(Bytes::from_static(b"hel")).unwrap();
        err.write(Bytes::from_static(b"oops\r\n")).unwrap();
        out.write(Bytes::from_static(b"lo\nworld")).unwrap();
        transcript.record("[info] logged".into());
        let captured = transcript.finish();
        assert_eq!(
            captured.lines,
            ["[stderr] oops", "hello", "[info] logged", "world"]
        );
        assert!(!captured.truncated);
    }

    #[test]
    fn caps_line_count_and_marks_truncation() {
        let transcript = Transcript::new(limits(2, 1024));
        let mut out = transcript.stdout();
        out.write(Bytes::from_static(b"a\nb\nc\nd\n")).unwrap();
        let captured = transcript.finish();
        assert_eq!(captured.lines, ["a", "b"]);
        assert!(captured.truncated);
    }

    #[test]
    fn caps_bytes_even_without_newlines() {
        let transcript = Transcript::new(limits(100, 8));
        let mut out = transcript.stdout();
        out.write(Bytes::from(vec![b'x'; 100])).unwrap();
        let captured = transcript.finish();
        assert_eq!(captured.lines, ["xxxxxxxx"]);
        assert!(captured.truncated);
    }

    #[test]
    fn recognises_a_panic_report_even_past_the_caps() {
        let transcript = Transcript::new(limits(1, 1024));
        let mut out = transcript.stdout();
        let mut err = transcript.stderr();
        out.write(Bytes::from_static(b"filler\nmore filler\n"))
            .unwrap();
        err.write(Bytes::from_static(
            b"\nthread '<unnamed>' panicked at src/lib.rs:12:5:\nthe list\nis empty\n",
        ))
        .unwrap();
        err.write(Bytes::from_static(
            b"note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n",
        ))
        .unwrap();
        let captured = transcript.finish();
        assert_eq!(captured.lines, ["filler"]);
        assert_eq!(
            transcript.panic(),
            Some(GuestPanic {
                location: "src/lib.rs:12:5".into(),
                message: "the list\nis empty".into(),
            })
        );
    }

    #[test]
    fn a_panic_report_without_a_note_ends_with_the_transcript() {
        let transcript = Transcript::new(OutputLimits::default());
        transcript
            .stderr()
            .write(Bytes::from_static(
                b"thread 'main' panicked at a.rs:1:1:\nboom",
            ))
            .unwrap();
        assert!(transcript.stdout().write(Bytes::from_static(b"x")).is_ok());
        transcript.finish();
        assert_eq!(transcript.panic().unwrap().message, "boom");
        let quiet = Transcript::new(OutputLimits::default());
        quiet
            .stderr()
            .write(Bytes::from_static(b"panicked at nothing\n"))
            .unwrap();
        assert_eq!(quiet.panic(), None);
    }

    #[test]
    fn followers_see_kept_lines_as_they_come_and_the_end() {
        let live = LiveOutput::new();
        let transcript = Transcript::with_live(limits(3, 1024), Some(live.clone()));
        let mut follower = live.subscribe();
        let mut out = transcript.stdout();
        out.write(Bytes::from_static(b"one\ntw")).unwrap();
        assert!(follower.has_changed().unwrap());
        assert_eq!(follower.borrow_and_update().lines, ["one"]);
        transcript.record("[info] two".into());
        out.write(Bytes::from_static(b"o\nthree\nfour\n")).unwrap();
        let captured = transcript.finish();
        assert_eq!(follower.borrow_and_update().lines, captured.lines);
        assert!(captured.truncated);
        drop((transcript, out, live));
        assert!(follower.has_changed().is_err(), "the end is seen");
    }

    #[test]
    fn secret_values_are_masked_in_kept_and_live_lines_whatever_the_chunks() {
        let live = LiveOutput::new();
        let mask = Masker::new(["s3cr3t-value", "other-secret"]);
        let transcript = Transcript::masked(limits(100, 1024), Some(live.clone()), mask);
        let mut out = transcript.stdout();
        let mut err = transcript.stderr();
        for chunk in ["token: s3c", "r3t-va", "lue!\nnext\n"] {
            out.write(Bytes::copy_from_slice(chunk.as_bytes())).unwrap();
        }
        err.write(Bytes::from_static(b"other-secret\r\n")).unwrap();
        transcript.record("[info] logged s3cr3t-value".into());
        let captured = transcript.finish();
        assert_eq!(
            captured.lines,
            ["token: ***!", "next", "[stderr] ***", "[info] logged ***"]
        );
        assert_eq!(live.subscribe().borrow().lines, captured.lines);
    }

    #[test]
    fn a_line_cut_at_the_cap_masks_a_secrets_beginning() {
        let mask = Masker::new(["s3cr3t-value"]);
        let transcript = Transcript::masked(limits(100, 12), None, mask);
        transcript
            .stdout()
            .write(Bytes::from_static(b"abcdefs3cr3t-value and more"))
            .unwrap();
        let captured = transcript.finish();
        assert_eq!(captured.lines, ["abcdef***"]);
        assert!(captured.truncated);
    }

    #[test]
    fn a_panic_message_holds_the_masked_text() {
        let transcript =
            Transcript::masked(OutputLimits::default(), None, Masker::new(["s3cr3t-value"]));
        transcript
            .stderr()
            .write(Bytes::from_static(
                b"thread 'main' panicked at a.rs:1:1:\nbad key s3cr3t-value\n",
            ))
            .unwrap();
        transcript.finish();
        assert_eq!(transcript.panic().unwrap().message, "bad key ***");
    }

    #[test]
    fn invalid_utf8_is_replaced_not_fatal() {
        let transcript = Transcript::new(OutputLimits::default());
        transcript
            .stdout()
            .write(Bytes::from_static(b"a\xffb\n"))
            .unwrap();
        assert_eq!(transcript.finish().lines, ["a\u{fffd}b"]);
    }
}
