//! The caller's sessions seen as devices: where each was started, which are signed in, and
//! ending one of them or all the others ("log out other devices").

use std::net::IpAddr;

use crate::domain::model::{Session, User};
use crate::domain::sessions::Authenticated;
use crate::domain::{now, Result};
use crate::error::Error;
use crate::store::Store;

/// The longest device name kept, in characters.
pub const DEVICE_NAME_MAX_CHARS: usize = 200;

/// Where a session was started, as its list shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionOrigin {
    pub device: String,
    pub ip: String,
}

impl SessionOrigin {
    /// From the client's own name for the device (`X-Device-Name`, else its `User-Agent`) and
    /// its address.
    pub fn new(device: &str, ip: Option<IpAddr>) -> Self {
        Self { device: device_name(device), ip: ip.map(|ip| ip.to_string()).unwrap_or_default() }
    }
}

/// A client-supplied device name made safe to show: no control characters (nor the
/// bidirectional overrides that would reorder what a list shows), trimmed, at most
/// [`DEVICE_NAME_MAX_CHARS`] characters.
pub fn device_name(raw: &str) -> String {
    let shown: String = raw.chars().filter(|c| !c.is_control() && !is_bidi_control(*c)).collect();
    let cut: String = shown.trim().chars().take(DEVICE_NAME_MAX_CHARS).collect();
    cut.trim_end().to_string()
}

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// The caller's sessions that can still be used (live, of the current password), most
/// recently used first. The caller's own is always among them (DynamoDB's index of a user's
/// sessions may lag a login by a moment).
pub async fn list(store: &dyn Store, me: &Authenticated) -> Result<Vec<Session>> {
    let mut sessions = live_sessions(store, &me.user).await?;
    // (An access token of the old service has no session: issue 14's legacy tokens.)
    if let Some(mine) = me.session.as_ref().filter(|mine| !sessions.iter().any(|s| s.id == mine.id)) {
        sessions.push(mine.clone());
        sort_by_last_use(&mut sessions);
    }
    Ok(sessions)
}

/// The user's sessions that can still be used (live, of the current password), most recently
/// used first.
pub async fn live_sessions(store: &dyn Store, user: &User) -> Result<Vec<Session>> {
    let now = now();
    let mut sessions: Vec<Session> =
        store.user_sessions(user.id, now).await?.into_iter().filter(|s| s.is_valid_for(user, now)).collect();
    sort_by_last_use(&mut sessions);
    Ok(sessions)
}

fn sort_by_last_use(sessions: &mut [Session]) {
    sessions.sort_by(|a, b| {
        (b.last_used_at, b.created_at).cmp(&(a.last_used_at, a.created_at)).then_with(|| a.id.cmp(&b.id))
    });
}

/// Ends one of the caller's sessions (its access and refresh tokens are refused from now on).
/// Another user's session, or an unknown id, is `NotFound`, and nothing is written.
pub async fn end(store: &dyn Store, me: &Authenticated, session_id: &str) -> Result<()> {
    // Session ids are ours (32 hex digits); anything else is no key worth a lookup.
    let plausible = !session_id.is_empty()
        && session_id.len() <= 64
        && session_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if plausible && store.end_user_session(me.user.id, session_id, now()).await? {
        Ok(())
    } else {
        Err(Error::NotFound)
    }
}

/// "Log out other devices": ends every session of the caller's user but the caller's own (all of
/// them for an access token of the old service, which has none).
pub async fn end_others(store: &dyn Store, me: &Authenticated) -> Result<u64> {
    Ok(store.end_sessions(me.user.id, me.session.as_ref().map(|s| s.id.as_str())).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_lose_control_characters_and_are_cut_on_a_character_boundary() {
        assert_eq!(device_name("  Pixel 8\r\n\tPro\u{7f} "), "Pixel 8Pro");
        assert_eq!(device_name("evil\u{202E}txt.exe"), "eviltxt.exe");
        let long = "é".repeat(300);
        let cut = device_name(&long);
        assert_eq!(cut.chars().count(), DEVICE_NAME_MAX_CHARS);
        assert!(cut.chars().all(|c| c == 'é'));
        assert_eq!(device_name(&"🙂".repeat(201)).chars().count(), DEVICE_NAME_MAX_CHARS);
        assert_eq!(device_name("\u{0}\u{1b}"), "");
    }
}
