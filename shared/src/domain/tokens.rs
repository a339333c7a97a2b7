//! JWTs as the old service issues them (simplejwt's claims), plus the session id `sid`.
//!
//! The algorithm is pinned (HS256): a token whose header names any other algorithm, `none`
//! included, is invalid. `token_type` is checked both ways.

use std::time::Duration;

use std::collections::HashMap;

use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Deserializer, Serialize};

use crate::domain::verified_tokens::VerifiedTokens;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    Access,
    Refresh,
}

impl TokenType {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenType::Access => "access",
            TokenType::Refresh => "refresh",
        }
    }
}

/// The claims, in the old service's order, then `sid`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Claims {
    pub token_type: TokenType,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    /// The user's integer id as a string, as simplejwt ≥ 5.4 writes it.
    pub user_id: String,
    /// The session this token belongs to.
    pub sid: String,
    /// The password version the session was opened under (0, and left out, until the first
    /// password change). Only a hint that spares the refresh rotation a read: the session's
    /// stored version is what counts (`store::SessionStore::rotate_refresh`).
    #[serde(skip_serializing_if = "is_zero")]
    pub pwv: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Claims {
    pub fn user_id(&self) -> u64 {
        self.user_id.parse().unwrap_or(0)
    }
}

/// Why a token was refused; the text is simplejwt's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenProblem {
    Invalid,
    Expired,
    WrongType,
    NoType,
    NoId,
    Blacklisted,
}

impl TokenProblem {
    pub fn message(self) -> &'static str {
        match self {
            TokenProblem::Invalid => "Token is invalid",
            TokenProblem::Expired => "Token is expired",
            TokenProblem::WrongType => "Token has wrong type",
            TokenProblem::NoType => "Token has no type",
            TokenProblem::NoId => "Token has no id",
            TokenProblem::Blacklisted => "Token is blacklisted",
        }
    }
}

/// A freshly issued pair.
#[derive(Debug, Clone)]
pub struct TokenPair {
    pub access: String,
    pub refresh: String,
    pub access_claims: Claims,
    pub refresh_claims: Claims,
}

/// How tokens are signed: HS256 with a shared secret (the default, as the old service), or
/// EdDSA (Ed25519) with a private key whose public half is published at `/.well-known/jwks.json`.
#[derive(Clone, PartialEq, Eq)]
pub enum Signing {
    Hs256,
    EdDsa {
        /// PKCS#8 PEM of the Ed25519 private key.
        private_key_pem: String,
        /// `kid` of the key; the RFC 7638 thumbprint when not given.
        key_id: Option<String>,
        /// A JWK Set of retired public keys that still verify until their tokens expire.
        previous_keys: Option<String>,
    },
}

/// Without the private key: a configuration may be logged.
impl std::fmt::Debug for Signing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Signing::Hs256 => f.write_str("Hs256"),
            Signing::EdDsa { key_id, .. } => f.debug_struct("EdDsa").field("key_id", key_id).finish_non_exhaustive(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SigningError(pub String);

/// Signs and checks tokens; built once per process from the configuration.
pub struct TokenService {
    /// The one algorithm accepted (pinned: a header naming any other is invalid).
    algorithm: Algorithm,
    encoding: EncodingKey,
    header: Header,
    /// HS256: the one key. EdDSA: the keys by `kid`, current and retired.
    verify_keys: HashMap<Option<String>, DecodingKey>,
    validation: Validation,
    public_keys: JwkSet,
    pub access_lifetime: Duration,
    pub refresh_lifetime: Duration,
    /// The old service's tokens, accepted until a deadline (`domain::legacy`); none by default.
    legacy: Option<crate::domain::legacy::LegacyTokens>,
    /// Tokens verified before, so each is parsed and its signature checked once.
    verified: VerifiedTokens,
}

/// What is read from a token before the checks: every claim may be missing or odd.
#[derive(Deserialize)]
pub(crate) struct RawClaims {
    token_type: Option<serde_json::Value>,
    exp: Option<serde_json::Value>,
    iat: Option<serde_json::Value>,
    jti: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "lenient_id")]
    user_id: Option<String>,
    pub(crate) sid: Option<serde_json::Value>,
    nbf: Option<serde_json::Value>,
    pwv: Option<serde_json::Value>,
}

/// How far ahead of our clock an `iat` or `nbf` may be (clocks of several Lambda hosts differ).
const CLOCK_SKEW: i64 = 60;

