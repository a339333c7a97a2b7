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

use accounts::domain::fields::is_valid_email;
use accounts::domain::model::{username_key, User};
use accounts::domain::user::{is_valid_username, normalize_username, MAX_USERNAME_LENGTH};
use accounts::store::{StoreError, UserStore};
use serde::Deserialize;

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
    pub imported: usize,
    pub skipped: usize,
    /// `(record, reason)`.
    pub rejected: Vec<(String, String)>,
    /// `(id, note)` of users imported with a change.
    pub notes: Vec<(u64, String)>,
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
        Ok(())
    }
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

/// Imports one record.
pub async fn import_record(store: &dyn UserStore, record: &Record) -> Outcome {
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

/// Imports every record in order; `progress` is called after each one.
pub async fn import_all(store: &dyn UserStore, records: &[Record], mut progress: impl FnMut(&Outcome)) -> Summary {
    let mut summary = Summary::default();
    for record in records {
        let outcome = import_record(store, record).await;
        progress(&outcome);
        summary.add(outcome);
    }
    summary
}
