//! The old service's tokens during the cutover (docs/operations.md, "Cutover"): with
//! `LEGACY_JWT_SECRET` (its Django `SECRET_KEY`) and until `LEGACY_TOKENS_UNTIL`, a token the
//! old service signed keeps its holder signed in. The app needs no update and nobody is logged out.
//!
//! A *legacy token* is one that this service's own verification refuses as invalid and that
//! verifies under the legacy secret with HS256 (pinned), carries no `kid` in its header and no
//! `sid` claim. The two paths accept disjoint sets of tokens: every token this service issues
//! names its session (`sid`), so none of ours is ever judged here, and a token without `sid` was
//! never valid on the ordinary path; the configuration refuses a legacy secret equal to a signing
//! key. The claims are checked as simplejwt checks them (`tokens::check_claims`: expiry, `jti`,
//! `token_type`, `user_id`), and a legacy token counts only while its user exists, is active and
//! has not changed the password here (`password_version` 0: the version of every imported user),
//! so a password change or reset after the cutover ends the old tokens too.
//!
//! - access token: accepted on every Bearer endpoint unless its `jti` is blacklisted;
//! - refresh token at a refresh route: exchanged, once, for a new session of this service (the
//!   session and the token's blacklist entry in one atomic write; the session id is derived from
//!   the token's `jti`, so a repeat within the grace window finds that session's current pair,
//!   and a later one ends it, as for ordinary tokens);
//! - refresh token at logout: blacklisted; token/verify: verified as the contract says.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use sha2::{Digest, Sha256};

use crate::domain::model::{BlacklistEntry, RotateOutcome, Session};
use crate::domain::sessions::Authenticated;
use crate::domain::tokens::{self, Claims, RawClaims, TokenPair, TokenProblem, TokenService, TokenType};
use crate::domain::Result;
use crate::error::Error;
use crate::store::Store;
use crate::telemetry::{self, names};

/// Verifies the old service's tokens until `until` (Unix seconds). Holds the secret only as a
/// verification key, never in a form that prints.
pub struct LegacyTokens {
    key: DecodingKey,
    validation: Validation,
    until: i64,
}

impl LegacyTokens {
    pub fn new(secret: &[u8], until: i64) -> Self {
        crate::jwt_crypto::install();
        Self { key: DecodingKey::from_secret(secret), validation: tokens::validation(Algorithm::HS256), until }
    }

    /// The claims of `token` if it is a legacy token: `None` when it is not one (not signed by
    /// the old service with HS256, names a `kid` or a `sid`, or the deadline has passed).
    fn decode(
        &self,
        token: &str,
        expected: Option<TokenType>,
        now: i64,
    ) -> Option<std::result::Result<LegacyClaims, TokenProblem>> {
        if now >= self.until {
            return None;
        }
        let header = jsonwebtoken::decode_header(token).ok()?;
        if header.alg != Algorithm::HS256 || header.kid.is_some() {
            return None;
        }
        let raw = jsonwebtoken::decode::<RawClaims>(token, &self.key, &self.validation).ok()?.claims;
        if raw.sid.is_some() {
            return None;
        }
        Some(tokens::check_claims(&raw, expected, now).and_then(|c| {
            let user_id = c.user_id.parse().map_err(|_| TokenProblem::Invalid)?;
            Ok(LegacyClaims { token_type: c.token_type, exp: c.exp, jti: c.jti, user_id })
        }))
    }
}

/// The checked claims of a legacy token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LegacyClaims {
    pub token_type: TokenType,
    pub exp: i64,
    pub jti: String,
    pub user_id: u64,
}

/// A token as one of the two paths accepted it.
pub(crate) enum Decoded {
    Ordinary(Claims),
    Legacy(LegacyClaims),
}

/// This service's verification first; only a token it finds invalid may be a legacy token.
pub(crate) fn decode(
    tokens: &TokenService,
    token: &str,
    expected: Option<TokenType>,
    now: i64,
) -> std::result::Result<Decoded, TokenProblem> {
    match tokens.decode(token, expected, now) {
        Err(TokenProblem::Invalid) => match tokens.legacy().and_then(|l| l.decode(token, expected, now)) {
            Some(legacy) => legacy.map(Decoded::Legacy),
            None => Err(TokenProblem::Invalid),
        },
        other => other.map(Decoded::Ordinary),
    }
}

