//! Console sessions: a signed cookie naming a session held in memory, and the
//! CSRF token of each session.
//!
//! Signing in with an API key creates a session: 256 random bits (its id),
//! the SHA-256 of the key (never the key), and an expiry
//! ([`SESSION_LIFETIME`]). The cookie is `automata_session=<id>.<mac>`,
//! `mac` = HMAC-SHA256(secret, "session:" ‖ id), HttpOnly, SameSite=Strict,
//! `Path=/console`, `Secure` when the server serves TLS, with `Max-Age`. The
//! secret is drawn per process, and sessions live in this process's memory:
//! **a restart ends every session** (sign in again).
//!
//! Every request re-authenticates the session's key hash the way a bearer
//! key is ([`Authenticator::authenticate_sha256`]): a revoked, deleted or
//! expired key ends its sessions at once, and the role and app are the key's
//! as they are now.
//!
//! The CSRF token of a session is HMAC-SHA256(secret, "csrf:" ‖ id): forms
//! carry it in a hidden `csrf` field, scripts in the `X-CSRF-Token` header;
//! a state-changing request without the session's token is refused (403).
//!
//! A session also holds at most one [`Flash`]: the outcome of a form the
//! console answered with a redirect (Post/Redirect/Get), shown once by the
//! page redirected to. Its text is the console's or the API's own, kept here
//! on the server, never read from the URL. With authentication off every
//! browser shares the one session without an id, and so its flash.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::http::HeaderMap;
use axum::http::header;
use chrono::{DateTime, TimeDelta, Utc};
use hmac::{Hmac, Mac as _};
use sha2::Sha256;

use crate::domain::access::{Principal, hashes_match, hex, hex_decode};
use crate::service::{AuthError, Authenticator};

/// The session cookie's name.
pub const COOKIE: &str = "automata_session";
/// How long a session lasts after sign-in (the key's own expiry ends it sooner).
pub const SESSION_LIFETIME: TimeDelta = TimeDelta::hours(12);
/// Most sessions held at once; signing in past it ends the one closest to expiry.
pub const MAX_SESSIONS: usize = 10_000;
/// The header a script sends the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

type HmacSha256 = Hmac<Sha256>;

/// A signed-in browser: whose key, until when.
#[derive(Debug, Clone)]
struct Session {
    key_sha256: [u8; 32],
    expires_at: DateTime<Utc>,
}

/// The request's session, handed to console handlers as an extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// The session id (hex), to sign out.
    pub id: String,
    /// The token state-changing requests must carry.
    pub csrf: String,
}

/// Why a request has no session (the console asks to sign in).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("sign in with an API key to use the console")]
    Missing,
    #[error("your session has ended; sign in again")]
    Ended,
    /// The session's key no longer signs in (revoked, deleted, expired).
    #[error("{0}")]
    Key(String),
    /// The key could not be checked (the store failed); logged.
    #[error("the server could not check your session; try again")]
    Unavailable,
}

/// The outcome of an action, shown once on the page the action redirected to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flash {
    /// `ok`, or the HTTP status of a refusal (the API's 409, 422, …).
    pub outcome: Result<(), u16>,
    /// What to say: the console's words, or the API's own message.
    pub message: String,
    /// Runs the action created (a test event's), linked under the message.
    pub runs: Vec<String>,
    /// The form as sent (a test event's), to fill it in again; dropped past
    /// [`MAX_FLASH_FIELD_BYTES`].
    pub fields: Vec<(String, String)>,
}

impl Flash {
    /// A success.
    pub fn ok(message: impl Into<String>) -> Self {
        Flash {
            outcome: Ok(()),
            message: message.into(),
            runs: Vec::new(),
            fields: Vec::new(),
        }
    }

    /// A refusal with its HTTP status and message.
    pub fn refused(status: u16, message: impl Into<String>) -> Self {
        Flash {
            outcome: Err(status),
            message: message.into(),
            runs: Vec::new(),
            fields: Vec::new(),
        }
    }
}

/// Longest flash message kept (a longer one is cut, with `…`).
const MAX_FLASH_CHARS: usize = 4_096;
/// Most bytes of form fields a flash keeps (more: the form starts empty).
pub const MAX_FLASH_FIELD_BYTES: usize = 64 * 1024;

/// The sessions of this process and the secret that signs their cookies.
pub struct Sessions {
    secret: [u8; 32],
    live: Mutex<HashMap<String, Session>>,
    /// Each session's pending flash, by session id (`""` with auth off).
    flashes: Mutex<HashMap<String, Flash>>,
}

impl Sessions {
    /// Sessions signed with `secret` (draw it at random once per process).
    pub fn new(secret: [u8; 32]) -> Self {
        Sessions {
            secret,
            live: Mutex::default(),
            flashes: Mutex::default(),
        }
    }

    fn mac(&self, purpose: &str, id: &str) -> String {
        let mut mac = HmacSha256::new_from_slice(&self.secret).expect("HMAC takes any key size");
        mac.update(purpose.as_bytes());
        mac.update(b":");
        mac.update(id.as_bytes());
        hex(&mac.finalize().into_bytes())
    }