/// simplejwt accepts `user_id` as a string or an integer.
fn lenient_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => Some(s),
        serde_json::Value::Number(n) if n.is_u64() => Some(n.to_string()),
        _ => None,
    })
}

pub fn new_jti() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

pub(crate) fn validation(algorithm: Algorithm) -> Validation {
    let mut validation = Validation::new(algorithm);
    // Expiry is checked in `decode` against the caller's clock, with simplejwt's rule (exp <= now).
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    validation
}

impl TokenService {
    /// HS256 with `secret`, as the old service signs.
    pub fn new(secret: &[u8], access_lifetime: Duration, refresh_lifetime: Duration) -> Self {
        crate::jwt_crypto::install();
        Self {
            algorithm: Algorithm::HS256,
            encoding: EncodingKey::from_secret(secret),
            header: Header::new(Algorithm::HS256),
            verify_keys: HashMap::from([(None, DecodingKey::from_secret(secret))]),
            validation: validation(Algorithm::HS256),
            public_keys: JwkSet { keys: Vec::new() },
            access_lifetime,
            refresh_lifetime,
            legacy: None,
            verified: VerifiedTokens::new(),
        }
    }

    /// The service `signing` asks for; HS256 uses `secret`.
    pub fn with_signing(
        signing: &Signing,
        secret: &[u8],
        access_lifetime: Duration,
        refresh_lifetime: Duration,
    ) -> Result<Self, SigningError> {
        let Signing::EdDsa { private_key_pem, key_id, previous_keys } = signing else {
            return Ok(Self::new(secret, access_lifetime, refresh_lifetime));
        };
        crate::jwt_crypto::install();
        let bad = |what: &str, e: &dyn std::fmt::Display| SigningError(format!("{what}: {e}"));
        let encoding = EncodingKey::from_ed_pem(private_key_pem.as_bytes()).map_err(|e| bad("JWT_PRIVATE_KEY", &e))?;
        let mut current =
            Jwk::from_encoding_key(&encoding, Algorithm::EdDSA).map_err(|e| bad("JWT_PRIVATE_KEY", &e))?;
        let kid = match key_id {
            Some(kid) => kid.clone(),
            None => current.thumbprint(ThumbprintHash::SHA256).map_err(|e| bad("JWT_PRIVATE_KEY", &e))?,
        };
        current.common.key_id = Some(kid.clone());
        current.common.public_key_use = Some(PublicKeyUse::Signature);
        current.common.key_algorithm = Some(KeyAlgorithm::EdDSA);
        let mut public_keys = vec![current];
        if let Some(text) = previous_keys {
            let retired: JwkSet = serde_json::from_str(text).map_err(|e| bad("JWT_PREVIOUS_KEYS", &e))?;
            public_keys.extend(retired.keys.into_iter().filter(|k| k.common.key_id.as_ref() != Some(&kid)));
        }
        let mut verify_keys = HashMap::new();
        for jwk in &public_keys {
            let Some(kid) = jwk.common.key_id.clone() else {
                return Err(SigningError("JWT_PREVIOUS_KEYS: every key needs a kid".into()));
            };
            let key = DecodingKey::from_jwk(jwk).map_err(|e| bad("JWT_PREVIOUS_KEYS", &e))?;
            verify_keys.insert(Some(kid), key);
        }
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid);
        Ok(Self {
            algorithm: Algorithm::EdDSA,
            encoding,
            header,
            verify_keys,
            validation: validation(Algorithm::EdDSA),
            public_keys: JwkSet { keys: public_keys },
            access_lifetime,
            refresh_lifetime,
            legacy: None,
            verified: VerifiedTokens::new(),
        })
    }

    /// HS256 key rotation: tokens are signed with `key_id` in their header, and the `previous`
    /// secrets (by kid) still verify tokens that name them, until those expire. A token without
    /// a `kid` (issued before kids, e.g. held by the mobile apps) verifies under the current
    /// secret only. Nothing changes with EdDSA (its keys come with [`Signing::EdDsa`]).
    pub fn with_hs256_keys<'a>(
        mut self,
        current: &[u8],
        key_id: Option<&str>,
        previous: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    ) -> Self {
        if self.algorithm != Algorithm::HS256 {
            return self;
        }
        self.encoding = EncodingKey::from_secret(current);
        self.verify_keys = HashMap::from([(None, DecodingKey::from_secret(current))]);
        // What the old keys verified is no longer known to be valid.
        self.verified.clear();
        if let Some(kid) = key_id {
            self.header.kid = Some(kid.to_string());
            self.verify_keys.insert(Some(kid.to_string()), DecodingKey::from_secret(current));
            for (kid, secret) in previous {
                self.verify_keys.entry(Some(kid.to_string())).or_insert_with(|| DecodingKey::from_secret(secret));
            }
        }
        self
    }

    /// The `kid` new tokens carry (none: HS256 with a plain `JWT_SECRET`).
    pub fn key_id(&self) -> Option<&str> {
        self.header.kid.as_deref()
    }

    /// The public keys that verify tokens (`/.well-known/jwks.json`); empty with HS256.
    pub fn public_keys(&self) -> &JwkSet {
        &self.public_keys
    }

    fn sign(&self, claims: &Claims) -> String {
        jsonwebtoken::encode(&self.header, claims, &self.encoding)
            .expect("signing plain claims with a checked key cannot fail")
    }

    /// The claims of a new refresh token of the session.
    pub fn refresh_claims(&self, user_id: u64, session_id: &str, password_version: u64, now: i64) -> Claims {
        Claims {
            token_type: TokenType::Refresh,
            exp: now + self.refresh_lifetime.as_secs() as i64,
            iat: now,
            jti: new_jti(),
            user_id: user_id.to_string(),
            sid: session_id.to_string(),
            pwv: password_version,
        }
    }

    /// Signs the refresh token and the access token derived from it (same `iat`, own `jti`).
    pub fn sign_pair(&self, refresh_claims: Claims) -> TokenPair {
        let access_claims = Claims {
            token_type: TokenType::Access,
            exp: refresh_claims.iat + self.access_lifetime.as_secs() as i64,
            jti: new_jti(),
            ..refresh_claims.clone()
        };
        TokenPair {
            access: self.sign(&access_claims),
            refresh: self.sign(&refresh_claims),
            access_claims,
            refresh_claims,
        }
    }

    /// The session's current refresh token, signed again (HS256 and EdDSA signatures are
    /// deterministic, so it is the very token the rotation issued), with a fresh access token.
    pub fn current_pair(&self, session: &crate::domain::model::Session) -> TokenPair {
        self.sign_pair(Claims {
            token_type: TokenType::Refresh,
            exp: session.expires_at,
            iat: session.expires_at - self.refresh_lifetime.as_secs() as i64,
            jti: session.refresh_jti.clone(),
            user_id: session.user_id.to_string(),
            sid: session.id.clone(),
            pwv: session.password_version,
        })
    }

    /// The session's current refresh token, as [`Self::current_pair`], with an access token
    /// issued `now` (for a lost rotation answer recovered after the access token's lifetime).
    pub fn current_pair_with_fresh_access(&self, session: &crate::domain::model::Session, now: i64) -> TokenPair {
        let mut pair = self.current_pair(session);
        pair.access_claims =
            Claims { iat: now, exp: now + self.access_lifetime.as_secs() as i64, jti: new_jti(), ..pair.access_claims };
        pair.access = self.sign(&pair.access_claims);
        pair
    }

    /// A new pair for the session.
    pub fn issue_pair(&self, user_id: u64, session_id: &str, password_version: u64, now: i64) -> TokenPair {
        self.sign_pair(self.refresh_claims(user_id, session_id, password_version, now))
    }

    /// Checks signature, expiry, `jti` and, when `expected` is given, `token_type` (in simplejwt's order).
    pub fn decode(&self, token: &str, expected: Option<TokenType>, now: i64) -> Result<Claims, TokenProblem> {
        if let Some(answer) = self.verified.check(token, expected, now) {
            return answer;
        }
        let raw = match self.decode_current(token) {
            Some(raw) => raw,
            None => self.decode_by_kid(token)?,
        };
        let checked = check_claims(&raw, expected, now)?;
        let not_before = not_before(&raw);
        // Every token this service issues names its session; one without can't be tied to any.
        let sid = match raw.sid {
            Some(serde_json::Value::String(s)) if !s.is_empty() => s,
            _ => return Err(TokenProblem::Invalid),
        };
        let pwv = raw.pwv.as_ref().and_then(serde_json::Value::as_u64).unwrap_or(0);
        let CheckedClaims { token_type, exp, iat, jti, user_id } = checked;
        let claims = Claims { token_type, exp, iat, jti, user_id, sid, pwv };
        // A refresh token is spent at its first use: keeping it would only push out access tokens.
        if claims.token_type == TokenType::Access {
            self.verified.insert(token, &claims, not_before);
        }
        Ok(claims)
    }

    /// The claims of a token signed with the current key and naming its `kid` (every token
    /// issued since the last key change): one parse of the header, where `decode_by_kid` reads it
    /// once to pick the key and once more to verify (issue 17: each authenticated request pays
    /// it). `None` sends the token to `decode_by_kid`, which decides exactly as before.
    fn decode_current(&self, token: &str) -> Option<RawClaims> {
        let key = self.verify_keys.get(&self.header.kid)?;
        let data = jsonwebtoken::decode::<RawClaims>(token, key, &self.validation).ok()?;
        (data.header.alg == self.algorithm && data.header.kid == self.header.kid).then_some(data.claims)
    }

    /// The claims of a token verified with the key its `kid` names, after `decode_current`: an
    /// unknown kid is invalid; no kid at all, the current key (tokens issued before kids).
    fn decode_by_kid(&self, token: &str) -> Result<RawClaims, TokenProblem> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenProblem::Invalid)?;
        if header.alg != self.algorithm {
            return Err(TokenProblem::Invalid);
        }
        // The current key's tokens come here only when `decode_current` refused them already:
        // the same key would refuse them again (a second HMAC for every legacy token).
        if header.kid == self.header.kid {
            return Err(TokenProblem::Invalid);
        }
        let key = self.verify_keys.get(&header.kid).ok_or(TokenProblem::Invalid)?;
        Ok(jsonwebtoken::decode::<RawClaims>(token, key, &self.validation).map_err(|_| TokenProblem::Invalid)?.claims)
    }

    /// The old service's tokens, when `LEGACY_JWT_SECRET` is configured (`domain::legacy`).
    pub fn with_legacy(mut self, legacy: Option<crate::domain::legacy::LegacyTokens>) -> Self {
        self.legacy = legacy;
        self
    }

    /// The verifier of the old service's tokens, while they are accepted.
    pub(crate) fn legacy(&self) -> Option<&crate::domain::legacy::LegacyTokens> {
        self.legacy.as_ref()
    }
}