/// The id of the session a legacy refresh token is exchanged for: derived from its `jti`, so
/// every use of the token names the same session (one of them starts it).
pub(crate) fn session_id(jti: &str) -> String {
    let digest = Sha256::digest(format!("legacy-refresh:{jti}").as_bytes());
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// A legacy access token on a Bearer endpoint: its user, read with the token's blacklist entry
/// (one round trip). The session is `None`: the old service had none.
pub(crate) async fn authenticate(store: &dyn Store, claims: LegacyClaims, now: i64) -> Result<Authenticated> {
    let (user, blacklisted) = store.user_and_blacklist_entry(claims.user_id, &claims.jti, now).await?;
    if blacklisted.is_some() {
        return Err(Error::AccessTokenRejected(TokenProblem::Blacklisted));
    }
    let Some(user) = user else { return Err(Error::UserNotFound) };
    if user.password_version != 0 {
        return Err(Error::AccessTokenRejected(TokenProblem::Invalid));
    }
    if !user.is_active {
        return Err(Error::UserInactive);
    }
    telemetry::count(names::LEGACY_TOKEN_USED);
    Ok(Authenticated { user, session: None, claims: None })
}

/// A legacy refresh token at a refresh route: a new session and its first pair, the token
/// blacklisted (TTL: its `exp`) in the same atomic write. A repeat goes the way of a reused
/// ordinary token: the session's current pair within the grace window, else the session ends.
pub(crate) async fn refresh(
    store: &dyn Store,
    tokens: &TokenService,
    claims: LegacyClaims,
    now: i64,
    grace: std::time::Duration,
) -> Result<TokenPair> {
    let session_id = session_id(&claims.jti);
    let pair = tokens.issue_pair(claims.user_id, &session_id, 0, now);
    let session = Session {
        id: session_id.clone(),
        user_id: claims.user_id,
        refresh_jti: pair.refresh_claims.jti.clone(),
        created_at: now,
        expires_at: pair.refresh_claims.exp,
        password_version: 0,
        // The old service recorded no device; the sessions list shows this one as unnamed.
        device: String::new(),
        ip: String::new(),
        last_used_at: now,
        previous_jti: None,
    };
    let spent = BlacklistEntry {
        jti: claims.jti.clone(),
        user_id: claims.user_id,
        session_id: session_id.clone(),
        expires_at: claims.exp,
        blacklisted_at: now,
    };
    match store.start_session_spending(session, spent, now).await? {
        RotateOutcome::Rotated => {
            telemetry::count(names::LEGACY_TOKEN_USED);
            Ok(pair)
        }
        RotateOutcome::Blacklisted => {
            // As the ordinary path sees a spent token: claims naming the derived session.
            let as_ordinary = Claims {
                token_type: TokenType::Refresh,
                exp: claims.exp,
                iat: now,
                jti: claims.jti,
                user_id: claims.user_id.to_string(),
                sid: session_id,
                pwv: 0,
            };
            crate::domain::sessions::reused_refresh(store, tokens, &as_ordinary, now, grace).await
        }
        RotateOutcome::UserMissing | RotateOutcome::UserInactive => Err(Error::NoActiveAccount),
        RotateOutcome::SessionEnded | RotateOutcome::PasswordVersion(_) => {
            Err(Error::TokenRejected(TokenProblem::Invalid))
        }
    }
}

/// `POST /api/auth/token/verify/` with a legacy token: not blacklisted, and its user exists, is
/// active and has not changed the password here.
pub(crate) async fn verify(store: &dyn Store, claims: LegacyClaims, now: i64) -> Result<()> {
    let (user, blacklisted) = store.user_and_blacklist_entry(claims.user_id, &claims.jti, now).await?;
    if blacklisted.is_some() {
        return Err(Error::VerifyBlacklisted);
    }
    match user {
        Some(user) if user.is_active && user.password_version == 0 => Ok(()),
        _ => Err(Error::TokenRejected(TokenProblem::Invalid)),
    }
}

/// `POST /api/auth/logout/` with a legacy refresh token: blacklisted (TTL: its `exp`). Spent
/// already, it ends the session it was exchanged for (as a logout with a spent ordinary token
/// does) and answers 401.
pub(crate) async fn logout(store: &dyn Store, claims: LegacyClaims, now: i64) -> Result<()> {
    let session_id = session_id(&claims.jti);
    let entry = BlacklistEntry {
        jti: claims.jti,
        user_id: claims.user_id,
        session_id: String::new(),
        expires_at: claims.exp,
        blacklisted_at: now,
    };
    if store.blacklist(entry, now).await? {
        return Ok(());
    }
    if store.end_session(&session_id).await? {
        telemetry::count(names::REFRESH_REUSE_DETECTED);
        tracing::warn!(user_id = claims.user_id, "logout with a spent legacy refresh token: session ended");
    }
    Err(Error::LogoutTokenRejected(TokenProblem::Blacklisted))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    use super::*;

    const OURS: &[u8] = b"ours-ours-ours-ours-ours-ours-ours-ours!";
    const OLD: &[u8] = b"django-insecure-old-service-secret-key-0123456789";

    fn service() -> TokenService {
        TokenService::new(OURS, Duration::from_secs(900), Duration::from_secs(604_800))
            .with_legacy(Some(LegacyTokens::new(OLD, 10_000)))
    }

    fn sign(claims: serde_json::Value, secret: &[u8], header: Header) -> String {
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(secret)).unwrap()
    }

    /// A genuine HS512 token, signed by hand: `jwt_crypto` signs only the algorithms we use.
    fn sign_hs512(claims: serde_json::Value, secret: &[u8]) -> String {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD as b64;
        use base64::Engine;
        use hmac::{KeyInit, Mac};
        let message = format!("{}.{}", b64.encode(r#"{"typ":"JWT","alg":"HS512"}"#), b64.encode(claims.to_string()));
        let mut mac = hmac::Hmac::<sha2::Sha512>::new_from_slice(secret).unwrap();
        mac.update(message.as_bytes());
        format!("{message}.{}", b64.encode(mac.finalize().into_bytes()))
    }

    fn simplejwt(token_type: &str, user_id: serde_json::Value) -> serde_json::Value {
        json!({"token_type": token_type, "exp": 5_000, "iat": 1_000, "jti": "0123456789abcdef0123456789abcdef", "user_id": user_id})
    }

    fn legacy(
        s: &TokenService,
        token: &str,
        expected: Option<TokenType>,
        now: i64,
    ) -> std::result::Result<LegacyClaims, TokenProblem> {
        match decode(s, token, expected, now)? {
            Decoded::Legacy(claims) => Ok(claims),
            Decoded::Ordinary(c) => panic!("accepted as an ordinary token: {c:?}"),
        }
    }

    #[test]
    fn simplejwt_tokens_are_legacy_tokens_with_their_checks() {
        let s = service();
        let h = Header::new(Algorithm::HS256);
        for user_id in [json!("7"), json!(7)] {
            let token = sign(simplejwt("access", user_id), OLD, h.clone());
            let claims = legacy(&s, &token, Some(TokenType::Access), 1_001).unwrap();
            assert_eq!((claims.user_id, claims.token_type, claims.exp), (7, TokenType::Access, 5_000));
        }
        let refresh = sign(simplejwt("refresh", json!("7")), OLD, h.clone());
        assert_eq!(legacy(&s, &refresh, Some(TokenType::Access), 1_001), Err(TokenProblem::WrongType));
        assert_eq!(legacy(&s, &refresh, None, 5_000), Err(TokenProblem::Expired));
        let mut no_jti = simplejwt("access", json!("7"));
        no_jti.as_object_mut().unwrap().remove("jti");
        assert_eq!(legacy(&s, &sign(no_jti, OLD, h.clone()), None, 1_001), Err(TokenProblem::NoId));
        let mut no_type = simplejwt("access", json!("7"));
        no_type.as_object_mut().unwrap().remove("token_type");
        assert_eq!(legacy(&s, &sign(no_type, OLD, h.clone()), None, 1_001), Err(TokenProblem::NoType));
        assert_eq!(legacy(&s, &sign(simplejwt("access", json!("x")), OLD, h), None, 1_001), Err(TokenProblem::Invalid));
    }

    #[test]
    fn the_two_paths_accept_disjoint_tokens() {
        let s = service();
        // Ours, with sid, is never judged by the legacy path, even signed with the legacy secret.
        let ours = s.issue_pair(7, "sess", 0, 1_000).access;
        assert!(matches!(decode(&s, &ours, None, 1_001), Ok(Decoded::Ordinary(_))));
        let mut with_sid = simplejwt("access", json!("7"));
        with_sid["sid"] = json!("sess");
        let forged = sign(with_sid, OLD, Header::new(Algorithm::HS256));
        assert_eq!(decode(&s, &forged, None, 1_001).err(), Some(TokenProblem::Invalid));
        // Without sid, signed with our key: neither path.
        let sidless_ours = sign(simplejwt("access", json!("7")), OURS, Header::new(Algorithm::HS256));
        assert_eq!(decode(&s, &sidless_ours, None, 1_001).err(), Some(TokenProblem::Invalid));
        // A kid in the header, or another algorithm (pinned HS256), is not the old service's.
        let mut kid = Header::new(Algorithm::HS256);
        kid.kid = Some("k1".into());
        assert_eq!(
            decode(&s, &sign(simplejwt("access", json!("7")), OLD, kid), None, 1_001).err(),
            Some(TokenProblem::Invalid)
        );
        let hs512 = sign_hs512(simplejwt("access", json!("7")), OLD);
        assert_eq!(decode(&s, &hs512, None, 1_001).err(), Some(TokenProblem::Invalid));
        // After the deadline, and without the legacy secret: refused as before.
        let token = sign(simplejwt("access", json!("7")), OLD, Header::new(Algorithm::HS256));
        assert!(legacy(&s, &token, None, 4_999).is_ok());
        let late = TokenService::new(OURS, Duration::from_secs(900), Duration::from_secs(604_800))
            .with_legacy(Some(LegacyTokens::new(OLD, 1_001)));
        assert_eq!(decode(&late, &token, None, 1_001).err(), Some(TokenProblem::Invalid));
        let without = TokenService::new(OURS, Duration::from_secs(900), Duration::from_secs(604_800));
        assert_eq!(decode(&without, &token, None, 1_001).err(), Some(TokenProblem::Invalid));
    }

    #[test]
    fn the_session_id_is_the_same_for_every_use_of_a_token() {
        assert_eq!(session_id("a"), session_id("a"));
        assert_ne!(session_id("a"), session_id("b"));
        assert_eq!(session_id("a").len(), 32);
    }
}
