//! Item codecs: the attribute layout of every record, and reading attributes back.

use super::*;

// ----- items ---------------------------------------------------------------------------------

pub(super) fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_string())
}

pub(super) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub(super) fn pk(value: String) -> Item {
    HashMap::from([(PK.to_string(), AttributeValue::S(value))])
}

pub(super) fn user_key(id: u64) -> Item {
    pk(format!("USER#{id}"))
}

pub(super) fn username_claim(username: &str) -> String {
    format!("USERNAME#{}", username_key(username))
}

pub(super) fn skeleton_claim(username: &str) -> String {
    format!("SKELETON#{}", username_skeleton(username))
}

pub(super) fn email_claim(email: &str) -> String {
    format!("EMAIL#{}", email.to_lowercase())
}

pub(super) fn session_key(session_id: &str) -> Item {
    HashMap::from([("session_id".to_string(), s(session_id))])
}

pub(super) fn claim_item(claim: String, user_id: u64) -> Item {
    let mut item = pk(claim);
    item.insert("user_id".into(), n(user_id));
    item
}

pub(super) fn user_item(user: &User) -> Item {
    let mut item = user_key(user.id);
    item.insert("id".into(), n(user.id));
    item.insert("username".into(), s(&user.username));
    item.insert("username_key".into(), s(&username_key(&user.username)));
    item.insert("email".into(), s(&user.email));
    item.insert("email_key".into(), s(&user.email.to_lowercase()));
    item.insert("password".into(), s(&user.password_hash));
    item.insert("first_name".into(), s(&user.first_name));
    item.insert("last_name".into(), s(&user.last_name));
    item.insert("nickname".into(), s(&user.nickname));
    item.insert("signature".into(), s(&user.signature));
    if let Some(avatar) = &user.avatar {
        item.insert("avatar".into(), s(avatar));
    }
    item.insert("is_active".into(), AttributeValue::Bool(user.is_active));
    item.insert("date_joined".into(), n(user.date_joined));
    if let Some(last_login) = user.last_login {
        item.insert("last_login".into(), n(last_login));
    }
    item.insert(PASSWORD_VERSION.into(), n(user.password_version));
    item
}

/// A number attribute that items written before it existed lack: 0 then.
pub(super) fn number_or_zero(item: &Item, attr: &str) -> StoreResult<u64> {
    match item.get(attr) {
        None => Ok(0),
        Some(_) => number(item, attr),
    }
}

/// The condition "the item's password version is `version`" (`#pwv` names the attribute);
/// items written before versions existed are at 0.
pub(super) fn password_version_is(version: u64) -> &'static str {
    if version == 0 {
        "(attribute_not_exists(#pwv) OR #pwv = :pwv)"
    } else {
        "#pwv = :pwv"
    }
}

pub(super) fn user_from_item(item: &Item) -> StoreResult<User> {
    Ok(User {
        id: number(item, "id")?,
        username: string(item, "username")?,
        email: string(item, "email")?,
        password_hash: string(item, "password")?,
        first_name: string(item, "first_name")?,
        last_name: string(item, "last_name")?,
        nickname: string(item, "nickname")?,
        signature: string(item, "signature")?,
        avatar: optional_string(item, "avatar")?,
        is_active: match item.get("is_active") {
            Some(AttributeValue::Bool(b)) => *b,
            other => return Err(odd("is_active", other)),
        },
        date_joined: number(item, "date_joined")?,
        last_login: match item.get("last_login") {
            None | Some(AttributeValue::Null(_)) => None,
            Some(_) => Some(number(item, "last_login")?),
        },
        password_version: number_or_zero(item, PASSWORD_VERSION)?,
    })
}

pub(super) fn session_item(session: &Session) -> Item {
    let mut item = session_key(&session.id);
    item.insert("user_id".into(), n(session.user_id));
    item.insert("refresh_jti".into(), s(&session.refresh_jti));
    item.insert("created_at".into(), n(session.created_at));
    item.insert("expires_at".into(), n(session.expires_at));
    item.insert(PASSWORD_VERSION.into(), n(session.password_version));
    item.insert("device".into(), s(&session.device));
    item.insert("ip".into(), s(&session.ip));
    item.insert("last_used_at".into(), n(session.last_used_at));
    if let Some(previous) = &session.previous_jti {
        item.insert("previous_jti".into(), s(previous));
    }
    item
}

pub(super) fn session_from_item(item: &Item) -> StoreResult<Session> {
    Ok(Session {
        id: string(item, "session_id")?,
        user_id: number(item, "user_id")?,
        refresh_jti: string(item, "refresh_jti")?,
        created_at: number(item, "created_at")?,
        expires_at: number(item, "expires_at")?,
        password_version: number_or_zero(item, PASSWORD_VERSION)?,
        // Sessions written before these attributes existed: unknown device and address, last
        // used when started, no previous token.
        device: optional_string(item, "device")?.unwrap_or_default(),
        ip: optional_string(item, "ip")?.unwrap_or_default(),
        last_used_at: match item.get("last_used_at") {
            None => number(item, "created_at")?,
            Some(_) => number(item, "last_used_at")?,
        },
        previous_jti: optional_string(item, "previous_jti")?,
    })
}

pub(super) fn blacklist_item(entry: &BlacklistEntry) -> Item {
    HashMap::from([
        ("jti".to_string(), s(&entry.jti)),
        ("user_id".to_string(), n(entry.user_id)),
        ("session_id".to_string(), s(&entry.session_id)),
        ("expires_at".to_string(), n(entry.expires_at)),
        ("blacklisted_at".to_string(), n(entry.blacklisted_at)),
    ])
}

pub(super) fn blacklist_from_item(item: &Item) -> StoreResult<BlacklistEntry> {
    Ok(BlacklistEntry {
        jti: string(item, "jti")?,
        user_id: number(item, "user_id")?,
        session_id: string(item, "session_id")?,
        expires_at: number(item, "expires_at")?,
        blacklisted_at: number(item, "blacklisted_at")?,
    })
}

pub(super) fn odd(attr: &str, value: Option<&AttributeValue>) -> StoreError {
    match value {
        None => StoreError::Backend(format!("item has no attribute {attr:?}")),
        Some(value) => StoreError::Backend(format!("attribute {attr:?} has an odd value: {value:?}")),
    }
}

pub(super) fn string(item: &Item, attr: &str) -> StoreResult<String> {
    match item.get(attr) {
        Some(AttributeValue::S(v)) => Ok(v.clone()),
        other => Err(odd(attr, other)),
    }
}

pub(super) fn optional_string(item: &Item, attr: &str) -> StoreResult<Option<String>> {
    match item.get(attr) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::S(v)) => Ok(Some(v.clone())),
        other => Err(odd(attr, other)),
    }
}

pub(super) fn number<T: std::str::FromStr>(item: &Item, attr: &str) -> StoreResult<T> {
    match item.get(attr) {
        Some(AttributeValue::N(v)) => v.parse().map_err(|_| odd(attr, item.get(attr))),
        other => Err(odd(attr, other)),
    }
}
