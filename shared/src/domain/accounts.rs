//! The account operations behind the endpoints: plain async functions over the store traits.
//! They return domain values; the HTTP layer decides the JSON shapes.

use crate::domain::fields::{is_valid_email, CharField, Data, FieldErrors, INVALID_EMAIL};
use crate::domain::model::{
    LogoutOutcome, NewUser, RotateOutcome, Rotation, Session, SpentToken, User, UserUpdate,
};
use crate::domain::model::username_key;
use crate::domain::password;
use crate::domain::throttle::{self, Limits};
use crate::domain::tokens::{Claims, TokenPair, TokenProblem, TokenService, TokenType};
use crate::domain::user::{
    is_valid_username, normalize_username, EMAIL_TAKEN, INVALID_USERNAME, MAX_USERNAME_LENGTH, USERNAME_TAKEN,
};
use crate::error::Error;
use crate::store::{Store, StoreError};

use std::net::IpAddr;

pub type Result<T> = std::result::Result<T, Error>;

pub const PASSWORDS_DIFFER_AT_REGISTRATION: &str = "The two password fields didn't match.";
pub const BAD_CREDENTIALS: &str = "Unable to log in with provided credentials.";
pub const MUST_INCLUDE: &str = "Must include \"username\" and \"password\".";
pub const NICKNAME_MAX: usize = 50;
pub const SIGNATURE_MAX: usize = 255;
pub const NAME_MAX: usize = 150;
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

/// Password hashes running at once: one per CPU. More would not finish sooner, they would only
/// hold more memory (argon2id takes 19 MiB each), which the allocator then keeps: a burst of 64
/// logins took the local server to 1.2 GB. Extra requests wait here, in arrival order.
static HASHING: std::sync::LazyLock<tokio::sync::Semaphore> = std::sync::LazyLock::new(|| {
    tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
});

/// Password hashing is CPU-bound: run it beside the async runtime, not on it, and at most one
/// per CPU at a time.
pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    let _permit = HASHING.acquire().await.map_err(|e| Error::Internal(format!("hashing queue closed: {e}")))?;
    tokio::task::spawn_blocking(f).await.map_err(|e| Error::Internal(format!("blocking task failed: {e}")))
}

