//! Server-side sessions: who is signed in, with which token and until when, the CSRF token
//! their forms carry, and the cookies that name them.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderValue, header};
use slipway_clock::SharedClock;

/// The cookie that names a session.
pub(crate) const SESSION_COOKIE: &str = "slipway_session";

/// The cookie that carries the sign-in form's CSRF token before there is a session
/// (double submit: a cross-site form can neither read nor set it).
pub(crate) const SIGNIN_COOKIE: &str = "slipway_signin";

/// Sessions kept at once; past it the one closest to expiry goes, so a flood of sign-ins
/// cannot grow the map without bound.
const MAX_SESSIONS: usize = 10_000;

/// The groups that see every squad: the platform's admins (`slipway_tenancy::ADMINS_GROUP`,
/// repeated here because the portal knows the platform only through its API) and the
/// cluster's masters.
const ADMIN_GROUPS: [&str; 2] = ["slipway:admins", "system:masters"];

/// A signed-in user.
#[derive(Clone)]
pub(crate) struct Session {
    /// The platform token every API call is made with.
    pub(crate) token: String,
    pub(crate) username: String,
    pub(crate) groups: Vec<String>,
    /// What every form of this session must send back.
    pub(crate) csrf: String,
    pub(crate) expires: SystemTime,
}

/// The group a squad's members hold is this and the squad's name
/// (`slipway_tenancy::squad_group`, repeated for the same reason).
const SQUAD_GROUP_PREFIX: &str = "squad:";

impl Session {
    pub(crate) fn is_admin(&self) -> bool {
        self.groups
            .iter()
            .any(|g| ADMIN_GROUPS.contains(&g.as_str()))
    }

    /// Whether the user works in `squad`: a member (or owner) of it.
    pub(crate) fn is_member(&self, squad: &str) -> bool {
        self.groups
            .iter()
            .any(|g| g.strip_prefix(SQUAD_GROUP_PREFIX) == Some(squad))
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("username", &self.username)
            .field("groups", &self.groups)
            .finish_non_exhaustive()
    }
}

/// The live sessions by id.
pub(crate) struct Sessions {
    map: Mutex<HashMap<String, Session>>,
    clock: SharedClock,
    ttl: Duration,
}

/// No randomness was to be had from the operating system.
#[derive(Debug, thiserror::Error)]
#[error("no randomness from the operating system: {0}")]
pub(crate) struct NoRandomness(getrandom::Error);

impl Sessions {
    pub(crate) fn new(clock: SharedClock, ttl: Duration) -> Sessions {
        Sessions {
            map: Mutex::new(HashMap::new()),
            clock,
            ttl,
        }
    }

    pub(crate) fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A new session for `token`; returns its id.
    pub(crate) fn create(
        &self,
        token: String,
        username: String,
        groups: Vec<String>,
    ) -> Result<String, NoRandomness> {
        let id = random_hex()?;
        let now = self.clock.now();
        let session = Session {
            token,
            username,
            groups,
            csrf: random_hex()?,
            expires: now + self.ttl,
        };
        let mut map = self.lock();
        map.retain(|_, s| s.expires > now);
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(id, _)| id.clone())
        {
            map.remove(&oldest);
        }
        map.insert(id.clone(), session);
        Ok(id)
    }

    /// The live session `id`; an expired one is dropped.
    pub(crate) fn get(&self, id: &str) -> Option<Session> {
        let now = self.clock.now();
        let mut map = self.lock();
        match map.get(id) {
            Some(s) if s.expires > now => Some(s.clone()),
            Some(_) => {
                map.remove(id);
                None
            }
            None => None,
        }
    }

    pub(crate) fn remove(&self, id: &str) {
        self.lock().remove(id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        // A panic while holding the lock leaves the map whole (every change is one call),
        // so a poisoned lock is still good to use.
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// 256 random bits as 64 lower-case hex digits.
pub(crate) fn random_hex() -> Result<String, NoRandomness> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(NoRandomness)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Whether `a` and `b` are equal, in time that depends only on their lengths, so a
/// guessed token learns nothing from how fast it is refused.
pub(crate) fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// A `Set-Cookie` value: HttpOnly and SameSite=Strict always, Secure when served over TLS.
pub(crate) fn set_cookie(
    name: &str,
    value: &str,
    path: &str,
    max_age: Duration,
    secure: bool,
) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text = format!(
        "{name}={value}; Path={path}; Max-Age={}; HttpOnly; SameSite=Strict{secure}",
        max_age.as_secs()
    );
    // Names and paths are our constants and values are hex digits, all valid in a header.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Whether `id` looks like one of our ids (so arbitrary cookie text never reaches a map).
pub(crate) fn well_formed(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparison_is_exact() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "abcd"));
        assert!(!same("", "a"));
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; slipway_session=xyz"),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("xyz"));
        assert_eq!(cookie(&headers, "b"), None);
    }
}
