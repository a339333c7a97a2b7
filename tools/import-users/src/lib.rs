//! Importing the old service's users: a Django `dumpdata accounts.User` export (a JSON list of
//! `{"model": "accounts.user", "pk": .., "fields": {..}}`) written into a store with
//! `UserStore::insert_user`, which keeps each id (the id counter moves past the highest) and the
//! Django password hash (verified at the next login, then replaced by argon2id).
//!
//! Run twice, the second run imports nothing: a user whose id is already there under the same
//! username is skipped. Records that can't be imported are rejected with a reason, never
//! half-written. The old service allowed one e-mail address on several accounts (unverified
//! addresses); here an address is unique, so the first account (in export order: by id) keeps
//! it and the others are imported without an e-mail, with a note (they still sign in by
//! username, and a password reset can't go to an address that isn't theirs alone).
//!
//! The same export may hold simplejwt's blacklist (`dumpdata accounts.User token_blacklist`):
//! every blacklisted refresh token that has not expired is written to the blacklist store with
//! its `exp` as TTL, so a token logged out on the old service stays dead here (legacy tokens,
//! `accounts::domain::legacy`). With a media folder (`--media-from`, the old `MEDIA_ROOT`), each
//! imported user's avatar file is copied into the media store under the same key. A dry run reads
//! and checks everything and writes nothing.

use std::collections::BTreeMap;
use std::path::Path;

use accounts::domain::fields::is_valid_email;
use accounts::domain::model::{username_key, BlacklistEntry, User};
use accounts::domain::user::{is_valid_username, normalize_username, MAX_USERNAME_LENGTH};
use accounts::media::{is_valid_key, MediaStore};
use accounts::store::{Store, StoreError, UserStore};
use serde::Deserialize;

/// simplejwt's models in `dumpdata token_blacklist`.
const OUTSTANDING_TOKEN: &str = "token_blacklist.outstandingtoken";
const BLACKLISTED_TOKEN: &str = "token_blacklist.blacklistedtoken";

/// One record of the export.
#[derive(Debug, Deserialize)]
pub struct Record {
    pub model: String,
    pub pk: serde_json::Value,
    pub fields: serde_json::Map<String, serde_json::Value>,
}

/// What happened to one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Imported {
        id: u64,
        note: Option<String>,
    },
    /// Already in the store (an earlier run).
    Skipped {
        id: u64,
    },
    Rejected {
        record: String,
        reason: String,
    },
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Nothing was written: the counts say what a real run would do.
    pub dry_run: bool,
    pub imported: usize,
    pub skipped: usize,
    /// `(record, reason)`.
    pub rejected: Vec<(String, String)>,
    /// `(id, note)` of users imported with a change.
    pub notes: Vec<(u64, String)>,
    /// Blacklisted, unexpired `jti`s written to the blacklist store.
    pub blacklisted: usize,
    /// Blacklisted `jti`s that were there already (an earlier run).
    pub blacklisted_already: usize,
    /// Blacklisted tokens past their `exp`: dead anyway, not written.
    pub blacklisted_expired: usize,
    /// With `--media-from`: avatar files copied into the media store.
    pub avatars_copied: Option<usize>,
    /// `(user id, key, why)` of avatars not copied (the user is imported all the same).
    pub avatars_missing: Vec<(u64, String, String)>,
}

impl Summary {
    pub fn add(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Imported { id, note } => {
                self.imported += 1;
                if let Some(note) = note {
                    self.notes.push((id, note));
                }
            }
            Outcome::Skipped { .. } => self.skipped += 1,
            Outcome::Rejected { record, reason } => self.rejected.push((record, reason)),
        }
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.dry_run {
            writeln!(f, "dry run: nothing was written; a real run would do this")?;
        }
        writeln!(f, "imported: {}", self.imported)?;
        writeln!(f, "skipped (already there): {}", self.skipped)?;
        writeln!(f, "rejected: {}", self.rejected.len())?;
        for (record, reason) in &self.rejected {
            writeln!(f, "  {record}: {reason}")?;
        }
        if !self.notes.is_empty() {
            writeln!(f, "imported with changes: {}", self.notes.len())?;
            for (id, note) in &self.notes {
                writeln!(f, "  user {id}: {note}")?;
            }
        }
        writeln!(f, "blacklisted tokens imported: {}", self.blacklisted)?;
        writeln!(f, "blacklisted tokens already there: {}", self.blacklisted_already)?;
        writeln!(f, "blacklisted tokens expired (not needed): {}", self.blacklisted_expired)?;
        if let Some(copied) = self.avatars_copied {
            writeln!(f, "avatars copied: {copied}")?;
            writeln!(f, "avatars missing: {}", self.avatars_missing.len())?;
            for (id, key, why) in &self.avatars_missing {
                writeln!(f, "  user {id}: {key}: {why}")?;
            }
        }
        Ok(())
    }
}