/// Issued in the future (beyond a minute of clock skew), or `nbf` ahead.
pub(crate) fn not_yet_valid(iat: i64, not_before: Option<i64>, now: i64) -> bool {
    iat > now + CLOCK_SKEW || not_before.is_some_and(|nbf| nbf > now + CLOCK_SKEW)
}

fn not_before(raw: &RawClaims) -> Option<i64> {
    raw.nbf.as_ref().and_then(serde_json::Value::as_i64)
}

/// simplejwt's claims of a token whose signature verified, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CheckedClaims {
    pub token_type: TokenType,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    /// Digits only (a string or an integer in the token).
    pub user_id: String,
}

/// Expiry, `jti`, `token_type` (against `expected`), `iat`/`nbf` and `user_id`, in simplejwt's
/// order and with its messages: what this service's and the old service's tokens share.
pub(crate) fn check_claims(
    raw: &RawClaims,
    expected: Option<TokenType>,
    now: i64,
) -> Result<CheckedClaims, TokenProblem> {
    let exp = raw.exp.as_ref().and_then(serde_json::Value::as_i64).ok_or(TokenProblem::Invalid)?;
    if exp <= now {
        return Err(TokenProblem::Expired);
    }
    let jti = match &raw.jti {
        None => return Err(TokenProblem::NoId),
        Some(serde_json::Value::String(s)) if !s.is_empty() => s.clone(),
        Some(_) => return Err(TokenProblem::Invalid),
    };
    let token_type = match &raw.token_type {
        None => return Err(TokenProblem::NoType),
        Some(serde_json::Value::String(s)) if s == "access" => TokenType::Access,
        Some(serde_json::Value::String(s)) if s == "refresh" => TokenType::Refresh,
        Some(_) => return Err(TokenProblem::WrongType),
    };
    if expected.is_some_and(|t| t != token_type) {
        return Err(TokenProblem::WrongType);
    }
    let iat = raw.iat.as_ref().and_then(serde_json::Value::as_i64).unwrap_or(0);
    if not_yet_valid(iat, not_before(raw), now) {
        return Err(TokenProblem::Invalid);
    }
    let user_id = raw.user_id.clone().ok_or(TokenProblem::Invalid)?;
    Ok(CheckedClaims { token_type, exp, iat, jti, user_id })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as b64;
    use base64::Engine;

    const SECRET: &[u8] = b"test-secret-test-secret-test-secret!";

    fn service() -> TokenService {
        TokenService::new(SECRET, Duration::from_secs(900), Duration::from_secs(604_800))
    }

    fn payload(token: &str) -> serde_json::Value {
        use jsonwebtoken::dangerous::insecure_decode;
        insecure_decode::<serde_json::Value>(token).unwrap().claims
    }

    fn forge(claims: serde_json::Value, secret: &[u8]) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(secret)).unwrap()
    }

    #[test]
    fn pair_has_the_old_claims_in_order() {
        let pair = service().issue_pair(7, "sess", 0, 1_000);
        let access = payload(&pair.access);
        let keys: Vec<&String> = access.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["token_type", "exp", "iat", "jti", "user_id", "sid"]);
        assert_eq!(access["user_id"], "7");
        assert_eq!(access["exp"].as_i64().unwrap() - access["iat"].as_i64().unwrap(), 900);
        let refresh = payload(&pair.refresh);
        assert_eq!(refresh["exp"].as_i64().unwrap() - refresh["iat"].as_i64().unwrap(), 604_800);
        assert_eq!(refresh["iat"], access["iat"]);
        assert_ne!(refresh["jti"], access["jti"]);
        let jti = access["jti"].as_str().unwrap();
        assert!(jti.len() == 32 && jti.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    }

    #[test]
    fn decode_checks_type_expiry_signature_and_id() {
        let s = service();
        let pair = s.issue_pair(7, "sess", 0, 1_000);
        assert_eq!(s.decode(&pair.access, Some(TokenType::Access), 1_001).unwrap().user_id(), 7);
        assert_eq!(s.decode(&pair.refresh, Some(TokenType::Access), 1_001), Err(TokenProblem::WrongType));
        assert_eq!(s.decode(&pair.access, Some(TokenType::Refresh), 1_001), Err(TokenProblem::WrongType));
        assert!(s.decode(&pair.refresh, None, 1_001).is_ok());
        assert_eq!(s.decode(&pair.access, None, 1_900), Err(TokenProblem::Expired));
        assert_eq!(s.decode("garbage", None, 1_001), Err(TokenProblem::Invalid));
        let other =
            TokenService::new(b"another-secret-another-secret-xx", Duration::from_secs(9), Duration::from_secs(9));
        assert_eq!(other.decode(&pair.access, None, 1_001), Err(TokenProblem::Invalid));
        // Tampered payload: swap the user id, keep the signature.
        let parts: Vec<&str> = pair.access.split('.').collect();
        let mut claims = payload(&pair.access);
        claims["user_id"] = "8".into();
        let tampered = format!("{}.{}.{}", parts[0], b64.encode(claims.to_string().as_bytes()), parts[2]);
        assert_eq!(s.decode(&tampered, None, 1_001), Err(TokenProblem::Invalid));
        // alg: none
        let none = format!("{}.{}.", b64.encode(br#"{"alg":"none","typ":"JWT"}"#), parts[1]);
        assert_eq!(s.decode(&none, None, 1_001), Err(TokenProblem::Invalid));
    }

    #[test]
    fn claim_problems_follow_simplejwt() {
        let s = service();
        let base = serde_json::json!({"token_type": "access", "exp": 5_000, "iat": 1_000, "jti": "a", "user_id": 7, "sid": "s"});
        assert_eq!(s.decode(&forge(base.clone(), SECRET), None, 1_001).unwrap().user_id, "7");
        let mut no_jti = base.clone();
        no_jti.as_object_mut().unwrap().remove("jti");
        assert_eq!(s.decode(&forge(no_jti, SECRET), None, 1_001), Err(TokenProblem::NoId));
        let mut no_type = base.clone();
        no_type.as_object_mut().unwrap().remove("token_type");
        assert_eq!(s.decode(&forge(no_type, SECRET), None, 1_001), Err(TokenProblem::NoType));
        let mut no_sid = base.clone();
        no_sid.as_object_mut().unwrap().remove("sid");
        assert_eq!(s.decode(&forge(no_sid, SECRET), None, 1_001), Err(TokenProblem::Invalid));
        let mut no_exp = base;
        no_exp.as_object_mut().unwrap().remove("exp");
        assert_eq!(s.decode(&forge(no_exp, SECRET), None, 1_001), Err(TokenProblem::Invalid));
    }

    /// Test keys only (made with `openssl genpkey -algorithm ed25519`).
    pub(crate) const ED_KEY_1: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIIk6Ylp807M1WMtvoiS1MQXKbV6KWDtve8AKlT6gw6Ti\n-----END PRIVATE KEY-----\n";
    pub(crate) const ED_KEY_2: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJI1rze+/eb3fS43VaHukmDyk6AfOufBZ3Cuk5sVwBib\n-----END PRIVATE KEY-----\n";

    fn ed(key: &str, kid: Option<&str>, previous: Option<String>) -> TokenService {
        let signing =
            Signing::EdDsa { private_key_pem: key.into(), key_id: kid.map(str::to_string), previous_keys: previous };
        TokenService::with_signing(&signing, SECRET, Duration::from_secs(900), Duration::from_secs(604_800)).unwrap()
    }

    #[test]
    fn eddsa_signs_with_kid_and_publishes_the_public_key() {
        let s = ed(ED_KEY_1, None, None);
        let pair = s.issue_pair(3, "sess", 0, 1_000);
        let header = jsonwebtoken::decode_header(&pair.access).unwrap();
        assert_eq!(header.alg, Algorithm::EdDSA);
        let jwks = serde_json::to_value(s.public_keys()).unwrap();
        let key = &jwks["keys"][0];
        assert_eq!(
            (key["kty"].as_str(), key["crv"].as_str(), key["alg"].as_str(), key["use"].as_str()),
            (Some("OKP"), Some("Ed25519"), Some("EdDSA"), Some("sig"))
        );
        assert_eq!(key["kid"].as_str(), header.kid.as_deref());
        assert!(key.get("d").is_none(), "no private part is published");
        assert_eq!(s.decode(&pair.access, Some(TokenType::Access), 1_001).unwrap().user_id(), 3);
        // Deterministic: the grace window's re-signed refresh token is the same token.
        assert_eq!(s.sign(&pair.refresh_claims), pair.refresh);
    }

    #[test]
    fn rotation_keeps_old_tokens_valid_until_they_expire() {
        let old = ed(ED_KEY_1, Some("2026-01"), None);
        let old_token = old.issue_pair(3, "sess", 0, 1_000).access;
        let retired = serde_json::to_string(old.public_keys()).unwrap();
        let new = ed(ED_KEY_2, Some("2026-02"), Some(retired));
        assert_eq!(new.public_keys().keys.len(), 2);
        assert!(new.decode(&old_token, None, 1_001).is_ok(), "signed by the retired key");
        assert!(new.decode(&new.issue_pair(3, "sess", 0, 1_000).access, None, 1_001).is_ok());
        // Without the retired key published, the old token is invalid.
        assert_eq!(ed(ED_KEY_2, Some("2026-02"), None).decode(&old_token, None, 1_001), Err(TokenProblem::Invalid));
    }

    fn hs(secret: &[u8], kid: &str, previous: &[(&str, &[u8])]) -> TokenService {
        service().with_hs256_keys(secret, Some(kid), previous.iter().copied())
    }

    #[test]
    fn hs256_rotation_by_kid_keeps_old_and_kidless_tokens_valid() {
        const OLD: &[u8] = b"old-secret-old-secret-old-secret-0";
        const NEW: &[u8] = b"new-secret-new-secret-new-secret-1";
        // Before kids: the old service's shape, no kid in the header.
        let kidless = TokenService::new(OLD, Duration::from_secs(900), Duration::from_secs(604_800))
            .issue_pair(3, "sess", 0, 1_000)
            .access;
        let first = hs(OLD, "2026-01", &[]);
        let old_token = first.issue_pair(3, "sess", 0, 1_000).access;
        assert_eq!(jsonwebtoken::decode_header(&old_token).unwrap().kid.as_deref(), Some("2026-01"));
        assert_eq!(first.key_id(), Some("2026-01"));
        assert!(first.decode(&kidless, None, 1_001).is_ok(), "a token without kid verifies under the current key");
        // Rotated: the new key signs, the old one still verifies its tokens.
        let rotated = hs(NEW, "2026-02", &[("2026-01", OLD)]);
        let new_token = rotated.issue_pair(3, "sess", 0, 1_000).access;
        assert_eq!(jsonwebtoken::decode_header(&new_token).unwrap().kid.as_deref(), Some("2026-02"));
        assert!(rotated.decode(&old_token, None, 1_001).is_ok());
        assert!(rotated.decode(&new_token, None, 1_001).is_ok());
        // A kid-less token verifies under the current key only.
        assert_eq!(rotated.decode(&kidless, None, 1_001), Err(TokenProblem::Invalid));
        // Retired for good: the old kid is unknown.
        assert_eq!(hs(NEW, "2026-02", &[]).decode(&old_token, None, 1_001), Err(TokenProblem::Invalid));
        // A token naming `kid` but signed with `secret`.
        let claims = rotated.issue_pair(3, "sess", 0, 1_000).access_claims;
        let forge = |kid: &str, secret: &[u8]| {
            let mut header = Header::new(Algorithm::HS256);
            header.kid = Some(kid.into());
            jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(secret)).unwrap()
        };
        // A token naming one kid but signed with another key is invalid.
        assert_eq!(rotated.decode(&forge("2026-02", OLD), None, 1_001), Err(TokenProblem::Invalid));
        // Nor one naming the retired kid but signed with the current key: `decode_current`
        // verifies with the current key first, and the kid the token names still decides.
        assert_eq!(rotated.decode(&forge("2026-01", NEW), None, 1_001), Err(TokenProblem::Invalid));
        // Without kids (plain JWT_SECRET) a token naming a kid is unknown.
        assert_eq!(
            service().decode(&hs(SECRET, "x", &[]).issue_pair(3, "s", 0, 1_000).access, None, 1_001),
            Err(TokenProblem::Invalid)
        );
    }

    #[test]
    fn algorithm_confusion_is_refused() {
        let asymmetric = ed(ED_KEY_1, Some("k1"), None);
        let genuine = asymmetric.issue_pair(3, "sess", 0, 1_000);
        // HS256 signed with the published public key as the HMAC secret.
        let jwk = &asymmetric.public_keys().keys[0];
        let public_x = match &jwk.algorithm {
            jsonwebtoken::jwk::AlgorithmParameters::OctetKeyPair(p) => p.x.clone(),
            other => panic!("{other:?}"),
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("k1".into());
        for secret in [public_x.as_bytes().to_vec(), b64.decode(&public_x).unwrap()] {
            let forged =
                jsonwebtoken::encode(&header, &genuine.access_claims, &EncodingKey::from_secret(&secret)).unwrap();
            assert_eq!(asymmetric.decode(&forged, None, 1_001), Err(TokenProblem::Invalid));
        }
        // An HS256 service refuses EdDSA tokens, and the other way round.
        assert_eq!(service().decode(&genuine.access, None, 1_001), Err(TokenProblem::Invalid));
        assert_eq!(
            asymmetric.decode(&service().issue_pair(3, "sess", 0, 1_000).access, None, 1_001),
            Err(TokenProblem::Invalid)
        );
        // An unknown kid.
        let stranger = ed(ED_KEY_2, Some("k1"), None).issue_pair(3, "sess", 0, 1_000).access;
        assert_eq!(asymmetric.decode(&stranger, None, 1_001), Err(TokenProblem::Invalid));
    }

    #[test]
    fn hostile_shapes_are_invalid_not_panics() {
        let s = service();
        let pair = s.issue_pair(7, "sess", 0, 1_000);
        let parts: Vec<&str> = pair.access.split('.').collect();
        let huge_header = format!(
            "{}.{}.{}",
            b64.encode(format!("{{\"alg\":\"HS256\",\"x\":\"{}\"}}", "a".repeat(100_000))),
            parts[1],
            parts[2]
        );
        let non_json = format!("{}.{}.{}", b64.encode("not json"), b64.encode("{also not"), parts[2]);
        let payload_array = format!("{}.{}.{}", parts[0], b64.encode("[1,2,3]"), parts[2]);
        for token in
            [huge_header.as_str(), non_json.as_str(), payload_array.as_str(), "", ".", "..", "a.b.c.d", "\u{0}"]
        {
            assert_eq!(s.decode(token, None, 1_001), Err(TokenProblem::Invalid), "{token:.40}");
        }
        // Not yet valid tokens: simplejwt checks no `nbf`/`iat`; ours refuses an `iat` in the future.
        let mut claims = serde_json::to_value(&pair.access_claims).unwrap();
        claims["iat"] = serde_json::json!(5_000);
        assert_eq!(s.decode(&forge(claims, SECRET), None, 1_001), Err(TokenProblem::Invalid));
        let mut claims = serde_json::to_value(&pair.access_claims).unwrap();
        claims["nbf"] = serde_json::json!(5_000);
        assert_eq!(s.decode(&forge(claims, SECRET), None, 1_001), Err(TokenProblem::Invalid));
    }

    /// A token verified once answers every later check as a first check would: expiry, the
    /// expected type, `iat` and `nbf` against the clock of each use (`domain::verified_tokens`).
    #[test]
    fn a_verified_token_answers_as_a_first_check_would() {
        let pair = service().issue_pair(7, "sess", 0, 1_000);
        let mut claims = serde_json::to_value(&pair.access_claims).unwrap();
        claims["nbf"] = serde_json::json!(1_050);
        let not_before = forge(claims, SECRET);
        for token in [&pair.access, &pair.refresh, &not_before] {
            let warm = service();
            assert!(warm.decode(token, None, 1_001).is_ok());
            let is_access = !std::ptr::eq(token, &pair.refresh);
            assert_eq!(warm.verified.contains(token), is_access, "only verified access tokens are kept");
            for expected in [None, Some(TokenType::Access), Some(TokenType::Refresh)] {
                // 935 and 985: before `iat` and before `nbf`, beyond the clock skew.
                for now in [935, 985, 1_001, 1_899, 1_900, 700_000] {
                    let first = service().decode(token, expected, now);
                    assert_eq!(warm.decode(token, expected, now), first, "{expected:?} at {now}");
                }
            }
        }
        let refused = service();
        assert_eq!(
            refused.decode(&forge(serde_json::json!({"exp": 5_000}), SECRET), None, 1_001),
            Err(TokenProblem::NoId)
        );
        assert!(refused.verified.slots_in_use() == 0, "a refused token is not kept");
    }

    /// New keys forget what the old ones verified.
    #[test]
    fn new_keys_forget_the_tokens_the_old_ones_verified() {
        let s = service();
        let token = s.issue_pair(7, "sess", 0, 1_000).access;
        assert!(s.decode(&token, None, 1_001).is_ok());
        let rekeyed = s.with_hs256_keys(b"another-secret-another-secret-xx", None, []);
        assert_eq!(rekeyed.decode(&token, None, 1_001), Err(TokenProblem::Invalid));
    }

    /// The attack on a cache of verified tokens, fired in parallel: tokens that share all but
    /// their signature with a verified one, or its signature with other claims, while the
    /// genuine tokens are verified (and kept) by other threads.
    #[test]
    fn tokens_like_verified_ones_stay_invalid_under_parallel_use() {
        let s = std::sync::Arc::new(service());
        let genuine: Vec<String> = (0..64).map(|i| s.issue_pair(i, &format!("s{i}"), 0, 1_000).access).collect();
        let forged: Vec<String> = genuine
            .iter()
            .enumerate()
            .flat_map(|(i, token)| {
                let (head, signature) = token.rsplit_once('.').unwrap();
                let other = genuine[(i + 1) % genuine.len()].rsplit_once('.').unwrap().1;
                let mut flipped = signature.to_string();
                let last = if flipped.ends_with('A') { "B" } else { "A" };
                flipped.replace_range(flipped.len() - 1.., last);
                let mut claims = payload(token);
                claims["user_id"] = "999".into();
                let payload = b64.encode(claims.to_string().as_bytes());
                let header = head.split('.').next().unwrap();
                [
                    format!("{head}.{other}"),
                    format!("{head}.{flipped}"),
                    format!("{header}.{payload}.{signature}"),
                    format!("{token}x"),
                ]
            })
            .collect();
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let (s, genuine, forged) = (s.clone(), genuine.clone(), forged.clone());
                std::thread::spawn(move || {
                    for round in 0..200 {
                        let i = (t * 7 + round) % genuine.len();
                        assert!(s.decode(&genuine[i], Some(TokenType::Access), 1_001).is_ok());
                        for token in &forged[i * 4..i * 4 + 4] {
                            assert_eq!(s.decode(token, Some(TokenType::Access), 1_001), Err(TokenProblem::Invalid));
                        }
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
    }
}
