//! Password change and password reset (request and confirm): plain async functions over the
//! store and mail traits, with dj-rest-auth's fields, order of checks and messages.
//!
//! Both write the new hash first, compare-and-set on the hash the request was checked against
//! (of two changes or confirms made from the same state, one wins; a reset token works once),
//! and the password version goes up in the same write: from that instant every session opened
//! under the old password is refused by every authenticated read, refresh and session start,
//! including a login that raced the change. Deleting those sessions afterwards only tidies up.

use std::net::IpAddr;

use crate::config::PasswordResetConfig;
use crate::domain::fields::{is_valid_email, Data, FieldErrors, INVALID_EMAIL};
use crate::domain::model::{username_key, PasswordReplacement, User};
use crate::domain::password;
use crate::domain::password::blocking;
use crate::domain::requests;
use crate::domain::reset_token::{from_base36, to_base36, ResetTokens};
use crate::domain::sessions::Authenticated;
use crate::domain::throttle::reserve;
use crate::domain::throttle::{self, Limits};
use crate::domain::{now, Result};
use crate::error::Error;
use crate::mail::{Mail, Mailer};
use crate::store::{Store, StoreError};
use crate::telemetry::{self, names};

pub const PASSWORD_CHANGED: &str = "New password has been saved.";
pub const RESET_SENT: &str = "Password reset e-mail has been sent.";
pub const RESET_DONE: &str = "Password has been reset with the new password.";
pub const WRONG_OLD_PASSWORD: &str = "Your old password was entered incorrectly. Please enter it again.";
/// Django's form message, with the typographic apostrophe (U+2019).
pub const PASSWORDS_DIFFER: &str = "The two password fields didn\u{2019}t match.";
pub const INVALID_VALUE: &str = "Invalid value";
/// Django's `SetPasswordForm.clean_new_password2` then `validate_password(new, user)`: a
/// mismatch alone, else every failing validator (similarity first, as in the settings), all
/// under `new_password2`.
fn check_new_password(user: &User, new1: &str, new2: &str) -> Result<()> {
    if new1 != new2 {
        return Err(Error::field("new_password2", PASSWORDS_DIFFER));
    }
    let mut errors = FieldErrors::new();
    let attributes = password::Attributes {
        username: &user.username,
        email: &user.email,
        first_name: &user.first_name,
        last_name: &user.last_name,
    };
    if let Some(problem) = password::similarity_problem(new2, &attributes) {
        errors.add("new_password2", problem);
    }
    for problem in password::field_problems(new2) {
        errors.add("new_password2", problem);
    }
    Ok(errors.into_result()?)
}

/// Stores the new hash if the stored one is still `user`'s (see the module note), then ends the
/// sessions of the old password (all but `keep`). `Stale` when another change won.
async fn replace_password(
    store: &dyn Store,
    user: &User,
    new_password: String,
    keep: Option<&str>,
) -> Result<std::result::Result<(), StoreError>> {
    let hash = blocking(move || password::hash(&new_password)).await?;
    let replacement = PasswordReplacement {
        user_id: user.id,
        expected_hash: user.password_hash.clone(),
        new_hash: hash,
        new_version: true,
        keep_session: keep.map(str::to_string),
    };
    match store.replace_password_hash(replacement).await {
        Ok(_) => {}
        Err(e @ StoreError::Stale) => return Ok(Err(e)),
        Err(StoreError::UserNotFound) => return Err(Error::UserNotFound),
        Err(e) => return Err(e.into()),
    }
    // Already refused everywhere by their version; deleting them is housekeeping, so a failure
    // here is logged, not reported (the password did change).
    if let Err(e) = store.end_sessions(user.id, keep).await {
        tracing::warn!(user_id = user.id, error = %e, "sessions of the old password not deleted");
    }
    Ok(Ok(()))
}

/// `POST /api/auth/password/change/`: the caller's other sessions end, this one continues. A
/// wrong old password counts as a failed login of the account (same counters, same 429): a
/// stolen access token must not become an unthrottled password oracle.
pub async fn change_password(
    store: &dyn Store,
    me: &Authenticated,
    data: &Data,
    limits: &Limits,
    client_ip: Option<IpAddr>,
) -> Result<()> {
    let mut errors = FieldErrors::new();
    use requests::password_change as fields;
    let old = fields::OLD_PASSWORD.read(data, &mut errors);
    let new1 = fields::NEW_PASSWORD1.read(data, &mut errors);
    let new2 = fields::NEW_PASSWORD2.read(data, &mut errors);
    // `validate_old_password` is a field validator: it runs whenever the field itself is fine,
    // and its error is reported alongside the other fields' errors.
    if let Some(old) = old {
        let rules = limits.password_check(&username_key(&me.user.username), client_ip);
        let reservation = reserve(store, &rules, None, now()).await?;
        let stored = me.user.password_hash.clone();
        if blocking(move || password::verify(&old, &stored)).await? {
            store.release(&reservation).await?;
        } else {
            errors.add(fields::OLD_PASSWORD.name, WRONG_OLD_PASSWORD);
        }
    }
    errors.into_result()?;
    let (Some(new1), Some(new2)) = (new1, new2) else {
        return Err(Error::Internal("password change fields missing after validation".into()));
    };
    check_new_password(&me.user, &new1, &new2)?;
    match replace_password(store, &me.user, new2, me.session.as_ref().map(|s| s.id.as_str())).await? {
        Ok(()) => Ok(()),
        // Changed by a parallel request since this one was checked: its old password is no longer
        // the stored one.
        Err(_) => Err(Error::field("old_password", WRONG_OLD_PASSWORD)),
    }
}

