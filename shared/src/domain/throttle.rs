//! Throttling (docs/api.md#decision-5): counters in the store, per account and per client address.
//!
//! Two rules make the limits hold under a parallel burst, not only one request at a time:
//! - **Reserve, then work.** An attempt takes its place in every counter it is subject to, in one
//!   atomic store operation, *before* any password is hashed; an attempt over a limit takes no
//!   place and is answered 429 at once. A login that succeeds gives its place back
//!   ([`crate::store::ThrottleStore::release`]), so only failures stay counted.
//! - **Sliding windows.** A counter keeps one count per fixed window; the limit applies to the
//!   weighted sum of the current window and the one before it (the share of the previous window
//!   that still overlaps the last `window` seconds). Fixed windows alone let a client spend twice
//!   the limit across a window boundary.
//!
//! Over a limit the caller hears 429 with `Retry-After`; a correct password while throttled is
//! still refused, so guessing can't go on behind the limit.

use std::net::IpAddr;

use crate::domain::Result;
use crate::error::Error;
use crate::store::{Admission, Reservation, Store};
use crate::telemetry::{self, names};

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

    fn window_secs(&self) -> i64 {
        self.window.max(1) as i64
    }

    /// The fixed window containing `now`: its start and its end.
    pub fn window_at(&self, now: i64) -> (i64, i64) {
        let window = self.window_secs();
        let start = now - now.rem_euclid(window);
        (start, start + window)
    }

    /// The weight of the previous window's count at `now`: the part of it still inside the last
    /// `window` seconds.
    fn previous_weight(&self, now: i64) -> f64 {
        let (start, _) = self.window_at(now);
        1.0 - (now - start) as f64 / self.window_secs() as f64
    }

    /// The current window's count must stay below this for one more event to be admitted:
    /// `previous × weight + current < count` ⇔ `current < ⌈count − previous × weight⌉`.
    pub fn current_ceiling(&self, previous: u64, now: i64) -> u64 {
        let room = self.count as f64 - previous as f64 * self.previous_weight(now);
        room.ceil().max(0.0) as u64
    }

    /// Whether one more event is admitted after `usage`.
    pub fn admits(&self, usage: Usage, now: i64) -> bool {
        self.is_off() || usage.current < self.current_ceiling(usage.previous, now)
    }

    /// Seconds until one more event would be admitted, if nothing else is counted meanwhile
    /// (at least 1; admission needs the weighted sum strictly below the limit, hence the `+ 1`).
    pub fn retry_after(&self, usage: Usage, now: i64) -> u64 {
        let (start, end) = self.window_at(now);
        let window = self.window_secs() as f64;
        let (count, previous, current) = (self.count as f64, usage.previous as f64, usage.current as f64);
        let at = if current < count && previous > 0.0 {
            // Still in this window, once enough of the previous one has slid out.
            start as f64 + window * (1.0 - (count - current) / previous)
        } else if current >= count {
            // In the next window, once enough of this one has slid out.
            end as f64 + window * (1.0 - count / current)
        } else {
            now as f64
        };
        ((at - now as f64).floor() as i64 + 1).max(1) as u64
    }
}

/// A counter's events in the fixed window containing "now" and in the one before it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub previous: u64,
    pub current: u64,
}

/// One limit applied to one subject: the counter `name` (`login-fail:ip:192.0.2.1`) under `limit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub name: String,
    pub limit: Limit,
}

impl Rule {
    /// The stored key of the counter's window that starts at `start`: each window counts from zero.
    pub fn key_at(&self, start: i64) -> String {
        format!("{}@{}", self.name, start)
    }

    /// The keys of the current and the previous window at `now`.
    pub fn keys(&self, now: i64) -> (String, String) {
        let (start, _) = self.limit.window_at(now);
        (self.key_at(start), self.key_at(start - self.limit.window_secs()))
    }

