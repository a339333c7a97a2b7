//! The tokens this process verified already, with their claims: a client sends the same access
//! token with every request for 15 minutes, and its signature, base64 and JSON need checking
//! once (issue 17: that was an eighth of a profile GET's CPU; an EdDSA signature costs more
//! than the rest of the request). Envoy's `jwt_authn` filter keeps the same kind of cache.
//!
//! Exact: an entry answers only for the byte-identical token (compared in constant time), whose
//! signature verified with keys that a `TokenService` never changes. A token's claims never
//! change either; what depends on the clock or the endpoint (expiry, the expected type, `iat`
//! and `nbf`) is checked on every use (`Verified::check`). Sessions and the blacklist are the
//! store's and are read on every request as before. Bounded: one entry per slot, the newest
//! verified token of the slot wins.

use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, PoisonError};

use super::tokens::{not_yet_valid, Claims, TokenProblem, TokenType};

/// Entries kept: about 0.5 KB each, so at most a quarter of a MiB.
const SLOTS: usize = 512;

/// A verified token's claims and what of it is checked on every use.
struct Verified {
    token: Box<str>,
    claims: Claims,
    not_before: Option<i64>,
}

impl Verified {
    /// The answer `TokenService::decode` gives, for a token whose other claims passed its
    /// checks: the same problems in the same order (`tokens::check_claims`).
    fn check(&self, expected: Option<TokenType>, now: i64) -> Result<Claims, TokenProblem> {
        if self.claims.exp <= now {
            return Err(TokenProblem::Expired);
        }
        if expected.is_some_and(|t| t != self.claims.token_type) {
            return Err(TokenProblem::WrongType);
        }
        if not_yet_valid(self.claims.iat, self.not_before, now) {
            return Err(TokenProblem::Invalid);
        }
        Ok(self.claims.clone())
    }
}

pub(crate) struct VerifiedTokens {
    slots: Box<[Mutex<Option<Verified>>]>,
    /// Keyed per process, so nobody can aim tokens at one slot (they would only push entries out).
    slot_of: RandomState,
}

impl VerifiedTokens {
    pub(crate) fn new() -> Self {
        Self { slots: (0..SLOTS).map(|_| Mutex::new(None)).collect(), slot_of: RandomState::new() }
    }

    fn slot(&self, token: &str) -> std::sync::MutexGuard<'_, Option<Verified>> {
        // The signature: distinct for distinct tokens of ours, and a fraction of the token to hash.
        let signature = token.rsplit('.').next().unwrap_or(token);
        let index = self.slot_of.hash_one(signature) as usize % self.slots.len();
        // Nothing panics while a slot is locked; if something did, the entry is still whole.
        self.slots[index].lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Forgets every entry (when the keys change), keeping the slots: the builder that sets the
    /// keys runs at every cold start, where a second allocation would be wasted.
    pub(crate) fn clear(&mut self) {
        for slot in self.slots.iter_mut() {
            *slot.get_mut().unwrap_or_else(PoisonError::into_inner) = None;
        }
    }

    /// `TokenService::decode`'s answer for exactly this token, if it was verified before.
    /// Word-wise constant-time comparison (`constant_time_eq`): `subtle`'s byte-wise one was
    /// 3.6 % of a profile GET's instructions (issue 17, callgrind).
    pub(crate) fn check(
        &self,
        token: &str,
        expected: Option<TokenType>,
        now: i64,
    ) -> Option<Result<Claims, TokenProblem>> {
        let slot = self.slot(token);
        let known = slot
            .as_ref()
            .filter(|known| constant_time_eq::constant_time_eq(known.token.as_bytes(), token.as_bytes()))?;
        Some(known.check(expected, now))
    }

    #[cfg(test)]
    pub(crate) fn contains(&self, token: &str) -> bool {
        self.check(token, None, i64::MIN).is_some()
    }

    /// Keeps `token`, whose signature verified and whose claims passed every check.
    pub(crate) fn insert(&self, token: &str, claims: &Claims, not_before: Option<i64>) {
        let verified = Verified { token: token.into(), claims: claims.clone(), not_before };
        *self.slot(token) = Some(verified);
    }

    #[cfg(test)]
    pub(crate) fn slots_in_use(&self) -> usize {
        self.slots.iter().filter(|slot| slot.lock().unwrap_or_else(PoisonError::into_inner).is_some()).count()
    }
}
