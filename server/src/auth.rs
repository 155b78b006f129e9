//! Who is calling: sign-in with argon2id passwords, server-side sessions, API tokens and share
//! links, each turned into an [`app::domain::access::Principal`] that the one permission check
//! (`app::domain::access::check`) judges.
//!
//! Secrets are 32 random bytes, handed out once as hex; only their SHA-256 is stored. Passwords
//! are hashed with argon2id. Neither ever reaches a log line or a response other than the one
//! that hands it out.

use crate::clock::Clock;
use crate::random::new_secret;
use crate::store::{Credentials, Holder, LoginTally, Store};
use app::domain::access::{Principal, Role};
use app::domain::units::{Span, Timestamp};
use app::error::AppError;
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::http::HeaderMap;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod accounts;

/// The session cookie: HttpOnly, SameSite=Lax; behind HTTPS Secure and `__Host-` prefixed
/// ([`session_cookie_name`]).
pub const SESSION_COOKIE: &str = "rampart_session";
const HOST_SESSION_COOKIE: &str = "__Host-rampart_session";

/// The session cookie's name for a request: `__Host-` prefixed over HTTPS (no other host, and no
/// plain-HTTP page, can set it), and only that name is read there.
pub fn session_cookie_name(headers: &HeaderMap) -> &'static str {
    if crate::net::over_https(headers) { HOST_SESSION_COOKIE } else { SESSION_COOKIE }
}

/// The session id a request carries, under the name its scheme uses.
pub fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    cookie(headers, session_cookie_name(headers))
}
/// The share-link cookie: opens one rollout's status page.
pub const SHARE_COOKIE: &str = "rampart_share";
/// The device cookie: set at a successful sign-in, it lets this browser through the account's
/// cap on failures from everywhere ([`throttled_until`]), for [`DEVICE_LIFE`]. `__Host-`
/// prefixed over HTTPS, as the session cookie is, so no sibling host can plant one.
pub const DEVICE_COOKIE: &str = "rampart_device";
const HOST_DEVICE_COOKIE: &str = "__Host-rampart_device";

/// The device cookie's name for a request (see [`session_cookie_name`]).
pub fn device_cookie_name(headers: &HeaderMap) -> &'static str {
    if crate::net::over_https(headers) { HOST_DEVICE_COOKIE } else { DEVICE_COOKIE }
}
pub const DEVICE_LIFE: Span = Span::from_secs(180 * 86_400);

/// Failed sign-ins of one account from one address before waits begin; past them, each
/// failure doubles the wait, from [`FIRST_WAIT`] up to [`FAILURE_WINDOW`]. Failures from one
/// address never make another wait, so nobody can lock an account's owner out from elsewhere.
const FREE_FAILURES: i64 = 5;
const FIRST_WAIT: Span = Span::from_secs(30);
/// Failed sign-ins allowed within [`FAILURE_WINDOW`] for one account from all addresses (a
/// guesser spread over many), and from one address for all accounts. A browser that signed in
/// to the account before (its device cookie) is not held by the account's cap: a guesser who
/// fills it locks out only browsers the owner never used.
const MAX_FAILURES_PER_ACCOUNT: i64 = 100;
const MAX_FAILURES_PER_ADDRESS: i64 = 20;
const FAILURE_WINDOW: Span = Span::from_secs(15 * 60);

/// When a sign-in with this tally of recent failures may be tried again, if not now;
/// `known_device`: the browser signed in to this account before.
pub fn throttled_until(tally: &LoginTally, now: Timestamp, known_device: bool) -> Option<Timestamp> {
    let window = FAILURE_WINDOW.millis();
    let mut free_at = None::<i64>;
    let mut wait_for = |at: i64| free_at = Some(free_at.map_or(at, |f| f.max(at)));
    if tally.pair >= FREE_FAILURES {
        let doublings = (tally.pair - FREE_FAILURES).min(20) as u32;
        let wait = (FIRST_WAIT.millis() << doublings).min(window);
        wait_for(tally.pair_last.unwrap_or(now).millis() + wait);
    }
    if tally.by_name >= MAX_FAILURES_PER_ACCOUNT && !known_device {
        wait_for(tally.by_name_oldest.unwrap_or(now).millis() + window);
    }
    if tally.by_address >= MAX_FAILURES_PER_ADDRESS {
        wait_for(tally.by_address_oldest.unwrap_or(now).millis() + window);
    }
    free_at.filter(|at| *at > now.millis()).map(Timestamp)
}
/// How a throttled sign-in's refusal begins (the sign-in page tells it from a busy one by this).
pub const THROTTLED: &str = "too many failed sign-ins;";
/// How a sign-in refused for want of a hashing slot begins.
pub const BUSY: &str = "the server is busy checking other sign-ins;";
/// Password hashes computed at once (argon2id takes ~19 MiB each): a burst of sign-ins waits
/// its turn, for at most [`HASHING_WAIT`], instead of exhausting memory.
pub const HASHING_AT_ONCE: usize = 4;
const HASHING_WAIT: Duration = Duration::from_secs(2);
/// How long a token lookup is trusted before asking Postgres again (a revocation made on
/// another server process takes effect within this).
const TOKEN_CACHE_TTL: Duration = Duration::from_secs(5);
pub const MIN_PASSWORD_LEN: usize = 12;
/// How long the first admin's set-password link works (once).
pub const SETUP_LINK_LIFE: Span = Span::from_secs(24 * 3600);

