//! `POST /api/auth/registration/`: a new user and its first session, in one atomic write.

use crate::domain::devices::SessionOrigin;
use crate::domain::fields::{is_valid_email, Data, FieldErrors, INVALID_EMAIL};
use crate::domain::model::{NewUser, User};
use crate::domain::password;
use crate::domain::requests;
use crate::domain::throttle::{self, Limits};
use crate::domain::tokens::{TokenPair, TokenService};
use crate::domain::user::{EMAIL_TAKEN, USERNAME_TAKEN};
use crate::domain::{now, Result};
use crate::domain::{sessions, user};
use crate::error::Error;
use crate::store::{Store, StoreError};
use crate::telemetry::{self, names};

use std::net::IpAddr;

pub const PASSWORDS_DIFFER_AT_REGISTRATION: &str = "The two password fields didn't match.";

fn add_password_problems(errors: &mut FieldErrors, field: &str, password: &str) {
    for problem in password::field_problems(password) {
        errors.add(field, problem);
    }
}

/// `POST /api/auth/registration/`: creates the user and its first session (started from
/// `device` at `client_ip`).
pub async fn register(
    store: &dyn Store,
    tokens: &TokenService,
    data: &Data,
    limits: &Limits,
    client_ip: Option<IpAddr>,
    device: &str,
) -> Result<(User, TokenPair)> {
    // Every attempt counts, valid or not (a refused one takes no place).
    let ip = throttle::ip_subject(client_ip);
    throttle::reserve(store, &throttle::rules(&[("registration:ip", &ip, limits.registrations_per_ip)]), None, now())
        .await?;
    let mut errors = FieldErrors::new();
    use requests::registration as fields;
    let username = user::read_username(store, fields::USERNAME, data, &mut errors, None).await?;
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

    let password_hash = password::blocking(move || password::hash(&password1)).await?;
    let now = now();
    let session_id = sessions::new_session_id();
    // The id is allocated by the store, so the tokens are signed after the write.
    let mut refresh_claims = tokens.refresh_claims(0, &session_id, 0, now);
    let session = sessions::new_session(&refresh_claims, SessionOrigin::new(device, client_ip), now);
    let user = match store.create_user(NewUser { username, email, password_hash, date_joined: now }, session).await {
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
