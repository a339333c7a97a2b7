//! The fields of each endpoint's request body, declared once: the account operations read their
//! fields through these, and the OpenAPI document (`http/openapi.rs`) describes the request
//! bodies from the `FIELDS` tables. Each table lists its fields in the order the operation reads
//! them (a 400 lists failing fields in that order).

use crate::domain::fields::Field;
use crate::domain::user::MAX_USERNAME_LENGTH;

/// dj-rest-auth's serializers bound every password field of change and reset to 128 characters
/// (registration and login leave theirs unbounded).
pub const PASSWORD_MAX: usize = 128;
pub const NAME_MAX: usize = 150;
pub const NICKNAME_MAX: usize = 50;
pub const SIGNATURE_MAX: usize = 255;

const fn password(name: &'static str) -> Field {
    Field::required(name).max_length(PASSWORD_MAX)
}

/// `POST /api/auth/registration/`.
pub mod registration {
    use super::*;
    pub const USERNAME: Field = Field::required("username").max_length(MAX_USERNAME_LENGTH);
    pub const EMAIL: Field = Field::optional("email").allow_blank(false);
    pub const PASSWORD1: Field = Field::required("password1");
    pub const PASSWORD2: Field = Field::required("password2");
    pub const FIELDS: &[Field] = &[USERNAME, EMAIL, PASSWORD1, PASSWORD2];
}

/// `POST /api/auth/login/` (by username only: an `email` field is not read).
pub mod login {
    use super::*;
    pub const USERNAME: Field = Field::optional("username");
    pub const PASSWORD: Field = Field::required("password");
    pub const FIELDS: &[Field] = &[USERNAME, PASSWORD];
}

/// `POST /api/auth/refresh/` and `/api/auth/token/refresh/` (which answers 401 without it).
pub mod refresh {
    use super::*;
    pub const REFRESH: Field = Field::required("refresh");
    pub const FIELDS: &[Field] = &[REFRESH];
}

/// `POST /api/auth/logout/`: a blank or non-string token is refused as an invalid token (401),
/// not as a field.
pub mod logout {
    use super::*;
    pub const REFRESH: Field = Field::required("refresh").allow_blank(true);
    pub const FIELDS: &[Field] = &[REFRESH];
}

/// `POST /api/auth/token/verify/`.
pub mod token_verify {
    use super::*;
    pub const TOKEN: Field = Field::required("token");
    pub const FIELDS: &[Field] = &[TOKEN];
}

/// `PUT /api/auth/user/`; a PATCH takes [`PARTIAL_FIELDS`].
pub mod user_details {
    use super::*;
    pub const USERNAME: Field = Field::required("username").max_length(MAX_USERNAME_LENGTH);
    pub const FIRST_NAME: Field = Field::optional("first_name").max_length(NAME_MAX);
    pub const LAST_NAME: Field = Field::optional("last_name").max_length(NAME_MAX);
    pub const FIELDS: &[Field] = &[USERNAME, FIRST_NAME, LAST_NAME];
    pub const PARTIAL_FIELDS: &[Field] = &[USERNAME.partial(), FIRST_NAME, LAST_NAME];
}

/// `PUT|PATCH /api/accounts/profile/` (PUT is PATCH: every field is optional).
pub mod profile {
    use super::*;
    pub const NICKNAME: Field = Field::optional("nickname").max_length(NICKNAME_MAX);
    pub const SIGNATURE: Field = Field::optional("signature").max_length(SIGNATURE_MAX);
    pub const AVATAR: Field = Field::file("avatar");
    pub const FIELDS: &[Field] = &[NICKNAME, SIGNATURE, AVATAR];
}

/// `POST /api/accounts/profile/avatar/upload/`: the file's size in bytes, at most
/// `AVATAR_MAX_BYTES`.
pub mod avatar_upload {
    use super::*;
    pub const SIZE: Field = Field::integer("size", 1);
    pub const FIELDS: &[Field] = &[SIZE];
}

/// `POST /api/accounts/profile/avatar/confirm/`.
pub mod avatar_confirm {
    use super::*;
    pub const UPLOAD_ID: Field = Field::required("upload_id");
    pub const FIELDS: &[Field] = &[UPLOAD_ID];
}

/// `POST /api/auth/password/change/`.
pub mod password_change {
    use super::*;
    pub const OLD_PASSWORD: Field = password("old_password");
    pub const NEW_PASSWORD1: Field = password("new_password1");
    pub const NEW_PASSWORD2: Field = password("new_password2");
    pub const FIELDS: &[Field] = &[OLD_PASSWORD, NEW_PASSWORD1, NEW_PASSWORD2];
}

/// `POST /api/auth/password/reset/`.
pub mod password_reset {
    use super::*;
    pub const EMAIL: Field = Field::required("email");
    pub const FIELDS: &[Field] = &[EMAIL];
}

/// `POST /api/auth/password/reset/confirm/`.
pub mod password_reset_confirm {
    use super::*;
    pub const NEW_PASSWORD1: Field = password("new_password1");
    pub const NEW_PASSWORD2: Field = password("new_password2");
    pub const UID: Field = Field::required("uid");
    pub const TOKEN: Field = Field::required("token");
    pub const FIELDS: &[Field] = &[NEW_PASSWORD1, NEW_PASSWORD2, UID, TOKEN];
}

/// `DELETE /api/auth/user/`: the caller's current password.
pub mod account_deletion {
    use super::*;
    pub const PASSWORD: Field = password("password");
    pub const FIELDS: &[Field] = &[PASSWORD];
}