/// What is stored for a secret.
pub fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

pub fn hash_password(password: &str) -> Result<String, AppError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|_| AppError::Internal)?;
    let salt = SaltString::encode_b64(&salt).map_err(|_| AppError::Internal)?;
    Argon2::default().hash_password(password.as_bytes(), &salt).map(|h| h.to_string()).map_err(|_| AppError::Internal)
}

fn verify_password(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored).is_ok_and(|hash| Argon2::default().verify_password(password.as_bytes(), &hash).is_ok())
}

/// A hash no password matches, verified against when the account does not exist so that a
/// wrong name takes as long as a wrong password.
static DECOY_HASH: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| hash_password(&new_secret()).unwrap_or_default());

/// The longest name a person may have.
const MAX_NAME: usize = 100;

/// A name as typed at sign-in, made safe to count and to record: blanks trimmed, control
/// characters dropped, at most [`MAX_NAME`] characters (then `…`). A real name is unchanged.
fn typed_name(typed: &str) -> String {
    let clean: String = typed.trim().chars().filter(|c| !c.is_control()).collect();
    match clean.char_indices().nth(MAX_NAME) {
        Some((cut, _)) => format!("{}…", &clean[..cut]),
        None => clean,
    }
}

pub fn check_password_rules(password: &str) -> Result<(), AppError> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(AppError::invalid("password", format!("must be at least {MIN_PASSWORD_LEN} characters")));
    }
    Ok(())
}

/// Token lookups by digest: when fetched, and who holds the token (`None`: nobody, or revoked).
type TokenCache = HashMap<[u8; 32], (Instant, Option<Holder>)>;

/// Sign-in, sessions, tokens and share links.
#[derive(Clone)]
pub struct Auth {
    store: Store,
    clock: Clock,
    session_ttl: Span,
    tokens: Arc<Mutex<TokenCache>>,
    hashing: Arc<tokio::sync::Semaphore>,
}

/// A new session: the cookie value, handed to the browser once.
pub struct NewSession {
    pub id: SecretString,
    pub name: String,
    pub max_age_secs: i64,
    /// A new device cookie for this browser, unless it presented a valid one.
    pub device: Option<SecretString>,
}

impl Auth {
    pub fn new(store: Store, clock: Clock, session_ttl: Span) -> Auth {
        Auth { store, clock, session_ttl, tokens: Arc::default(), hashing: Arc::new(tokio::sync::Semaphore::new(HASHING_AT_ONCE)) }
    }

    fn now(&self) -> Timestamp {
        (self.clock)()
    }