/// How to run: `dry_run` writes nothing; `media` copies avatars from the old `MEDIA_ROOT` into
/// a media store.
#[derive(Clone, Copy, Default)]
pub struct Options<'a> {
    pub dry_run: bool,
    pub media: Option<(&'a Path, &'a dyn MediaStore)>,
}

/// Reads the export: a JSON list of records (what `manage.py dumpdata accounts.User` prints).
pub fn parse_export(text: &str) -> Result<Vec<Record>, serde_json::Error> {
    serde_json::from_str(text)
}

/// The user a record describes, or why it can't be one.
pub fn user_from_record(record: &Record) -> Result<User, String> {
    if record.model != "accounts.user" {
        return Err(format!("model {:?} is not accounts.user", record.model));
    }
    let id =
        record.pk.as_u64().filter(|id| *id > 0).ok_or_else(|| format!("pk {} is not a positive integer", record.pk))?;
    let f = &record.fields;
    let text = |name: &str| -> Result<String, String> {
        match f.get(name) {
            None | Some(serde_json::Value::Null) => Ok(String::new()),
            Some(serde_json::Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(format!("{name} is not a string: {other}")),
        }
    };
    let time = |name: &str| -> Result<Option<i64>, String> {
        match f.get(name) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) => chrono::DateTime::parse_from_rfc3339(s)
                .map(|t| Some(t.timestamp()))
                .map_err(|e| format!("{name} {s:?} is not a timestamp: {e}")),
            Some(other) => Err(format!("{name} is not a timestamp: {other}")),
        }
    };
    let username = normalize_username(&text("username")?);
    if username.chars().count() > MAX_USERNAME_LENGTH || !is_valid_username(&username) {
        return Err(format!("username {username:?} is not a valid username"));
    }
    let password_hash = text("password")?;
    if password_hash.is_empty() {
        return Err("no password hash".into());
    }
    let is_active = match f.get("is_active") {
        None => true,
        Some(serde_json::Value::Bool(b)) => *b,
        Some(other) => return Err(format!("is_active is not a boolean: {other}")),
    };
    let avatar = text("avatar")?;
    Ok(User {
        id,
        username,
        email: text("email")?.trim().to_string(),
        password_hash,
        first_name: text("first_name")?,
        last_name: text("last_name")?,
        nickname: text("nickname")?,
        signature: text("signature")?,
        // Django's stored name (`avatar/<file>`): the media key under which the file is copied.
        avatar: (!avatar.is_empty()).then_some(avatar),
        is_active,
        date_joined: time("date_joined")?.ok_or("no date_joined")?,
        last_login: time("last_login")?,
        password_version: 0,
    })
}

/// Imports one record (`dry_run`: only reads, and says what a real run would do).
pub async fn import_record(store: &dyn UserStore, record: &Record, dry_run: bool) -> Outcome {
    let label = format!("pk {}", record.pk);
    let reject = |reason: String| Outcome::Rejected { record: label.clone(), reason };
    let mut user = match user_from_record(record) {
        Ok(user) => user,
        Err(reason) => return reject(reason),
    };
    let mut note = None;
    if !user.email.is_empty() && !is_valid_email(&user.email) {
        note = Some(format!("e-mail {:?} is not a valid address; imported without it", user.email));
        user.email.clear();
    }
    match store.get_user(user.id).await {
        Ok(Some(existing)) if username_key(&existing.username) == username_key(&user.username) => {
            return Outcome::Skipped { id: user.id }
        }
        Ok(Some(existing)) => return reject(format!("id {} belongs to {:?} here", user.id, existing.username)),
        Ok(None) => {}
        Err(e) => return reject(format!("store: {e}")),
    }
    if dry_run {
        return Outcome::Imported { id: user.id, note };
    }
    loop {
        match store.insert_user(user.clone()).await {
            Ok(()) => return Outcome::Imported { id: user.id, note },
            Err(StoreError::EmailTaken) if !user.email.is_empty() => {
                note = Some(format!("e-mail {:?} belongs to another account; imported without it", user.email));
                user.email.clear();
            }
            Err(StoreError::UsernameTaken) => {
                let owner = match store.find_user_by_username(&user.username).await {
                    Ok(Some(owner)) => format!("user {}", owner.id),
                    _ => "another user".into(),
                };
                return reject(format!("username {:?} is taken by {owner}", user.username));
            }
            Err(e) => return reject(format!("store: {e}")),
        }
    }
}