/// Reads and checks a username field: length, characters, and (unless it is `own`) uniqueness.
async fn read_username(
    store: &dyn Store,
    field: CharField,
    data: &Data,
    errors: &mut FieldErrors,
    own_id: Option<u64>,
) -> Result<Option<String>> {
    let Some(raw) = field.max_length(MAX_USERNAME_LENGTH).read(data, errors) else { return Ok(None) };
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
    if !limits.registrations_per_ip.is_off() {
        let key = throttle::counter("registration:ip", &throttle::ip_subject(client_ip), limits.registrations_per_ip);
        let now = now();
        throttle::refuse_if_over(limits.registrations_per_ip, store.hit(&key, now).await?, now)?;
    }
    let mut errors = FieldErrors::new();
    let username = read_username(store, CharField::required("username"), data, &mut errors, None).await?;
    let mut email = CharField::optional("email").allow_blank(false).read(data, &mut errors);
    if let Some(address) = email.take() {
        if !is_valid_email(&address) {
            errors.add("email", INVALID_EMAIL);
        } else if store.email_in_use(&address).await? {
            errors.add("email", EMAIL_TAKEN);
        } else {
            email = Some(address.to_lowercase());
        }
    }
    let password1 = CharField::required("password1").read(data, &mut errors);
    if let Some(p) = &password1 {
        add_password_problems(&mut errors, "password1", p);
    }
    let password2 = CharField::required("password2").read(data, &mut errors);
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
    let mut refresh_claims = tokens.refresh_claims(0, &session_id, now);
    let session = Session {
        id: session_id,
        user_id: 0,
        refresh_jti: refresh_claims.jti.clone(),
        created_at: now,
        expires_at: refresh_claims.exp,
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
    Ok((user, tokens.sign_pair(refresh_claims)))
}

/// `POST /api/auth/login/`: checks the credentials and starts a session. Failed attempts count
/// per account and per client IP; at a limit even the right password is refused.
pub async fn login(
    store: &dyn Store,
    tokens: &TokenService,
    data: &Data,
    limits: &Limits,
    client_ip: Option<IpAddr>,
) -> Result<(User, TokenPair)> {
    let mut errors = FieldErrors::new();
    let username = CharField::optional("username").read(data, &mut errors);
    let password = CharField::required("password").read(data, &mut errors);
    errors.into_result()?;
    let (Some(username), Some(password)) = (username.filter(|u| !u.is_empty()), password) else {
        return Err(Error::non_field(MUST_INCLUDE));
    };

    let username = normalize_username(&username);
    let now = now();
    let per_account = throttle::counter("login-fail:account", &username_key(&username), limits.login_failures_per_account);
    let per_ip = throttle::counter("login-fail:ip", &throttle::ip_subject(client_ip), limits.login_failures_per_ip);
    let (user, seen) = store.login_lookup(&username, &[per_account.clone(), per_ip.clone()], now).await?;
    throttle::refuse_if_reached(limits.login_failures_per_account, seen[0], now)?;
    throttle::refuse_if_reached(limits.login_failures_per_ip, seen[1], now)?;
    // Unknown users are checked against a dummy hash so that they cost the same time.
    let stored_hash = user.as_ref().map_or_else(|| password::dummy_hash().to_string(), |u| u.password_hash.clone());
    let matched = {
        let password = password.clone();
        blocking(move || password::verify(&password, &stored_hash)).await?
    };
    let user = match user {
        Some(user) if matched && user.is_active => user,
        _ => {
            let (a, b) = tokio::join!(store.hit(&per_account, now), store.hit(&per_ip, now));
            a?;
            b?;
            return Err(Error::non_field(BAD_CREDENTIALS));
        }
    };
    if password::needs_rehash(&user.password_hash) {
        let fresh = blocking(move || password::hash(&password)).await?;
        store.set_password_hash(user.id, &fresh).await?;
    }

    let pair = match start_session(store, tokens, user.id, now).await {
        Ok(pair) => pair,
        Err(StoreError::UserNotFound) => return Err(Error::non_field(BAD_CREDENTIALS)),
        Err(e) => return Err(e.into()),
    };
    Ok((User { last_login: Some(now), ..user }, pair))
}

/// A new session of an existing user and its first token pair: what a login does once the
/// password matched (the benchmark's token minter calls it too). `UserNotFound` when the user is gone.
pub async fn start_session(
    store: &dyn Store,
    tokens: &TokenService,
    user_id: u64,
    now: i64,
) -> std::result::Result<TokenPair, StoreError> {
    let session_id = new_session_id();
    let pair = tokens.issue_pair(user_id, &session_id, now);
    let session = Session {
        id: session_id,
        user_id,
        refresh_jti: pair.refresh_claims.jti.clone(),
        created_at: now,
        expires_at: pair.refresh_claims.exp,
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
/// the whole session ends (RFC 9700 §4.14 reuse detection).
pub async fn refresh(
    store: &dyn Store,
    tokens: &TokenService,
    data: &Data,
    missing: MissingRefresh,
    grace: std::time::Duration,
) -> Result<TokenPair> {
    if missing == MissingRefresh::Unauthorized && !data.contains_key("refresh") {
        return Err(Error::NoValidRefreshToken);
    }
    let mut errors = FieldErrors::new();
    let token = CharField::required("refresh").read(data, &mut errors);
    errors.into_result()?;
    let token = token.unwrap_or_default();
    let now = now();
    let claims = tokens.decode(&token, Some(TokenType::Refresh), now).map_err(Error::TokenRejected)?;
    let pair = tokens.issue_pair(claims.user_id(), &claims.sid, now);
    let outcome = store
        .rotate_refresh(Rotation {
            user_id: claims.user_id(),
            session_id: claims.sid.clone(),
            old_jti: claims.jti.clone(),
            old_exp: claims.exp,
            new_jti: pair.refresh_claims.jti.clone(),
            new_exp: pair.refresh_claims.exp,
            now,
        })
        .await?;
    match outcome {
        RotateOutcome::Rotated => Ok(pair),
        RotateOutcome::Blacklisted => reused_refresh(store, tokens, &claims, now, grace).await,
        RotateOutcome::UserMissing | RotateOutcome::UserInactive => Err(Error::NoActiveAccount),
        RotateOutcome::SessionEnded => Err(Error::TokenRejected(TokenProblem::Invalid)),
    }
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
            if user.is_active && session.refresh_jti != claims.jti {
                return Ok(tokens.current_pair(&session));
            }
        }
    } else if store.end_session(&claims.sid).await? {
        tracing::warn!(user_id = claims.user_id(), "spent refresh token reused: session ended");
    }
    Err(Error::TokenRejected(TokenProblem::Blacklisted))
}

/// `POST /api/auth/token/verify/`: any live token of a live session.
pub async fn verify(store: &dyn Store, tokens: &TokenService, data: &Data) -> Result<()> {
    let mut errors = FieldErrors::new();
    let token = CharField::required("token").read(data, &mut errors);
    errors.into_result()?;
    let now = now();
    let claims = tokens.decode(&token.unwrap_or_default(), None, now).map_err(Error::TokenRejected)?;
    if claims.token_type == TokenType::Refresh && store.blacklisted(&claims.jti, now).await?.is_some() {
        return Err(Error::VerifyBlacklisted);
    }
    let (_, session) = store.session_with_user(claims.user_id(), &claims.sid, now).await?;
    if session.is_none() {
        return Err(Error::TokenRejected(TokenProblem::Invalid));
    }
    Ok(())
}

/// `POST /api/auth/logout/`: blacklists the refresh token and ends its session.
pub async fn logout(store: &dyn Store, tokens: &TokenService, data: &Data) -> Result<()> {
    let token = match data.get("refresh") {
        None => return Err(Error::LogoutMissingRefresh),
        Some(serde_json::Value::String(s)) => s.trim().to_string(),
        Some(_) => return Err(Error::LogoutTokenRejected(TokenProblem::Invalid)),
    };
    let now = now();
    let claims = tokens.decode(&token, Some(TokenType::Refresh), now).map_err(Error::LogoutTokenRejected)?;
    let spent = SpentToken { jti: claims.jti.clone(), exp: claims.exp, user_id: claims.user_id(), session_id: claims.sid };
    match store.logout(spent, now).await? {
        LogoutOutcome::LoggedOut => Ok(()),
        LogoutOutcome::AlreadyBlacklisted => Err(Error::LogoutTokenRejected(TokenProblem::Blacklisted)),
    }
}

/// The authentication layer: the user and session behind a Bearer access token.
pub async fn authenticate(store: &dyn Store, tokens: &TokenService, token: &str) -> Result<Authenticated> {
    let now = now();
    let claims = tokens.decode(token, Some(TokenType::Access), now).map_err(Error::AccessTokenRejected)?;
    let (user, session) = store.session_with_user(claims.user_id(), &claims.sid, now).await?;
    let Some(session) = session else { return Err(Error::AccessTokenRejected(TokenProblem::Invalid)) };
    let Some(user) = user else { return Err(Error::UserNotFound) };
    if !user.is_active {
        return Err(Error::UserInactive);
    }
    Ok(Authenticated { user, session, claims })
}

/// `PUT|PATCH /api/auth/user/`: username (own one accepted), first and last name.
pub async fn update_user_details(store: &dyn Store, me: &User, data: &Data, partial: bool) -> Result<User> {
    let mut errors = FieldErrors::new();
    let username_field = if partial { CharField::optional("username").allow_blank(false) } else { CharField::required("username") };
    let username = read_username(store, username_field, data, &mut errors, Some(me.id)).await?;
    let first_name = CharField::optional("first_name").max_length(NAME_MAX).read(data, &mut errors);
    let last_name = CharField::optional("last_name").max_length(NAME_MAX).read(data, &mut errors);
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
    let nickname = CharField::optional("nickname").max_length(NICKNAME_MAX).read(data, errors);
    let signature = CharField::optional("signature").max_length(SIGNATURE_MAX).read(data, errors);
    let avatar = match data.get("avatar") {
        None => None,
        Some(serde_json::Value::Null) => Some(None),
        Some(_) => {
            errors.add("avatar", AVATAR_NOT_A_FILE);
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