    /// Creates the first admin when there are no users: with the configured password, or else
    /// with none usable and a one-time set-password link, valid for [`SETUP_LINK_LIFE`], whose
    /// secret is returned (to be printed once as `/setup/<secret>`; only its hash is stored).
    pub async fn bootstrap_admin(&self, configured: Option<&SecretString>) -> anyhow::Result<Option<SecretString>> {
        if self.store.user_count().await? > 0 {
            return Ok(None);
        }
        let password = match configured {
            Some(p) => p.clone(),
            // Nobody ever learns this one: the admin chooses a password through the link.
            None => SecretString::from(new_secret()),
        };
        check_password_rules(password.expose_secret()).map_err(|e| anyhow::anyhow!("RAMPART_ADMIN_PASSWORD {e}"))?;
        let hash = hash_password(password.expose_secret()).map_err(|_| anyhow::anyhow!("could not hash the admin password"))?;
        let (now, system) = (self.now(), crate::actors::SYSTEM_ACTOR);
        if configured.is_some() {
            self.store.create_user("admin", Role::Admin, &hash, system, now).await?;
            return Ok(None);
        }
        // The account and its link together: never an admin nobody can sign in as.
        let secret = new_secret();
        let expires = Timestamp(now.millis() + SETUP_LINK_LIFE.millis());
        let admin = self.store.create_user_with_setup_link("admin", Role::Admin, &hash, system, now, &digest(&secret), expires).await?;
        // Another replica made the first admin meanwhile: its link is the one printed.
        Ok(admin.map(|_| SecretString::from(secret)))
    }

    /// A new one-time set-password link for `name` (`rampart users setup-link`); its secret.
    pub async fn new_setup_link(&self, name: &str) -> anyhow::Result<SecretString> {
        let user = self.store.users().await?.into_iter().find(|u| u.name == name && !u.disabled);
        let user = user.ok_or_else(|| anyhow::anyhow!("no active person is named `{name}`"))?;
        let (secret, now) = (new_secret(), self.now());
        self.store.create_setup_link(user.id, &digest(&secret), now, Timestamp(now.millis() + SETUP_LINK_LIFE.millis())).await?;
        Ok(SecretString::from(secret))
    }

    /// Whom a set-password link is for, while it can be used.
    pub async fn setup_link_user(&self, secret: &str) -> Result<Option<String>, AppError> {
        Ok(self.store.setup_link_user(&digest(secret), self.now()).await?)
    }

    /// Sets the password through a one-time link and signs its person in. `Ok(None)` when the
    /// link was used, has expired, or never was.
    pub async fn use_setup_link(&self, secret: &str, password: &str, address: &str) -> Result<Option<NewSession>, AppError> {
        check_password_rules(password)?;
        let hash = hash_off_thread(password.to_string()).await?;
        match self.store.use_setup_link(&digest(secret), &hash, self.now()).await? {
            Some(user) => Ok(Some(self.start_session(&user, address).await?)),
            None => Ok(None),
        }
    }

    /// Who sent these headers: a bearer token or `X-API-Key` first, then the session cookie,
    /// then a share-link cookie. A token that is unknown or revoked is refused outright rather
    /// than treated as anonymous, so a script learns its token is bad.
    pub async fn resolve(&self, headers: &HeaderMap) -> Result<Principal, AppError> {
        if let Some(token) = bearer_token(headers) {
            return match self.token_holder(&token).await? {
                Some(holder) => Ok(principal(holder)),
                None => Err(AppError::Unauthenticated { message: "the API token is unknown or revoked".into() }),
            };
        }
        if let Some(session) = session_cookie(headers)
            && let Some(holder) = self.store.session_user(&digest(session), self.now()).await?
        {
            return Ok(principal(holder));
        }
        if let Some(link) = cookie(headers, SHARE_COOKIE)
            && let Some(holder) = self.store.share_link(&digest(link), self.now()).await?
        {
            return Ok(principal(holder));
        }
        Ok(Principal::Anonymous)
    }

    async fn token_holder(&self, token: &str) -> Result<Option<Holder>, AppError> {
        let key = digest(token);
        if let Some((at, holder)) = self.tokens.lock().expect("token cache").get(&key)
            && at.elapsed() < TOKEN_CACHE_TTL
        {
            return Ok(holder.clone());
        }
        let holder = self.store.use_token(&key, self.now()).await?;
        let mut cache = self.tokens.lock().expect("token cache");
        if cache.len() > 10_000 {
            cache.clear();
        }
        cache.insert(key, (Instant::now(), holder.clone()));
        Ok(holder)
    }

