//! Account deletion: `DELETE /api/auth/user/` (the caller, after checking its password) and any
//! other caller that has the user in hand (the admin tool), through [`delete_account`].
//!
//! Order, so that no failure leaves a half-deleted account:
//! 1. the user's avatar objects (the profile's key, its avatar folder and pending direct
//!    uploads): done before the records, because once the records are gone nothing refers to the
//!    objects any more and a failure there could not be retried by anybody. A failure at step 2
//!    leaves the account whole but without its picture, and the user's retry finishes the job;
//! 2. the records, in one atomic write (`AccountStore::delete_user`): user, username, skeleton and
//!    e-mail claims (and on SQLite sessions and blacklist entries). This is the commit point:
//!    every token of the user is refused from here on, because every use reads the user;
//! 3. housekeeping, logged rather than reported (the account is gone either way): the session
//!    items (DynamoDB; see `store/dynamodb/deletion.rs`), and the avatar folders once more, for an
//!    upload that raced the deletion.

use std::net::IpAddr;

use crate::domain::fields::{Data, FieldErrors};
use crate::domain::model::{username_key, User};
use crate::domain::password::{self, blocking};
use crate::domain::requests;
use crate::domain::sessions::Authenticated;
use crate::domain::throttle::{reserve, Limits};
use crate::domain::{now, Result};
use crate::error::Error;
use crate::media::{avatar_prefix_of, upload_key, MediaStore};
use crate::store::{Store, StoreError};

pub const WRONG_PASSWORD: &str = "Your password was entered incorrectly. Please enter it again.";

/// How a deletion ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deletion {
    /// The user's records are gone (and its media, unless the log says otherwise).
    Deleted,
    /// The password changed since the user was read (and checked): nothing was deleted but the
    /// avatar objects.
    PasswordChanged,
    /// Someone else deleted the user first.
    AlreadyGone,
}

/// Deletes `user` (as read moments ago) with everything the service keeps of it; see the module
/// note for the order. A username or e-mail change racing the deletion is followed (the user is
/// read again); a password change is not: the caller checked the old one.
pub async fn delete_account(store: &dyn Store, media: &dyn MediaStore, user: &User) -> Result<Deletion> {
    delete_media(media, user).await?;
    let mut current = user.clone();
    let mut attempts = 0;
    loop {
        attempts += 1;
        match store.delete_user(&current).await {
            Ok(()) => break,
            Err(StoreError::UserNotFound) => return Ok(Deletion::AlreadyGone),
            Err(StoreError::Stale) if attempts < 3 => match store.get_user(user.id).await? {
                None => return Ok(Deletion::AlreadyGone),
                Some(fresh) if fresh.password_hash != user.password_hash => return Ok(Deletion::PasswordChanged),
                Some(fresh) => current = fresh,
            },
            Err(StoreError::Stale) => {
                return Err(Error::Unavailable("the user kept changing during its deletion".into()))
            }
            Err(e) => return Err(e.into()),
        }
    }
    if let Err(e) = store.end_sessions(user.id, None).await {
        tracing::warn!(user_id = user.id, error = %e, "sessions of a deleted user left to expire");
    }
    if let Err(e) = delete_folders(media, user.id).await {
        tracing::error!(user_id = user.id, error = %e, "avatar objects of a deleted user not deleted");
    }
    tracing::info!(user_id = user.id, "account deleted");
    Ok(Deletion::Deleted)
}

/// The profile's avatar (also an imported key outside the user's folder), then the folders.
async fn delete_media(media: &dyn MediaStore, user: &User) -> crate::media::MediaResult<()> {
    if let Some(key) = user.avatar.as_deref().filter(|key| crate::media::is_valid_key(key)) {
        media.delete(key).await?;
    }
    delete_folders(media, user.id).await
}

/// Every object under `avatar/<id>/` and `avatar-uploads/<id>/`.
async fn delete_folders(media: &dyn MediaStore, user_id: u64) -> crate::media::MediaResult<()> {
    for prefix in [avatar_prefix_of(user_id), upload_key(user_id, "")] {
        for entry in media.list(&prefix).await? {
            media.delete(&entry.key).await?;
        }
    }
    Ok(())
}

/// `DELETE /api/auth/user/` with `{"password"}`: the caller's own account. A wrong password counts
/// as a failed login of the account (same counters, same 429), as at password change: a stolen
/// access token must not become an unthrottled password oracle, nor delete the account.
pub async fn delete_own_account(
    store: &dyn Store,
    media: &dyn MediaStore,
    me: &Authenticated,
    data: &Data,
    limits: &Limits,
    client_ip: Option<IpAddr>,
) -> Result<()> {
    let mut errors = FieldErrors::new();
    let field = requests::account_deletion::PASSWORD;
    let password = field.read(data, &mut errors);
    errors.into_result()?;
    let Some(password) = password else {
        return Err(Error::Internal("account deletion password missing after validation".into()));
    };
    let rules = limits.password_check(&username_key(&me.user.username), client_ip);
    let reservation = reserve(store, &rules, None, now()).await?;
    let stored = me.user.password_hash.clone();
    if !blocking(move || password::verify(&password, &stored)).await? {
        return Err(Error::field(field.name, WRONG_PASSWORD));
    }
    store.release(&reservation).await?;
    match delete_account(store, media, &me.user).await? {
        Deletion::Deleted | Deletion::AlreadyGone => Ok(()),
        // Changed by a parallel request since this one was checked: the password given is no
        // longer the account's.
        Deletion::PasswordChanged => Err(Error::field(field.name, WRONG_PASSWORD)),
    }
}