/// Imports every record in order (users, then the blacklist, then the avatars of the users
/// now in the store); `progress` is called after each user.
pub async fn import_all(
    store: &dyn Store,
    records: &[Record],
    options: Options<'_>,
    now: i64,
    mut progress: impl FnMut(&Outcome),
) -> Summary {
    let mut summary = Summary { dry_run: options.dry_run, ..Summary::default() };
    let (tokens, users): (Vec<&Record>, Vec<&Record>) =
        records.iter().partition(|r| r.model.starts_with("token_blacklist."));
    let mut in_store = Vec::new();
    for record in users {
        let outcome = import_record(store, record, options.dry_run).await;
        progress(&outcome);
        if let Outcome::Imported { id, .. } | Outcome::Skipped { id } = outcome {
            in_store.push((id, record));
        }
        summary.add(outcome);
    }
    import_blacklist(store, &tokens, options.dry_run, now, &mut summary).await;
    if let Some((root, media)) = options.media {
        copy_avatars(media, root, &in_store, options.dry_run, &mut summary).await;
    }
    summary
}

/// simplejwt's blacklist: a `blacklistedtoken` names its `outstandingtoken` (by pk), which holds
/// the `jti`, the user and `expires_at` (the token's `exp`).
async fn import_blacklist(store: &dyn Store, records: &[&Record], dry_run: bool, now: i64, summary: &mut Summary) {
    let outstanding: BTreeMap<String, &Record> =
        records.iter().filter(|r| r.model == OUTSTANDING_TOKEN).map(|r| (r.pk.to_string(), *r)).collect();
    for record in records.iter().filter(|r| r.model != OUTSTANDING_TOKEN) {
        let label = format!("{} pk {}", record.model, record.pk);
        let entry = if record.model == BLACKLISTED_TOKEN {
            blacklist_entry(record, &outstanding)
        } else {
            Err(format!("model {:?} is not one of {OUTSTANDING_TOKEN}, {BLACKLISTED_TOKEN}", record.model))
        };
        let entry = match entry {
            Ok(entry) => entry,
            Err(reason) => {
                summary.rejected.push((label, reason));
                continue;
            }
        };
        if entry.expires_at <= now {
            summary.blacklisted_expired += 1;
            continue;
        }
        let written = if dry_run {
            store.blacklisted(&entry.jti, now).await.map(|found| found.is_none())
        } else {
            store.blacklist(entry, now).await
        };
        match written {
            Ok(true) => summary.blacklisted += 1,
            Ok(false) => summary.blacklisted_already += 1,
            Err(e) => summary.rejected.push((label, format!("store: {e}"))),
        }
    }
}

fn blacklist_entry(record: &Record, outstanding: &BTreeMap<String, &Record>) -> Result<BlacklistEntry, String> {
    let token = record.fields.get("token").map(|pk| pk.to_string()).unwrap_or_default();
    let Some(token) = outstanding.get(&token) else {
        return Err(format!("its outstanding token {token} is not in the export"));
    };
    let f = &token.fields;
    let jti =
        f.get("jti").and_then(|v| v.as_str()).filter(|j| !j.is_empty()).ok_or("the outstanding token has no jti")?;
    let expires_at = f
        .get("expires_at")
        .and_then(|v| v.as_str())
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .ok_or("the outstanding token's expires_at is not a timestamp")?
        .timestamp();
    let blacklisted_at = record
        .fields
        .get("blacklisted_at")
        .and_then(|v| v.as_str())
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map_or(0, |t| t.timestamp());
    Ok(BlacklistEntry {
        jti: jti.to_string(),
        // simplejwt keeps the token when its user is deleted (user = null).
        user_id: f.get("user").and_then(|v| v.as_u64()).unwrap_or(0),
        session_id: String::new(),
        expires_at,
        blacklisted_at,
    })
}

/// Copies the avatar of each user now in the store from the old `MEDIA_ROOT` (Django stored
/// `avatar/<file>` relative to it) into the media store under the same key.
async fn copy_avatars(
    media: &dyn MediaStore,
    root: &Path,
    users: &[(u64, &Record)],
    dry_run: bool,
    summary: &mut Summary,
) {
    let mut copied = 0;
    for (id, record) in users {
        let Some(key) = record.fields.get("avatar").and_then(|v| v.as_str()).filter(|k| !k.is_empty()) else {
            continue;
        };
        let mut missing = |why: String| summary.avatars_missing.push((*id, key.to_string(), why));
        if !is_valid_key(key) {
            missing("not a key the media store serves (letters, digits, - _ . only)".into());
            continue;
        }
        let bytes = match std::fs::read(root.join(key)) {
            Ok(bytes) => bytes,
            Err(e) => {
                missing(format!("{}: {e}", root.join(key).display()));
                continue;
            }
        };
        if !dry_run {
            if let Err(e) = media.put(key, bytes.into(), content_type(key)).await {
                missing(format!("media store: {e}"));
                continue;
            }
        }
        copied += 1;
    }
    summary.avatars_copied = Some(copied);
}

/// The content type of an avatar by its extension (what Django's upload kept).
fn content_type(key: &str) -> &'static str {
    match key.rsplit('.').next().map(str::to_ascii_lowercase).as_deref() {
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        _ => "application/octet-stream",
    }
}