    /// Checks a password and starts a session. Failed attempts are counted per account and
    /// address together, per account and per address ([`throttled_until`]); while throttled
    /// every attempt (right or wrong) is refused with the wait left.
    /// The attempt is claimed (counted as a failure until it succeeds) atomically before the
    /// password is hashed, so concurrent attempts cannot all slip under the limit; and at most
    /// [`HASHING_AT_ONCE`] hashes run at once, so a burst cannot exhaust memory.
    pub async fn login(&self, name: &str, password: &str, address: &str, device: Option<&str>) -> Result<NewSession, AppError> {
        // What was typed goes into the throttle and the audit trail: bounded, one line.
        let name = &typed_name(name);
        let now = self.now();
        let since = Timestamp(now.millis() - FAILURE_WINDOW.millis());
        let known_device = match device {
            Some(device) => self.store.is_trusted_device(&digest(device), name, now).await?,
            None => false,
        };
        // The cheap, atomic check first: a throttled caller never waits for a hashing slot.
        let refuse = |tally: &LoginTally| throttled_until(tally, now, known_device);
        let claim = match self.store.claim_login_attempt(name, address, now, since, refuse).await? {
            Ok(claim) => claim,
            Err(free_at) => {
                let wait = ((free_at.millis() - now.millis()).max(1000) + 999) / 1000;
                return Err(AppError::TooManyRequests {
                    message: format!("{THROTTLED} try again in {wait} s"),
                    retry_after_secs: wait as u64,
                });
            }
        };
        let Ok(Ok(_permit)) = tokio::time::timeout(HASHING_WAIT, self.hashing.clone().acquire_owned()).await else {
            // Not judged: the attempt does not count against anyone.
            self.store.release_login_attempt(claim).await?;
            return Err(AppError::TooManyRequests { message: format!("{BUSY} try again in 1 s"), retry_after_secs: 1 });
        };
        let user = self.store.credentials(name).await?;
        let stored = user.as_ref().map_or_else(|| DECOY_HASH.clone(), |u| u.password_hash.clone());
        let candidate = password.to_string();
        let matches = tokio::task::spawn_blocking(move || verify_password(&candidate, &stored)).await.unwrap_or(false);
        let Some(user) = user.filter(|_| matches) else {
            self.store.record_login_failure(name, address).await?;
            return Err(AppError::Unauthenticated { message: "wrong name or password".into() });
        };
        let mut session = self.start_session(&user, address).await?;
        if !known_device {
            let device = new_secret();
            self.store.trust_device(&digest(&device), name, now, Timestamp(now.millis() + DEVICE_LIFE.millis())).await?;
            session.device = Some(SecretString::from(device));
        }
        Ok(session)
    }

    async fn start_session(&self, user: &Credentials, address: &str) -> Result<NewSession, AppError> {
        let now = self.now();
        let id = new_secret();
        let expires = Timestamp(now.millis() + self.session_ttl.millis());
        self.store.create_session(&digest(&id), user, address, now, expires).await?;
        Ok(NewSession { id: SecretString::from(id), name: user.name.clone(), max_age_secs: self.session_ttl.secs(), device: None })
    }

    /// Ends the session in these headers (or all of its user's, with `everywhere`).
    pub async fn logout(&self, headers: &HeaderMap, everywhere: bool) -> Result<(), AppError> {
        if let Some(session) = session_cookie(headers) {
            self.store.end_session(&digest(session), everywhere).await?;
        }
        Ok(())
    }

    pub async fn set_password(&self, user_id: i64, password: &str, actor: &str) -> Result<(), AppError> {
        check_password_rules(password)?;
        let hash = hash_off_thread(password.to_string()).await?;
        self.store.set_password(user_id, &hash, actor).await.map_err(AppError::from)
    }

    /// The rollout a share link opens, if it is valid.
    pub async fn share_link_rollout(&self, secret: &str) -> Result<Option<i64>, AppError> {
        Ok(match self.store.share_link(&digest(secret), self.now()).await? {
            Some(Holder::ShareLink { rollout_id, .. }) => Some(rollout_id),
            _ => None,
        })
    }
}

async fn hash_off_thread(password: String) -> Result<String, AppError> {
    tokio::task::spawn_blocking(move || hash_password(&password)).await.map_err(|_| AppError::Internal)?
}

fn valid_user_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
}

fn principal(holder: Holder) -> Principal {
    match holder {
        Holder::User { id, name, role } => Principal::User { id, name, role },
        Holder::Token { id, name, scopes } => Principal::Token { id, name, scopes },
        Holder::ShareLink { id, rollout_id } => Principal::ShareLink { id, rollout_id },
    }
}

/// `Authorization: Bearer …` or, for OFREP clients, `X-API-Key: …`.
pub fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let bearer = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim);
    let key = headers.get("x-api-key").and_then(|v| v.to_str().ok()).map(str::trim);
    bearer.or(key).filter(|t| !t.is_empty()).map(str::to_string)
}

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests;