    /// Starts a session for the key whose SHA-256 is `key_sha256`, with the
    /// random `id_bytes`, at `now`: the cookie value and the session.
    pub fn start(
        &self,
        key_sha256: [u8; 32],
        id_bytes: [u8; 32],
        now: DateTime<Utc>,
    ) -> (String, SessionInfo) {
        let id = hex(&id_bytes);
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.retain(|_, s| s.expires_at > now);
        if live.len() >= MAX_SESSIONS
            && let Some(oldest) = live
                .iter()
                .min_by_key(|(_, s)| s.expires_at)
                .map(|(id, _)| id.clone())
        {
            live.remove(&oldest);
        }
        live.insert(
            id.clone(),
            Session {
                key_sha256,
                expires_at: now + SESSION_LIFETIME,
            },
        );
        let cookie = format!("{id}.{}", self.mac("session", &id));
        let info = SessionInfo {
            csrf: self.mac("csrf", &id),
            id,
        };
        (cookie, info)
    }

    /// Ends a session (sign out); unknown ids are ignored.
    pub fn end(&self, id: &str) {
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        self.flashes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    /// Keeps `flash` for the next page of the session `id` (replacing one
    /// not shown yet). Only live sessions (and the one of auth off, `""`)
    /// keep one, so the map is bounded by the sessions.
    pub fn set_flash(&self, id: &str, mut flash: Flash) {
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if !id.is_empty() && !live.contains_key(id) {
            return;
        }
        let field_bytes: usize = flash.fields.iter().map(|(n, v)| n.len() + v.len()).sum();
        if field_bytes > MAX_FLASH_FIELD_BYTES {
            flash.fields.clear();
        }
        if let Some((cut, _)) = flash.message.char_indices().nth(MAX_FLASH_CHARS) {
            flash.message.truncate(cut);
            flash.message.push('…');
        }
        let mut flashes = self.flashes.lock().unwrap_or_else(|p| p.into_inner());
        flashes.retain(|id, _| id.is_empty() || live.contains_key(id));
        flashes.insert(id.to_owned(), flash);
    }

    /// The flash of the session `id`, once: taking it removes it.
    pub fn take_flash(&self, id: &str) -> Option<Flash> {
        self.flashes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id)
    }

    /// The session a cookie value names, if its signature holds and it has
    /// not expired at `now`: its key hash and info.
    fn find(
        &self,
        cookie: &str,
        now: DateTime<Utc>,
    ) -> Result<([u8; 32], SessionInfo), SessionError> {
        let (id, mac) = cookie.split_once('.').ok_or(SessionError::Ended)?;
        let expected = self.mac("session", id);
        let (Some(given), Some(expected)) = (hex_decode(mac), hex_decode(&expected)) else {
            return Err(SessionError::Ended);
        };
        if !hashes_match(&given, &expected) {
            return Err(SessionError::Ended);
        }
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        match live.get(id) {
            Some(session) if session.expires_at > now => Ok((
                session.key_sha256,
                SessionInfo {
                    id: id.to_owned(),
                    csrf: self.mac("csrf", id),
                },
            )),
            Some(_) => {
                live.remove(id);
                Err(SessionError::Ended)
            }
            None => Err(SessionError::Ended),
        }
    }

    /// Who the request's session cookie signs in, at `now`: the key is
    /// authenticated again (revoked or expired keys end the session). With
    /// authentication off (`--no-auth`), everyone is [`Principal::Anyone`]
    /// with no session id, and forms still carry this process's CSRF token.
    pub async fn principal(
        &self,
        headers: &HeaderMap,
        authenticator: &Authenticator,
        now: DateTime<Utc>,
    ) -> Result<(Principal, SessionInfo), SessionError> {
        if !authenticator.enabled() {
            let csrf = self.mac("csrf", "");
            let id = String::new();
            return Ok((Principal::Anyone, SessionInfo { id, csrf }));
        }
        let cookie = session_cookie(headers).ok_or(SessionError::Missing)?;
        let (key_sha256, info) = self.find(&cookie, now)?;
        match authenticator.authenticate_sha256(&key_sha256, now).await {
            Ok(principal) => Ok((principal, info)),
            Err(AuthError::Store(error)) => {
                tracing::error!("cannot check a console session's key: {error}");
                Err(SessionError::Unavailable)
            }
            Err(error) => {
                self.end(&info.id);
                Err(SessionError::Key(format!(
                    "{error}; your session has ended, sign in again"
                )))
            }
        }
    }
}

/// Whether `given` is the session's CSRF token (constant time).
pub fn csrf_matches(session: &SessionInfo, given: &str) -> bool {
    given.len() == session.csrf.len() && hashes_match(given.as_bytes(), session.csrf.as_bytes())
}

/// The value of the session cookie in a request's `Cookie` headers.
fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim().to_owned())
}