    /// The key of the window after the one containing `now`.
    pub fn next_key(&self, now: i64) -> String {
        self.key_at(self.limit.window_at(now).1)
    }

    /// When a window's row may go: once it can no longer be anyone's previous window.
    pub fn expires_at(&self, now: i64) -> i64 {
        self.limit.window_at(now).1 + self.limit.window_secs()
    }
}

/// The rules of `limits` that are on, for a subject of each.
pub fn rules(subjects: &[(&str, &str, Limit)]) -> Vec<Rule> {
    subjects
        .iter()
        .filter(|(_, _, limit)| !limit.is_off())
        .map(|(scope, subject, limit)| Rule { name: format!("{scope}:{subject}"), limit: *limit })
        .collect()
}

/// The longest wait among the rules that refuse one more event after `usages` (paired in order).
pub fn refusal(rules: &[Rule], usages: &[Usage], now: i64) -> Option<u64> {
    rules
        .iter()
        .zip(usages)
        .filter(|(rule, usage)| !rule.limit.admits(**usage, now))
        .map(|(rule, usage)| rule.limit.retry_after(*usage, now))
        .max()
}

/// Where an attempt timed `now` but served late is counted, given the counts of the window after
/// `now`'s of each rule (paired in order): once one of those counts, attempts of the next window
/// have read `now`'s window as their closed previous one, so the late attempt is counted from the
/// start of the next window instead (the latest such start); `None` when none counts yet.
pub fn served_late_at(rules: &[Rule], next_counts: &[u64], now: i64) -> Option<i64> {
    rules.iter().zip(next_counts).filter(|(_, count)| **count > 0).map(|(rule, _)| rule.limit.window_at(now).1).max()
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
    /// allauth's defaults, as docs/api.md#decision-5 lists them.
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

impl Limits {
    /// The rules a password check is subject to: failures per account and per client address
    /// (logins, and the old password of a password change).
    pub fn password_check(&self, username_key: &str, client_ip: Option<IpAddr>) -> Vec<Rule> {
        rules(&[
            (ACCOUNT_FAILURES, username_key, self.login_failures_per_account),
            ("login-fail:ip", &ip_subject(client_ip), self.login_failures_per_ip),
        ])
    }
}

/// The counter of failed logins of an account (and wrong old passwords at password change).
const ACCOUNT_FAILURES: &str = "login-fail:account";

impl Limits {
    /// The rule of one account's failed logins alone (what an operator unlocks).
    pub fn account_failures(&self, username_key: &str) -> Vec<Rule> {
        rules(&[(ACCOUNT_FAILURES, username_key, self.login_failures_per_account)])
    }
}

/// The client address as a counter subject (`unknown` when there is none: in-process calls).
/// An IPv6 client is keyed by its /64: one subscriber usually holds a whole /64 and could
/// otherwise take a fresh address for every attempt.
pub fn ip_subject(ip: Option<IpAddr>) -> String {
    match ip.map(|ip| ip.to_canonical()) {
        None => "unknown".to_string(),
        Some(IpAddr::V4(v4)) => v4.to_string(),
        Some(IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

/// The 429 of the attempt counters, counted for the dashboard.
pub(crate) fn throttled(retry_after: u64) -> Error {
    telemetry::count(names::REQUEST_THROTTLED);
    Error::Throttled { retry_after }
}

/// Takes a place in the counters of `rules` before any password work: 429 when one is full.
pub(crate) async fn reserve(
    store: &dyn Store,
    rules: &[Rule],
    known: Option<&[Usage]>,
    now: i64,
) -> Result<Reservation> {
    if rules.is_empty() {
        return Ok(Reservation::default());
    }
    match store.reserve(rules, known, now).await? {
        Admission::Admitted(reservation) => Ok(reservation),
        Admission::Refused { retry_after } => Err(throttled(retry_after)),
    }
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
        let rule = Rule { name: "login-fail:ip:192.0.2.1".into(), limit: Limit::new(10, 60) };
        assert_eq!(rule.limit.window_at(125), (120, 180));
        assert_eq!(
            rule.keys(125),
            ("login-fail:ip:192.0.2.1@120".to_string(), "login-fail:ip:192.0.2.1@60".to_string())
        );
        assert_ne!(rule.keys(179).0, rule.keys(180).0);
        assert_eq!(rule.keys(179).0, rule.keys(180).1);
        assert_eq!(rule.expires_at(125), 240);
    }

    #[test]
    fn the_previous_window_slides_out() {
        let limit = Limit::new(10, 60);
        // At the start of a window the previous one weighs fully: 10 there leave no room.
        assert!(!limit.admits(Usage { previous: 10, current: 0 }, 120));
        // Halfway, half of it: 5 more fit.
        assert_eq!(limit.current_ceiling(10, 150), 5);
        assert!(limit.admits(Usage { previous: 10, current: 4 }, 150));
        assert!(!limit.admits(Usage { previous: 10, current: 5 }, 150));
        // A fixed window would have allowed 10 + 10 across the boundary; the sliding one allows
        // no more than the limit in any 60 seconds at its start.
        assert!(limit.admits(Usage { previous: 0, current: 9 }, 179));
        assert!(!limit.admits(Usage { previous: 10, current: 0 }, 180));
        assert!(Limit::new(0, 60).admits(Usage { previous: 99, current: 99 }, 125));
    }

    #[test]
    fn refusals_tell_when_to_come_back() {
        let limit = Limit::new(2, 60);
        // Full in this window: just after the next one starts, as this one begins to slide out.
        assert_eq!(limit.retry_after(Usage { previous: 0, current: 2 }, 125), 56);
        assert!(!limit.admits(Usage { previous: 2, current: 0 }, 180));
        assert!(limit.admits(Usage { previous: 2, current: 0 }, 181));
        // Full from the previous window: once enough of it has slid out (after 120 + 60 × (1 − 2/4)).
        assert_eq!(limit.retry_after(Usage { previous: 4, current: 0 }, 125), 26);
        assert!(!limit.admits(Usage { previous: 4, current: 0 }, 150));
        assert!(limit.admits(Usage { previous: 4, current: 0 }, 151));
        let rules = vec![Rule { name: "a".into(), limit }, Rule { name: "b".into(), limit: Limit::new(5, 60) }];
        let usages = [Usage { previous: 0, current: 2 }, Usage { previous: 0, current: 1 }];
        assert_eq!(refusal(&rules, &usages, 125), Some(56));
        assert_eq!(refusal(&rules, &[Usage::default(), Usage::default()], 125), None);
    }

    #[test]
    fn a_late_attempt_counts_in_the_window_that_already_counts() {
        let rules = vec![
            Rule { name: "a".into(), limit: Limit::new(10, 60) },
            Rule { name: "b".into(), limit: Limit::new(5, 300) },
        ];
        assert_eq!(rules[0].next_key(179), "a@180");
        assert_eq!(served_late_at(&rules, &[0, 0], 179), None);
        assert_eq!(served_late_at(&rules, &[1, 0], 179), Some(180));
        assert_eq!(served_late_at(&rules, &[1, 2], 179), Some(300));
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_slash_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:1:2:3".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(ip_subject(Some(a)), ip_subject(Some(b)));
        assert_eq!(ip_subject(Some(a)), "2001:db8:1:2::/64");
        assert_ne!(ip_subject(Some(a)), ip_subject(Some(other)));
        // IPv4, also when mapped into IPv6, keeps its full address.
        assert_eq!(ip_subject(Some("192.0.2.7".parse().unwrap())), "192.0.2.7");
        assert_eq!(ip_subject(Some("::ffff:192.0.2.7".parse().unwrap())), "192.0.2.7");
        assert_eq!(ip_subject(None), "unknown");
    }
}
