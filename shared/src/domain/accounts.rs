//! The account operations behind the endpoints: plain async functions over the store traits.
//! They return domain values; the HTTP layer decides the JSON shapes.

use crate::domain::fields::{is_valid_email, Data, Field, FieldErrors, INVALID_EMAIL};
use crate::domain::model::{
    LogoutOutcome, NewUser, PasswordReplacement, RotateOutcome, Rotation, Session, SpentToken, User, UserUpdate,
};
use crate::domain::model::username_key;
use crate::domain::password;
use crate::domain::requests;
use crate::domain::throttle::{self, Limits, Rule, Usage};
use crate::domain::tokens::{Claims, TokenPair, TokenProblem, TokenService, TokenType};
use crate::domain::user::{
    is_valid_username, normalize_username, EMAIL_TAKEN, INVALID_USERNAME, USERNAME_TAKEN,
};
use crate::error::Error;
use crate::store::{Admission, Reservation, Store, StoreError};
use crate::telemetry::{self, names};

use std::net::IpAddr;

pub type Result<T> = std::result::Result<T, Error>;

pub const PASSWORDS_DIFFER_AT_REGISTRATION: &str = "The two password fields didn't match.";
pub const BAD_CREDENTIALS: &str = "Unable to log in with provided credentials.";
pub const MUST_INCLUDE: &str = "Must include \"username\" and \"password\".";
pub const AVATAR_NOT_A_FILE: &str = "The submitted data was not a file. Check the encoding type on the form.";

/// The caller behind a valid access token.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub user: User,
    pub session: Session,
    pub claims: Claims,
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn new_session_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Password hashing admission: one hash per CPU runs, a bounded number wait, the rest are
/// refused at once (503). More running at once would not finish sooner, only hold more memory
/// (argon2id takes 19 MiB each); an unbounded queue let a flood of failed logins delay every
/// other user's login by seconds. Throttling counters are checked before a request gets here.
struct HashQueue {
    running: tokio::sync::Semaphore,
    admitted: std::sync::atomic::AtomicUsize,
    capacity: usize,
}

/// How many password checks may wait per CPU: a waiting login is served within about this many
/// hash durations (argon2id: ~50 ms on one Lambda vCPU). More than one address may fail per
/// minute (10 on 2 CPUs), so a flood from one address cannot fill the queue by itself.
const HASHES_WAITING_PER_CPU: usize = 8;

static HASHING: std::sync::LazyLock<HashQueue> = std::sync::LazyLock::new(|| {
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    HashQueue {
        running: tokio::sync::Semaphore::new(cpus),
        admitted: std::sync::atomic::AtomicUsize::new(0),
        capacity: cpus * (1 + HASHES_WAITING_PER_CPU),
    }
});

