//! `accounts-admin`: the operator's commands for one account, on the store the usual environment
//! configures (`STORAGE`, `DATA_DIR`, `DYNAMODB_ENDPOINT`, `USERS_TABLE`, `JWT_SECRET`, ...), as
//! the old service's `manage.py` did (and `delete`, which it had not). Exit status: 0 done, 1 it could not run (configuration,
//! storage), 2 bad usage, 3 no such user.

use std::process::ExitCode;

use accounts::config::Config;
use accounts::domain::account::{self, Deletion};
use accounts::domain::devices;
use accounts::domain::model::{username_key, Session, User};
use accounts::domain::throttle;
use accounts::state::AppState;
use anyhow::Context;
use chrono::{TimeZone, Utc};
use clap::{Parser, Subcommand};
use serde_json::{json, Value};

/// The operator's commands for one account, on the store the environment configures (the
/// service's variables: STORAGE, DATA_DIR, DYNAMODB_ENDPOINT, USERS_TABLE, JWT_SECRET, ...).
///
/// USER is a username (any case) or, when no user has that name, a numeric id. Exit status: 0
/// done, 1 it could not run (configuration, storage), 2 bad usage, 3 no such user.
#[derive(Debug, Parser)]
#[command(name = "accounts-admin", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The account, its live sessions and its login throttle (JSON)
    Show { user: String },
    /// Disable the account: it can no longer log in or refresh, and every session ends
    Disable { user: String },
    /// Enable a disabled account again (it logs in anew: its sessions ended when disabled)
    Enable { user: String },
    /// End every session of the account (log it out everywhere)
    EndSessions { user: String },
    /// Clear the account's failed-login counters (unthrottle its logins now)
    Unlock { user: String },
    /// Delete the account for good, as DELETE /api/auth/user/ does: its records, sessions and
    /// avatar objects (the username and e-mail can be registered again, under a new id)
    Delete {
        user: String,
        /// Confirms the deletion (without it nothing is deleted)
        #[arg(long)]
        yes: bool,
    },
    /// The user's data as JSON, for a data-access request: account, profile, avatar URL, sessions
    Export {
        user: String,
        /// The origin avatar URLs are under when MEDIA_BASE_URL is not set (the local server's)
        #[arg(long, default_value = "http://127.0.0.1:8000")]
        origin: String,
    },
}

impl Command {
    fn user(&self) -> &str {
        match self {
            Command::Show { user }
            | Command::Disable { user }
            | Command::Enable { user }
            | Command::EndSessions { user }
            | Command::Unlock { user }
            | Command::Delete { user, .. }
            | Command::Export { user, .. } => user,
        }
    }
}

/// Exit status for a user that is not there.
const NO_SUCH_USER: u8 = 3;
/// Exit status for bad usage (clap's too).
const BAD_USAGE: u8 = 2;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("accounts-admin: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    if let Command::Delete { yes: false, user } = &command {
        eprintln!("accounts-admin: deleting {user:?} cannot be undone; run again with --yes to delete it");
        return Ok(ExitCode::from(BAD_USAGE));
    }
    let config = Config::from_env().context("configuration")?;
    let state = AppState::from_config(config).await.context("opening the store")?;
    let store = &*state.store;
    let Some(user) = find_user(&state, command.user()).await? else {
        eprintln!("accounts-admin: no user {:?} (neither a username nor an id)", command.user());
        return Ok(ExitCode::from(NO_SUCH_USER));
    };
    let now = accounts::domain::now();
    match &command {
        Command::Show { .. } => {
            let sessions = devices::live_sessions(store, &user).await?;
            let rules = login_rules(&state, &user);
            let (_, usages) = store.login_lookup(&user.username, &rules, now).await?;
            let throttle: Vec<Value> = rules
                .iter()
                .zip(&usages)
                .map(|(rule, usage)| {
                    json!({"counter": rule.name, "limit": rule.limit.count, "window_seconds": rule.limit.window,
                           "current_window": usage.current, "previous_window": usage.previous})
                })
                .collect();
            let retry_after = throttle::refusal(&rules, &usages, now);
            print_json(&json!({
                "account": account(&user),
                "sessions": sessions.iter().map(session).collect::<Vec<_>>(),
                "throttle": {"counters": throttle, "locked_for_seconds": retry_after.unwrap_or(0)},
            }));
        }
        Command::Disable { .. } => {
            store.set_active(user.id, false).await?;
            let ended = store.end_sessions(user.id, None).await?;
            println!("disabled user {} ({}); {ended} sessions ended", user.id, user.username);
        }
        Command::Enable { .. } => {
            store.set_active(user.id, true).await?;
            println!("enabled user {} ({})", user.id, user.username);
        }
        Command::EndSessions { .. } => {
            let ended = store.end_sessions(user.id, None).await?;
            println!("{ended} sessions of user {} ({}) ended", user.id, user.username);
        }
        Command::Unlock { .. } => {
            let keys: Vec<String> = login_rules(&state, &user)
                .iter()
                .flat_map(|rule| {
                    let (current, previous) = rule.keys(now);
                    [current, previous]
                })
                .collect();
            store.clear_counters(&keys).await?;
            println!("failed-login counters of user {} ({}) cleared", user.id, user.username);
        }
        Command::Delete { .. } => match account::delete_account(store, &*state.media, &user).await? {
            Deletion::Deleted => println!("deleted user {} ({})", user.id, user.username),
            Deletion::AlreadyGone => {
                eprintln!("accounts-admin: user {} was deleted meanwhile", user.id);
                return Ok(ExitCode::from(NO_SUCH_USER));
            }
            Deletion::PasswordChanged => anyhow::bail!("user {} changed its password meanwhile: run again", user.id),
        },
        Command::Export { origin, .. } => {
            let sessions = devices::live_sessions(store, &user).await?;
            let base_url = state.config.media.base_url.as_deref();
            let avatar = user.avatar.as_ref().map(|key| accounts::media::media_url(base_url, origin, key));
            print_json(&json!({
                "account": account(&user),
                "profile": {"nickname": user.nickname, "signature": user.signature, "avatar": avatar},
                "sessions": sessions.iter().map(session).collect::<Vec<_>>(),
                "exported_at": iso(now),
            }));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// By username (case-insensitive), else by id when the text is a number.
async fn find_user(state: &AppState, text: &str) -> anyhow::Result<Option<User>> {
    if let Some(user) = state.store.find_user_by_username(text).await? {
        return Ok(Some(user));
    }
    match text.parse::<u64>() {
        Ok(id) => Ok(state.store.get_user(id).await?),
        Err(_) => Ok(None),
    }
}

/// The account's own login counter (the per-address ones are the addresses', not the account's).
fn login_rules(state: &AppState, user: &User) -> Vec<throttle::Rule> {
    state.config.limits.password_check(&username_key(&user.username), None)
}

/// The account without its password hash.
fn account(user: &User) -> Value {
    json!({
        "id": user.id,
        "username": user.username,
        "email": user.email,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "is_active": user.is_active,
        "date_joined": iso(user.date_joined),
        "last_login": user.last_login.map(iso),
        "password_changes": user.password_version,
    })
}

fn session(s: &Session) -> Value {
    json!({"id": s.id, "device": s.device, "ip": s.ip, "created_at": iso(s.created_at),
           "last_used_at": iso(s.last_used_at), "expires_at": iso(s.expires_at)})
}

fn iso(unix: i64) -> String {
    Utc.timestamp_opt(unix, 0).single().unwrap_or_default().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn print_json(value: &Value) {
    println!("{}", serde_json::to_string_pretty(value).expect("JSON values print"));
}
