//! Mints refresh tokens for the refresh benchmark, each of its own new session, straight through
//! the store (no HTTP, no password hash), so every benchmarked request does a real rotation.
//! The counterpart of the old service's `bench/mint_refresh_tokens.py`.
//!
//!     DATA_DIR=... mint-refresh-tokens USERNAME N > tokens.txt
//!
//! Reads the same configuration as the server (`DATA_DIR`, `JWT_SECRET`, `STORAGE`, ...), so the
//! tokens are signed with the server's key; run it before the server starts or beside it.

use std::io::{BufWriter, Write};

use accounts::config::Config;
use accounts::domain::now;
use accounts::domain::sessions::start_session;
use accounts::state::AppState;
use anyhow::{bail, Context};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [username, count] = args.as_slice() else { bail!("usage: mint-refresh-tokens USERNAME N") };
    let count: usize = count.parse().context("N is a number")?;
    let state = AppState::from_config(Config::from_env()?).await?;
    let user = state
        .store
        .find_user_by_username(username)
        .await?
        .with_context(|| format!("no user {username:?}: register it first"))?;
    let mut out = BufWriter::new(std::io::stdout().lock());
    let now = now();
    for _ in 0..count {
        let pair = start_session(state.store.as_ref(), &state.tokens, user.id, user.password_version, now).await?;
        writeln!(out, "{}", pair.refresh)?;
    }
    out.flush()?;
    Ok(())
}
