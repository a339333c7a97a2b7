//! The caller's own account: user details (username, names) and profile text fields.

use crate::domain::fields::{Data, FieldErrors};
use crate::domain::model::{User, UserUpdate};
use crate::domain::requests;
use crate::domain::user;
use crate::domain::user::USERNAME_TAKEN;
use crate::domain::Result;
use crate::error::Error;
use crate::store::{Store, StoreError};

pub const AVATAR_NOT_A_FILE: &str = "The submitted data was not a file. Check the encoding type on the form.";

/// `PUT|PATCH /api/auth/user/`: username (own one accepted), first and last name.
pub async fn update_user_details(store: &dyn Store, me: &User, data: &Data, partial: bool) -> Result<User> {
    let mut errors = FieldErrors::new();
    use requests::user_details as fields;
    let username_field = if partial { fields::USERNAME.partial() } else { fields::USERNAME };
    let username = user::read_username(store, username_field, data, &mut errors, Some(me.id)).await?;
    let first_name = fields::FIRST_NAME.read(data, &mut errors);
    let last_name = fields::LAST_NAME.read(data, &mut errors);
    errors.into_result()?;
    let update =
        UserUpdate { username: username.filter(|u| *u != me.username), first_name, last_name, ..Default::default() };
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
