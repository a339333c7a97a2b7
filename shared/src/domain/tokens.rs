//! JWTs as the old service issues them (simplejwt's claims), plus the session id `sid`.
//!
//! The algorithm is pinned (HS256): a token whose header names any other algorithm, `none`
//! included, is invalid. `token_type` is checked both ways.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Deserializer, Serialize};

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

/// Signs and checks tokens; built once per process from the configuration.
pub struct TokenService {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    pub access_lifetime: Duration,
    pub refresh_lifetime: Duration,
}

/// What is read from a token before the checks: every claim may be missing or odd.
#[derive(Deserialize)]
struct RawClaims {
    token_type: Option<serde_json::Value>,
    exp: Option<serde_json::Value>,
    iat: Option<serde_json::Value>,
    jti: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "lenient_id")]
    user_id: Option<String>,
    sid: Option<serde_json::Value>,
}

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

impl TokenService {
    pub fn new(secret: &[u8], access_lifetime: Duration, refresh_lifetime: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        // Expiry is checked below against the caller's clock, with simplejwt's rule (exp <= now).
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            access_lifetime,
            refresh_lifetime,
        }
    }

    fn sign(&self, claims: &Claims) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .expect("HS256 signing of plain claims cannot fail")
    }

    /// The claims of a new refresh token of the session.
    pub fn refresh_claims(&self, user_id: u64, session_id: &str, now: i64) -> Claims {
        Claims {
            token_type: TokenType::Refresh,
            exp: now + self.refresh_lifetime.as_secs() as i64,
            iat: now,
            jti: new_jti(),
            user_id: user_id.to_string(),
            sid: session_id.to_string(),
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

    /// A new pair for the session.
    pub fn issue_pair(&self, user_id: u64, session_id: &str, now: i64) -> TokenPair {
        self.sign_pair(self.refresh_claims(user_id, session_id, now))
    }

    /// Checks signature, expiry, `jti` and, when `expected` is given, `token_type` (in simplejwt's order).
    pub fn decode(&self, token: &str, expected: Option<TokenType>, now: i64) -> Result<Claims, TokenProblem> {
        let raw = jsonwebtoken::decode::<RawClaims>(token, &self.decoding, &self.validation)
            .map_err(|_| TokenProblem::Invalid)?
            .claims;
        let exp = raw.exp.as_ref().and_then(serde_json::Value::as_i64).ok_or(TokenProblem::Invalid)?;
        if exp <= now {
            return Err(TokenProblem::Expired);
        }
        let jti = match raw.jti {
            None => return Err(TokenProblem::NoId),
            Some(serde_json::Value::String(s)) if !s.is_empty() => s,
            Some(_) => return Err(TokenProblem::Invalid),
        };
        let token_type = match raw.token_type {
            None => return Err(TokenProblem::NoType),
            Some(serde_json::Value::String(s)) if s == "access" => TokenType::Access,
            Some(serde_json::Value::String(s)) if s == "refresh" => TokenType::Refresh,
            Some(_) => return Err(TokenProblem::WrongType),
        };
        if expected.is_some_and(|t| t != token_type) {
            return Err(TokenProblem::WrongType);
        }
        let iat = raw.iat.as_ref().and_then(serde_json::Value::as_i64).unwrap_or(0);
        let user_id = raw.user_id.ok_or(TokenProblem::Invalid)?;
        // Every token this service issues names its session; one without can't be tied to any.
        let sid = match raw.sid {
            Some(serde_json::Value::String(s)) if !s.is_empty() => s,
            _ => return Err(TokenProblem::Invalid),
        };
        Ok(Claims { token_type, exp, iat, jti, user_id, sid })
    }
}

#[cfg(test)]
mod tests {
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
        let pair = service().issue_pair(7, "sess", 1_000);
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
        let pair = s.issue_pair(7, "sess", 1_000);
        assert_eq!(s.decode(&pair.access, Some(TokenType::Access), 1_001).unwrap().user_id(), 7);
        assert_eq!(s.decode(&pair.refresh, Some(TokenType::Access), 1_001), Err(TokenProblem::WrongType));
        assert_eq!(s.decode(&pair.access, Some(TokenType::Refresh), 1_001), Err(TokenProblem::WrongType));
        assert!(s.decode(&pair.refresh, None, 1_001).is_ok());
        assert_eq!(s.decode(&pair.access, None, 1_900), Err(TokenProblem::Expired));
        assert_eq!(s.decode("garbage", None, 1_001), Err(TokenProblem::Invalid));
        let other = TokenService::new(b"another-secret-another-secret-xx", Duration::from_secs(9), Duration::from_secs(9));
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
}