/// The `Set-Cookie` value that stores `value` for the session's lifetime.
pub fn set_cookie(value: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{COOKIE}={value}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        SESSION_LIFETIME.num_seconds()
    )
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_cookie(secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0{secure}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(hour: u32) -> DateTime<Utc> {
        chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 1, 1, hour, 0, 0).unwrap()
    }

    fn headers(cookie: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            format!("theme=dark; {COOKIE}={cookie}").parse().unwrap(),
        );
        headers
    }

    #[test]
    fn a_cookie_names_its_session_until_it_expires() {
        let sessions = Sessions::new([7; 32]);
        let (cookie, info) = sessions.start([1; 32], [2; 32], at(0));
        assert!(
            !cookie.contains(&hex(&[1; 32])),
            "no key hash in the cookie"
        );
        let found = session_cookie(&headers(&cookie)).unwrap();
        assert_eq!(sessions.find(&found, at(11)).unwrap(), ([1; 32], info));
        assert_eq!(sessions.find(&found, at(12)), Err(SessionError::Ended));
        // Expired sessions are dropped.
        assert_eq!(sessions.find(&found, at(1)), Err(SessionError::Ended));
    }

    #[test]
    fn forged_or_ended_cookies_name_no_session() {
        let sessions = Sessions::new([7; 32]);
        let (cookie, info) = sessions.start([1; 32], [2; 32], at(0));
        let (id, mac) = cookie.split_once('.').unwrap();
        let mut forged = mac.to_owned();
        forged.replace_range(0..1, if mac.starts_with('0') { "1" } else { "0" });
        assert!(sessions.find(&format!("{id}.{forged}"), at(1)).is_err());
        assert!(sessions.find(id, at(1)).is_err());
        // Another process's secret signs differently.
        assert!(Sessions::new([8; 32]).find(&cookie, at(1)).is_err());
        sessions.end(&info.id);
        assert!(sessions.find(&cookie, at(1)).is_err());
    }

    #[test]
    fn csrf_tokens_are_per_session() {
        let sessions = Sessions::new([7; 32]);
        let (_, one) = sessions.start([1; 32], [2; 32], at(0));
        let (_, two) = sessions.start([1; 32], [3; 32], at(0));
        assert!(csrf_matches(&one, &one.csrf));
        assert!(!csrf_matches(&one, &two.csrf));
        assert!(!csrf_matches(&one, ""));
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_scoped() {
        let set = set_cookie("abc.def", true);
        for part in [
            "HttpOnly",
            "SameSite=Strict",
            "Path=/console",
            "Secure",
            "Max-Age=43200",
        ] {
            assert!(set.contains(part), "{set} lacks {part}");
        }
        assert!(!set_cookie("x", false).contains("Secure"));
        assert!(clear_cookie(false).contains("Max-Age=0"));
    }

    #[test]
    fn a_flash_is_shown_once_and_only_to_its_session() {
        let sessions = Sessions::new([7; 32]);
        let (_, one) = sessions.start([1; 32], [2; 32], at(0));
        let (_, two) = sessions.start([1; 32], [3; 32], at(0));
        sessions.set_flash(
            &one.id,
            Flash::refused(409, "x".repeat(MAX_FLASH_CHARS + 10)),
        );
        assert_eq!(sessions.take_flash(&two.id), None);
        let flash = sessions.take_flash(&one.id).unwrap();
        assert_eq!(flash.outcome, Err(409));
        assert_eq!(flash.message.chars().count(), MAX_FLASH_CHARS + 1);
        assert_eq!(sessions.take_flash(&one.id), None, "once");
        // A large form is not kept, its message is.
        let mut big = Flash::ok("sent");
        big.fields
            .push(("payload".into(), "x".repeat(MAX_FLASH_FIELD_BYTES)));
        sessions.set_flash(&one.id, big);
        let kept = sessions.take_flash(&one.id).unwrap();
        assert!(kept.fields.is_empty() && kept.message == "sent");
        // No session, no flash; signing out drops a pending one.
        sessions.set_flash("nobody", Flash::ok("hi"));
        assert_eq!(sessions.take_flash("nobody"), None);
        sessions.set_flash(&two.id, Flash::ok("saved"));
        sessions.end(&two.id);
        assert_eq!(sessions.take_flash(&two.id), None);
        // With authentication off there is one session, without an id.
        sessions.set_flash("", Flash::ok("done"));
        assert_eq!(sessions.take_flash("").unwrap().message, "done");
    }

    #[test]
    fn sessions_are_bounded() {
        let sessions = Sessions::new([7; 32]);
        for i in 0..MAX_SESSIONS + 5 {
            let mut id = [0; 32];
            id[..8].copy_from_slice(&(i as u64).to_be_bytes());
            sessions.start([1; 32], id, at(0) + TimeDelta::seconds(i as i64));
        }
        assert_eq!(sessions.live.lock().unwrap().len(), MAX_SESSIONS);
    }
}
