//! Sessions: a random id in a `__Host-` cookie (HttpOnly, Secure, SameSite=Strict, Path=/),
//! held in the node's memory only, by the SHA-256 of the id.
//!
//! A session holds the user's API token, so that every page is an ordinary call of the
//! API's own routes with the user's own rights: a revoked user's next click gets the API's
//! 401, which ends the session. A session ends after [`IDLE_MS`] without a click, after
//! [`MAX_AGE_MS`] in any case, at sign-out, and when the node restarts. Every
//! state-changing form carries the session's CSRF token, compared in constant time.
use base64::Engine as _;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The session cookie's name (the `__Host-` prefix makes the browser refuse it unless it is
/// Secure, has Path=/ and no Domain).
pub const COOKIE: &str = "__Host-imi_session";
/// The cookie that ties the sign-in form to the browser that loaded it.
pub const LOGIN_COOKIE: &str = "__Host-imi_login";
/// The language choice of a browser that is not signed in.
pub const LANG_COOKIE: &str = "__Host-imi_lang";
/// A session ends after this long without a request.
pub const IDLE_MS: u64 = 30 * 60 * 1000;
/// A session ends this long after sign-in in any case.
pub const MAX_AGE_MS: u64 = 12 * 60 * 60 * 1000;
/// Most sessions held at once; beyond it the least recently used one ends.
pub const MAX_SESSIONS: usize = 10_000;

/// One signed-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    /// The user's API bearer token.
    pub token: String,
    /// The user's id (for logs).
    pub user: String,
    /// `authority_user`, `coordinator`, `auditor`, `operator`.
    pub role: String,
    /// The user's authority id and its name in the user's language.
    pub authority: String,
    /// The authority's name.
    pub authority_name: String,
    /// The token every state-changing form must carry.
    pub csrf: String,
    /// The language the user chose, if any.
    pub lang: Option<String>,
    /// Sign-in time, ms.
    pub created: u64,
    /// Last request, ms.
    pub seen: u64,
}

/// The node's sessions.
#[derive(Clone, Default)]
pub struct Sessions {
    inner: Arc<Mutex<HashMap<[u8; 32], Session>>>,
}

/// A new random token: 32 bytes, base64url.
pub fn random_token() -> String {
    let raw: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn key(id: &str) -> [u8; 32] {
    imi_protocol::sha256(id.as_bytes())
}

/// Constant-time equality of two secrets.
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Sessions {
    /// Starts a session; returns the cookie value.
    pub fn start(&self, mut s: Session, now: u64) -> String {
        let id = random_token();
        s.created = now;
        s.seen = now;
        let mut m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() >= MAX_SESSIONS {
            m.retain(|_, v| alive(v, now));
        }
        if m.len() >= MAX_SESSIONS
            && let Some(oldest) = m.iter().min_by_key(|(_, v)| v.seen).map(|(k, _)| *k)
        {
            m.remove(&oldest);
        }
        m.insert(key(&id), s);
        id
    }

    /// The live session of a cookie value, touched; `None` (and forgotten) when expired.
    pub fn get(&self, id: &str, now: u64) -> Option<Session> {
        let k = key(id);
        let mut m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let s = m.get_mut(&k)?;
        if !alive(s, now) {
            m.remove(&k);
            return None;
        }
        s.seen = now;
        Some(s.clone())
    }

    /// Sets the session's language.
    pub fn set_lang(&self, id: &str, lang: &str) {
        let mut m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = m.get_mut(&key(id)) {
            s.lang = Some(lang.to_owned());
        }
    }

    /// Ends a session.
    pub fn end(&self, id: &str) {
        let mut m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        m.remove(&key(id));
    }

    /// Ends every session of a user (after the API refused their token).
    pub fn end_user(&self, user: &str) {
        let mut m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        m.retain(|_, s| s.user != user);
    }

    /// How many sessions are held.
    pub fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn alive(s: &Session, now: u64) -> bool {
    now.saturating_sub(s.seen) < IDLE_MS && now.saturating_sub(s.created) < MAX_AGE_MS
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie<'a>(header: Option<&'a str>, name: &str) -> Option<&'a str> {
    header?
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

/// A `Set-Cookie` value for a secure, HTTP-only, same-site cookie; `max_age_s` 0 deletes it.
pub fn set_cookie(name: &str, value: &str, max_age_s: u64) -> String {
    format!("{name}={value}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={max_age_s}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(user: &str) -> Session {
        Session {
            token: "imi_x".into(),
            user: user.into(),
            role: "authority_user".into(),
            authority: "DE-X".into(),
            authority_name: String::new(),
            csrf: random_token(),
            lang: None,
            created: 0,
            seen: 0,
        }
    }

    #[test]
    fn expiry_idle_and_absolute() {
        let s = Sessions::default();
        let id = s.start(session("a"), 1_000);
        assert!(s.get(&id, 1_000 + IDLE_MS - 1).is_some());
        // kept alive by clicks until the absolute limit
        let mut t = 1_000 + IDLE_MS - 1;
        while t + IDLE_MS / 2 < 1_000 + MAX_AGE_MS {
            t += IDLE_MS / 2;
            assert!(s.get(&id, t).is_some(), "at {t}");
        }
        assert!(s.get(&id, 1_000 + MAX_AGE_MS).is_none());
        assert!(s.is_empty(), "an expired session is forgotten");
        let id = s.start(session("b"), 0);
        assert!(s.get(&id, IDLE_MS).is_none(), "idle too long");
        assert!(s.get("forged", 0).is_none());
    }

    #[test]
    fn end_and_end_user() {
        let s = Sessions::default();
        let a1 = s.start(session("a"), 0);
        let a2 = s.start(session("a"), 0);
        let b = s.start(session("b"), 0);
        s.end(&a1);
        assert!(s.get(&a1, 1).is_none());
        s.end_user("a");
        assert!(s.get(&a2, 1).is_none());
        assert!(s.get(&b, 1).is_some());
    }

    #[test]
    fn cookies_and_secrets() {
        let h = "a=1; __Host-imi_session=abc; x=";
        assert_eq!(cookie(Some(h), COOKIE), Some("abc"));
        assert_eq!(cookie(Some(h), "x"), None);
        assert_eq!(cookie(None, COOKIE), None);
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "ab"));
        let c = set_cookie(COOKIE, "v", 60);
        for part in [
            "Secure",
            "HttpOnly",
            "SameSite=Strict",
            "Path=/",
            "Max-Age=60",
        ] {
            assert!(c.contains(part), "{c}");
        }
    }
}