/// A place in the hash queue, given back on drop (also when the request is cancelled).
struct QueueTicket(&'static HashQueue);

impl Drop for QueueTicket {
    fn drop(&mut self) {
        self.0.admitted.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

impl HashQueue {
    fn admit(&'static self) -> Result<QueueTicket> {
        let before = self.admitted.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        let ticket = QueueTicket(self);
        if before >= self.capacity {
            return Err(Error::Overloaded);
        }
        Ok(ticket)
    }
}

/// Password hashing is CPU-bound: run it beside the async runtime, not on it, at most one per
/// CPU at a time, and refuse it when too many are waiting already.
pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    let _ticket = HASHING.admit()?;
    let _permit =
        HASHING.running.acquire().await.map_err(|e| Error::Internal(format!("hashing queue closed: {e}")))?;
    tokio::task::spawn_blocking(f).await.map_err(|e| Error::Internal(format!("blocking task failed: {e}")))
}

/// Takes a place in the counters of `rules` before any password work: 429 when one is full.
pub(crate) async fn reserve(store: &dyn Store, rules: &[Rule], known: Option<&[Usage]>, now: i64) -> Result<Reservation> {
    if rules.is_empty() {
        return Ok(Reservation::default());
    }
    match store.reserve(rules, known, now).await? {
        Admission::Admitted(reservation) => Ok(reservation),
        Admission::Refused { retry_after } => Err(throttled(retry_after)),
    }
}

/// A login refused for its credentials, counted for the dashboard.
fn bad_credentials() -> Error {
    telemetry::count(names::LOGIN_FAILED);
    Error::non_field(BAD_CREDENTIALS)
}

/// The 429 of the attempt counters, counted for the dashboard.
fn throttled(retry_after: u64) -> Error {
    telemetry::count(names::REQUEST_THROTTLED);
    Error::Throttled { retry_after }
}

/// Reads and checks a username field: length, characters, and (unless it is `own`) uniqueness.
async fn read_username(
    store: &dyn Store,
    field: Field,
    data: &Data,
    errors: &mut FieldErrors,
    own_id: Option<u64>,
) -> Result<Option<String>> {
    let Some(raw) = field.read(data, errors) else { return Ok(None) };
    let username = normalize_username(&raw);
    if !is_valid_username(&username) {
        errors.add(field.name, INVALID_USERNAME);
        return Ok(None);
    }
    if let Some(existing) = store.find_user_by_username(&username).await? {
        if Some(existing.id) != own_id {
            errors.add(field.name, USERNAME_TAKEN);
            return Ok(None);
        }
    }
    Ok(Some(username))
}

fn add_password_problems(errors: &mut FieldErrors, field: &str, password: &str) {
    for problem in password::field_problems(password) {
        errors.add(field, problem);
    }
}

/// `POST /api/auth/registration/`: creates the user and its first session.
pub async fn register(
    store: &dyn Store,
    tokens: &TokenService,
    data: &Data,
    limits: &Limits,
    client_ip: Option<IpAddr>,
) -> Result<(User, TokenPair)> {
    // Every attempt counts, valid or not (a refused one takes no place).
    let ip = throttle::ip_subject(client_ip);
    reserve(store, &throttle::rules(&[("registration:ip", &ip, limits.registrations_per_ip)]), None, now()).await?;
    let mut errors = FieldErrors::new();
    use requests::registration as fields;
    let username = read_username(store, fields::USERNAME, data, &mut errors, None).await?;
    let mut email = fields::EMAIL.read(data, &mut errors);
    if let Some(address) = email.take() {
        if !is_valid_email(&address) {
            errors.add(fields::EMAIL.name, INVALID_EMAIL);
        } else if store.email_in_use(&address).await? {
            errors.add(fields::EMAIL.name, EMAIL_TAKEN);
        } else {
            email = Some(address.to_lowercase());
        }
    }
    let password1 = fields::PASSWORD1.read(data, &mut errors);
    if let Some(p) = &password1 {
        add_password_problems(&mut errors, fields::PASSWORD1.name, p);
    }
    let password2 = fields::PASSWORD2.read(data, &mut errors);
    errors.into_result()?;
    let (Some(username), Some(password1), Some(password2)) = (username, password1, password2) else {
        return Err(Error::Internal("registration fields missing after validation".into()));
    };
    let email = email.unwrap_or_default();
    // Cross-field checks run once every field is valid on its own, as in the old service.
    if password1 != password2 {
        return Err(Error::non_field(PASSWORDS_DIFFER_AT_REGISTRATION));
    }
    let attributes = password::Attributes { username: &username, email: &email, first_name: "", last_name: "" };
    if let Some(problem) = password::similarity_problem(&password1, &attributes) {
        return Err(Error::non_field(problem));
    }

    let password_hash = blocking(move || password::hash(&password1)).await?;
    let now = now();
    let session_id = new_session_id();
    // The id is allocated by the store, so the tokens are signed after the write.
    let mut refresh_claims = tokens.refresh_claims(0, &session_id, 0, now);
    let session = Session {
        id: session_id,
        user_id: 0,
        refresh_jti: refresh_claims.jti.clone(),
        created_at: now,
        expires_at: refresh_claims.exp,
        password_version: 0,
    };
    let user = match store
        .create_user(NewUser { username, email, password_hash, date_joined: now }, session)
        .await
    {
        Ok(user) => user,
        // Someone took the name or address between the check above and the write.
        Err(StoreError::UsernameTaken) => return Err(Error::field("username", USERNAME_TAKEN)),
        Err(StoreError::EmailTaken) => return Err(Error::field("email", EMAIL_TAKEN)),
        Err(e) => return Err(e.into()),
    };
    refresh_claims.user_id = user.id.to_string();
    telemetry::count(names::USER_REGISTERED);
    Ok((user, tokens.sign_pair(refresh_claims)))
}

/// `POST /api/auth/login/`: checks the credentials and starts a session. Every attempt takes a
/// place per account and per client IP before the password is checked (at a limit even the
/// right password is refused, without hashing); a successful one gives its places back.
pub async fn login(
    store: &dyn Store,
    tokens: &TokenService,
    data: &Data,
    limits: &Limits,
    client_ip: Option<IpAddr>,
) -> Result<(User, TokenPair)> {
    let mut errors = FieldErrors::new();
    let username = requests::login::USERNAME.read(data, &mut errors);
    let password = requests::login::PASSWORD.read(data, &mut errors);
    errors.into_result()?;
    let (Some(username), Some(password)) = (username.filter(|u| !u.is_empty()), password) else {
        return Err(Error::non_field(MUST_INCLUDE));
    };

    let username = normalize_username(&username);
    let now = now();
    let rules = limits.password_check(&username_key(&username), client_ip);
    let (user, usages) = store.login_lookup(&username, &rules, now).await?;
    // Already over a limit: refused without a write.
    if let Some(retry_after) = throttle::refusal(&rules, &usages, now) {
        return Err(throttled(retry_after));
    }
    let reservation = reserve(store, &rules, Some(&usages), now).await?;
    // Unknown users are checked against a dummy hash so that they cost the same time.
    let stored_hash = user.as_ref().map_or_else(|| password::dummy_hash().to_string(), |u| u.password_hash.clone());
    let matched = {
        let (password, stored_hash) = (password.clone(), stored_hash.clone());
        blocking(move || password::verify(&password, &stored_hash)).await?
    };
    // A failure keeps its places in the counters.
    let mut user = match user {
        Some(user) if matched && user.is_active => user,
        _ => return Err(bad_credentials()),
    };
    // A success gives its places back, beside the session's write rather than before it.
    let release = store.release(&reservation);
    if password::needs_rehash(&user.password_hash) {
        let fresh = blocking(move || password::hash(&password)).await?;
        let upgrade = PasswordReplacement {
            user_id: user.id,
            expected_hash: stored_hash,
            new_hash: fresh.clone(),
            new_version: false,
            keep_session: None,
        };
        match store.replace_password_hash(upgrade).await {
            Ok(_) => user.password_hash = fresh,
            // The password changed since it was checked: this login is refused.
            Err(StoreError::Stale | StoreError::UserNotFound) => return Err(bad_credentials()),
            Err(e) => return Err(e.into()),
        }
    }

    // The session is opened under the password version just checked; if the password changed
    // meanwhile, the store refuses it (a login racing a change never outlives it).
    let (released, started) = tokio::join!(release, start_session(store, tokens, user.id, user.password_version, now));
    released?;
    let pair = match started {
        Ok(pair) => pair,
        Err(StoreError::UserNotFound | StoreError::Stale) => return Err(bad_credentials()),
        Err(e) => return Err(e.into()),
    };
    telemetry::count(names::LOGIN_SUCCEEDED);
    Ok((User { last_login: Some(now), ..user }, pair))
}

/// A new session of an existing user and its first token pair: what a login does once the
/// password matched (the benchmark's token minter calls it too). `UserNotFound` when the user is
/// gone, `Stale` when the user's password version is no longer `password_version`.
pub async fn start_session(
    store: &dyn Store,
    tokens: &TokenService,
    user_id: u64,
    password_version: u64,
    now: i64,
) -> std::result::Result<TokenPair, StoreError> {
    let session_id = new_session_id();
    let pair = tokens.issue_pair(user_id, &session_id, password_version, now);
    let session = Session {
        id: session_id,
        user_id,
        refresh_jti: pair.refresh_claims.jti.clone(),
        created_at: now,
        expires_at: pair.refresh_claims.exp,
        password_version,
    };
    store.start_session(session, now).await?;
    Ok(pair)
}

/// How the refresh routes read a missing `refresh` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingRefresh {
    /// `/api/auth/refresh/`: 400 `{"refresh": ["This field is required."]}`.
    FieldError,
    /// `/api/auth/token/refresh/`: 401 "No valid refresh token found.".
    Unauthorized,
}

/// Both refresh routes: spends the refresh token and returns a new pair of the same session.
///
/// A token spent less than `grace` ago answers with the session's current pair (apps on bad
/// networks refresh several times at once); spent longer ago, it is a stolen or replayed token:
/// the whole session ends (RFC 9700 §4.14 reuse detection; docs/api.md#reuse-detection).
pub async fn refresh(
    store: &dyn Store,
    tokens: &TokenService,
    data: &Data,
    missing: MissingRefresh,
    grace: std::time::Duration,
) -> Result<TokenPair> {
    if missing == MissingRefresh::Unauthorized && !data.contains_key(requests::refresh::REFRESH.name) {
        return Err(Error::NoValidRefreshToken);
    }
    let mut errors = FieldErrors::new();
    let token = requests::refresh::REFRESH.read(data, &mut errors);
    errors.into_result()?;
    let token = token.unwrap_or_default();
    let now = now();
    let claims = tokens.decode(&token, Some(TokenType::Refresh), now).map_err(Error::TokenRejected)?;
    // The token's password version first; a session kept by a password change learns its new
    // one from the store and rotates again (once).
    let mut password_version = claims.pwv;
    for _ in 0..2 {
        let pair = tokens.issue_pair(claims.user_id(), &claims.sid, password_version, now);
        let outcome = store
            .rotate_refresh(Rotation {
                user_id: claims.user_id(),
                session_id: claims.sid.clone(),
                old_jti: claims.jti.clone(),
                old_exp: claims.exp,
                new_jti: pair.refresh_claims.jti.clone(),
                new_exp: pair.refresh_claims.exp,
                password_version,
                now,
            })
            .await?;
        return match outcome {
            RotateOutcome::Rotated => Ok(pair),
            RotateOutcome::Blacklisted => reused_refresh(store, tokens, &claims, now, grace).await,
            RotateOutcome::UserMissing | RotateOutcome::UserInactive => Err(Error::NoActiveAccount),
            RotateOutcome::SessionEnded => Err(Error::TokenRejected(TokenProblem::Invalid)),
            RotateOutcome::PasswordVersion(version) if version != password_version => {
                password_version = version;
                continue;
            }
            RotateOutcome::PasswordVersion(_) => Err(Error::TokenRejected(TokenProblem::Invalid)),
        };
    }
    Err(Error::TokenRejected(TokenProblem::Invalid))
}

/// A spent refresh token presented again: the session's current pair within the grace window,
/// otherwise the end of the session.
async fn reused_refresh(
    store: &dyn Store,
    tokens: &TokenService,
    claims: &Claims,
    now: i64,
    grace: std::time::Duration,
) -> Result<TokenPair> {
    let spent = store.blacklisted(&claims.jti, now).await?;
    let within_grace = spent
        .as_ref()
        .is_some_and(|entry| entry.session_id == claims.sid && now - entry.blacklisted_at < grace.as_secs() as i64);
    if within_grace {
        if let (Some(user), Some(session)) = store.session_with_user(claims.user_id(), &claims.sid, now).await? {
            if user.is_active && session.is_valid_for(&user, now) && session.refresh_jti != claims.jti {
                return Ok(tokens.current_pair(&session));
            }
        }
    } else if store.end_session(&claims.sid).await? {
        telemetry::count(names::REFRESH_REUSE_DETECTED);
        tracing::warn!(user_id = claims.user_id(), "spent refresh token reused: session ended");
    }
    Err(Error::TokenRejected(TokenProblem::Blacklisted))
}

/// `POST /api/auth/token/verify/`: any live token of a live session.
pub async fn verify(store: &dyn Store, tokens: &TokenService, data: &Data) -> Result<()> {
    let mut errors = FieldErrors::new();
    let token = requests::token_verify::TOKEN.read(data, &mut errors);
    errors.into_result()?;
    let now = now();
    let claims = tokens.decode(&token.unwrap_or_default(), None, now).map_err(Error::TokenRejected)?;
    if claims.token_type == TokenType::Refresh && store.blacklisted(&claims.jti, now).await?.is_some() {
        return Err(Error::VerifyBlacklisted);
    }
    let (user, session) = store.session_with_user(claims.user_id(), &claims.sid, now).await?;
    match (user, session) {
        (Some(user), Some(session)) if session.is_valid_for(&user, now) => Ok(()),
        _ => Err(Error::TokenRejected(TokenProblem::Invalid)),
    }
}

/// `POST /api/auth/logout/`: blacklists the refresh token and ends its session. A token spent
/// already still ends its session, then answers 401: the victim of a stolen, rotated token who
/// taps "log out" ends the thief's session too (as reuse detection would at a refresh).
pub async fn logout(store: &dyn Store, tokens: &TokenService, data: &Data) -> Result<()> {
    let token = match data.get(requests::logout::REFRESH.name) {
        None => return Err(Error::LogoutMissingRefresh),
        Some(serde_json::Value::String(s)) => s.trim().to_string(),
        Some(_) => return Err(Error::LogoutTokenRejected(TokenProblem::Invalid)),
    };
    let now = now();
    let claims = tokens.decode(&token, Some(TokenType::Refresh), now).map_err(Error::LogoutTokenRejected)?;
    let spent = SpentToken { jti: claims.jti.clone(), exp: claims.exp, user_id: claims.user_id(), session_id: claims.sid };
    let (session_id, user_id) = (spent.session_id.clone(), spent.user_id);
    match store.logout(spent, now).await? {
        LogoutOutcome::LoggedOut => Ok(()),
        LogoutOutcome::AlreadyBlacklisted => {
            if store.end_session(&session_id).await? {
                telemetry::count(names::REFRESH_REUSE_DETECTED);
                tracing::warn!(user_id, "logout with a spent refresh token: session ended");
            }
            Err(Error::LogoutTokenRejected(TokenProblem::Blacklisted))
        }
    }
}

/// The authentication layer: the user and session behind a Bearer access token.
pub async fn authenticate(store: &dyn Store, tokens: &TokenService, token: &str) -> Result<Authenticated> {
    let now = now();
    let claims = tokens.decode(token, Some(TokenType::Access), now).map_err(Error::AccessTokenRejected)?;
    let (user, session) = store.session_with_user(claims.user_id(), &claims.sid, now).await?;
    let Some(session) = session else { return Err(Error::AccessTokenRejected(TokenProblem::Invalid)) };
    let Some(user) = user else { return Err(Error::UserNotFound) };
    // A session of an older password is over, even if the change has not deleted it yet.
    if !session.is_valid_for(&user, now) {
        return Err(Error::AccessTokenRejected(TokenProblem::Invalid));
    }
    if !user.is_active {
        return Err(Error::UserInactive);
    }
    Ok(Authenticated { user, session, claims })
}

/// `PUT|PATCH /api/auth/user/`: username (own one accepted), first and last name.
pub async fn update_user_details(store: &dyn Store, me: &User, data: &Data, partial: bool) -> Result<User> {
    let mut errors = FieldErrors::new();
    use requests::user_details as fields;
    let username_field = if partial { fields::USERNAME.partial() } else { fields::USERNAME };
    let username = read_username(store, username_field, data, &mut errors, Some(me.id)).await?;
    let first_name = fields::FIRST_NAME.read(data, &mut errors);
    let last_name = fields::LAST_NAME.read(data, &mut errors);
    errors.into_result()?;
    let update = UserUpdate { username: username.filter(|u| *u != me.username), first_name, last_name, ..Default::default() };
    apply_update(store, me, update).await
}

/// `PUT|PATCH /api/accounts/profile/` (JSON fields): nickname, signature, `avatar: null`.
/// (Avatar files go through `domain::avatars`, which also tidies the media store.)
pub async fn update_profile(store: &dyn Store, me: &User, data: &Data) -> Result<User> {
    let mut errors = FieldErrors::new();
    let update = read_profile_fields(data, &mut errors);
    errors.into_result()?;
    apply_update(store, me, update).await
}

/// The profile's text fields and `avatar: null`, every failure added to `errors`.
pub fn read_profile_fields(data: &Data, errors: &mut FieldErrors) -> UserUpdate {
    use requests::profile as fields;
    let nickname = fields::NICKNAME.read(data, errors);
    let signature = fields::SIGNATURE.read(data, errors);
    let avatar = match data.get(fields::AVATAR.name) {
        None => None,
        Some(serde_json::Value::Null) => Some(None),
        Some(_) => {
            errors.add(fields::AVATAR.name, AVATAR_NOT_A_FILE);
            None
        }
    };
    UserUpdate { nickname, signature, avatar, ..Default::default() }
}

pub async fn apply_update(store: &dyn Store, me: &User, update: UserUpdate) -> Result<User> {
    if update.is_empty() {
        return Ok(me.clone());
    }
    match store.update_user(me.id, update).await {
        Ok(user) => Ok(user),
        Err(StoreError::UsernameTaken) => Err(Error::field("username", USERNAME_TAKEN)),
        Err(StoreError::UserNotFound) => Err(Error::UserNotFound),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use super::blocking;

    /// A burst of hashes runs at most one per CPU at a time, and every one of them runs.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn hashes_run_at_most_one_per_cpu() {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..cpus * 4)
            .map(|_| {
                let (running, most) = (running.clone(), most.clone());
                tokio::spawn(blocking(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(20));
                    running.fetch_sub(1, Ordering::SeqCst);
                }))
            })
            .collect();
        let mut done = 0;
        for task in tasks {
            task.await.unwrap().unwrap();
            done += 1;
        }
        assert_eq!(done, cpus * 4);
        let most = most.load(Ordering::SeqCst);
        assert!(most <= cpus, "{most} hashes ran at once on {cpus} CPUs");
        assert!(most >= 1);
    }
}
