//! Throttling (decision 5): fixed-window counters in the store, per account and per client IP.
//! Over a limit the caller hears 429 with `Retry-After`; a correct password while throttled is
//! still refused, so guessing can't go on behind the limit.

use std::net::IpAddr;

use crate::error::Error;
use crate::store::{CounterKey, WindowCount};

/// At most `count` events per `window` seconds; a `count` of 0 turns the limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub count: u64,
    pub window: u64,
}

impl Limit {
    pub const fn new(count: u64, window: u64) -> Self {
        Self { count, window }
    }

    pub fn is_off(&self) -> bool {
        self.count == 0
    }

    /// Parses `"5/300"`: 5 per 300 seconds.
    pub fn parse(text: &str) -> Option<Limit> {
        let (count, window) = text.trim().split_once('/')?;
        let limit = Limit::new(count.trim().parse().ok()?, window.trim().parse().ok()?);
        (limit.window > 0).then_some(limit)
    }
}

/// Every limit of the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub login_failures_per_account: Limit,
    pub login_failures_per_ip: Limit,
    pub registrations_per_ip: Limit,
    pub reset_requests_per_ip: Limit,
    pub reset_requests_per_address: Limit,
}

impl Default for Limits {
    /// allauth's defaults, as the contract's decision 5 lists them.
    fn default() -> Self {
        Self {
            login_failures_per_account: Limit::new(5, 300),
            login_failures_per_ip: Limit::new(10, 60),
            registrations_per_ip: Limit::new(20, 60),
            reset_requests_per_ip: Limit::new(20, 60),
            reset_requests_per_address: Limit::new(5, 60),
        }
    }
}

/// The counter of `scope` for `subject` (a username key, an IP, an e-mail address) under `limit`.
pub fn counter(scope: &str, subject: &str, limit: Limit) -> CounterKey {
    CounterKey { name: format!("{scope}:{subject}"), window: limit.window }
}

/// The client address as a counter subject (`unknown` when there is none: in-process calls).
pub fn ip_subject(ip: Option<IpAddr>) -> String {
    ip.map_or_else(|| "unknown".to_string(), |ip| ip.to_string())
}

/// 429 when `seen` has reached the limit (checks before the event).
pub fn refuse_if_reached(limit: Limit, seen: WindowCount, now: i64) -> Result<(), Error> {
    if !limit.is_off() && seen.count >= limit.count {
        return Err(Error::Throttled { retry_after: (seen.resets_at - now).max(1) as u64 });
    }
    Ok(())
}

/// 429 when the event just counted went over the limit (counts every attempt).
pub fn refuse_if_over(limit: Limit, after: WindowCount, now: i64) -> Result<(), Error> {
    if !limit.is_off() && after.count > limit.count {
        return Err(Error::Throttled { retry_after: (after.resets_at - now).max(1) as u64 });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse() {
        assert_eq!(Limit::parse("5/300"), Some(Limit::new(5, 300)));
        assert_eq!(Limit::parse(" 0 / 60 "), Some(Limit::new(0, 60)));
        assert_eq!(Limit::parse("5"), None);
        assert_eq!(Limit::parse("5/0"), None);
        assert_eq!(Limit::parse("x/60"), None);
    }

    #[test]
    fn windows_are_fixed_and_keys_change_with_them() {
        let key = counter("login-fail:ip", "192.0.2.1", Limit::new(10, 60));
        assert_eq!(key.window_at(125), (120, 180));
        assert_eq!(key.storage_key(125), "login-fail:ip:192.0.2.1@120");
        assert_ne!(key.storage_key(179), key.storage_key(180));
    }

    #[test]
    fn refusals_tell_when_to_come_back() {
        let limit = Limit::new(2, 60);
        assert!(refuse_if_reached(limit, WindowCount { count: 1, resets_at: 180 }, 125).is_ok());
        match refuse_if_reached(limit, WindowCount { count: 2, resets_at: 180 }, 125) {
            Err(Error::Throttled { retry_after }) => assert_eq!(retry_after, 55),
            other => panic!("{other:?}"),
        }
        assert!(refuse_if_over(limit, WindowCount { count: 2, resets_at: 180 }, 125).is_ok());
        assert!(refuse_if_over(limit, WindowCount { count: 3, resets_at: 180 }, 125).is_err());
        assert!(refuse_if_reached(Limit::new(0, 60), WindowCount { count: 99, resets_at: 180 }, 125).is_ok());
    }
}