/// The reset link and message for `user`.
pub fn reset_mail(config: &PasswordResetConfig, from: &str, tokens: &ResetTokens, user: &User, now: i64) -> Mail {
    let link = config.url.replace("{uid}", &to_base36(user.id)).replace("{token}", &tokens.make(user, now));
    // `{link}` first: a username can't smuggle in a placeholder (and can't hold braces anyway).
    let text = config.text.replace("{link}", &link).replace("{username}", &user.username);
    Mail { from: from.to_string(), to: user.email.clone(), subject: config.subject.clone(), text }
}

/// `POST /api/auth/password/reset/`: one e-mail per active user with the address; the same
/// answer whether there is any. A failed delivery is logged, not reported (that would tell).
#[allow(clippy::too_many_arguments)]
pub async fn request_reset(
    store: &dyn Store,
    mailer: &dyn Mailer,
    tokens: &ResetTokens,
    config: &PasswordResetConfig,
    from: &str,
    data: &Data,
    limits: &Limits,
    client_ip: Option<IpAddr>,
) -> Result<()> {
    let mut errors = FieldErrors::new();
    let field = requests::password_reset::EMAIL;
    let email = field.read(data, &mut errors);
    if let Some(address) = &email {
        if !is_valid_email(address) {
            errors.add(field.name, INVALID_EMAIL);
        }
    }
    errors.into_result()?;
    let email = email.unwrap_or_default();
    let now = now();
    // Every request counts, known address or not, so a 429 tells nothing about the address.
    let rules = throttle::rules(&[
        ("reset:ip", &throttle::ip_subject(client_ip), limits.reset_requests_per_ip),
        ("reset:address", &email.to_lowercase(), limits.reset_requests_per_address),
    ]);
    reserve(store, &rules, None, now).await?;
    for user in store.find_active_users_by_email(&email).await? {
        let mail = reset_mail(config, from, tokens, &user, now);
        match mailer.send(&mail).await {
            Ok(message_id) => {
                telemetry::count(names::PASSWORD_RESET_MAIL_SENT);
                tracing::info!(user_id = user.id, %message_id, "password reset e-mail sent")
            }
            Err(e) => {
                telemetry::count(names::PASSWORD_RESET_MAIL_FAILED);
                tracing::error!(user_id = user.id, error = %e, "password reset e-mail not sent")
            }
        }
    }
    Ok(())
}

/// `POST /api/auth/password/reset/confirm/`: a valid token sets the new password and ends every
/// session of the user. A refused confirm changes nothing, so the token stays usable.
pub async fn confirm_reset(store: &dyn Store, tokens: &ResetTokens, data: &Data) -> Result<()> {
    let mut errors = FieldErrors::new();
    use requests::password_reset_confirm as fields;
    let new1 = fields::NEW_PASSWORD1.read(data, &mut errors);
    let new2 = fields::NEW_PASSWORD2.read(data, &mut errors);
    let uid = fields::UID.read(data, &mut errors);
    let token = fields::TOKEN.read(data, &mut errors);
    errors.into_result()?;
    let (Some(new1), Some(new2), Some(uid), Some(token)) = (new1, new2, uid, token) else {
        return Err(Error::Internal("reset confirm fields missing after validation".into()));
    };
    let user = match from_base36(&uid) {
        Some(id) => store.get_user(id).await?,
        None => None,
    };
    // An inactive account can't sign in, so it gets no new password either.
    let Some(user) = user.filter(|u| u.is_active) else { return Err(Error::field("uid", INVALID_VALUE)) };
    if !tokens.check(&user, &token, now()) {
        return Err(Error::field("token", INVALID_VALUE));
    }
    check_new_password(&user, &new1, &new2)?;
    match replace_password(store, &user, new2, None).await? {
        Ok(()) => Ok(()),
        // A parallel confirm with the same token won: the token was made from a hash that is no
        // longer stored, so it is spent.
        Err(_) => Err(Error::field("token", INVALID_VALUE)),
    }
}
