//! Token parsing: `TokenService::decode` on arbitrary input, with HS256 and with EdDSA.
//!
//! The first byte picks the mode. Even: the rest is the token text, which must never be
//! accepted (nobody can forge a signature). Odd: the rest is `header JSON \0 payload JSON`,
//! signed with the service's own key, so the fuzzer reaches the claim checks; an accepted token
//! must then satisfy what every caller relies on.
#![no_main]

use std::time::Duration;

use accounts::domain::tokens::{Claims, Signing, TokenService, TokenType};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as b64;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey};
use libfuzzer_sys::fuzz_target;

const SECRET: &[u8] = b"fuzz-secret-fuzz-secret-fuzz-secret!";
/// The Ed25519 test key of `shared/src/domain/tokens.rs` (`ED_KEY_1`).
const ED_KEY: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIIk6Ylp807M1WMtvoiS1MQXKbV6KWDtve8AKlT6gw6Ti\n-----END PRIVATE KEY-----\n";
const KID: &str = "fuzz-key";
/// A fixed clock, so that crashes replay.
const NOW: i64 = 1_800_000_000;

struct Services {
    hs256: TokenService,
    eddsa: TokenService,
    hs256_key: EncodingKey,
    eddsa_key: EncodingKey,
}

fn services() -> &'static Services {
    static SERVICES: std::sync::OnceLock<Services> = std::sync::OnceLock::new();
    SERVICES.get_or_init(|| {
        let lifetimes = (Duration::from_secs(900), Duration::from_secs(604_800));
        let eddsa = Signing::EdDsa { private_key_pem: ED_KEY.into(), key_id: Some(KID.into()), previous_keys: None };
        Services {
            hs256: TokenService::new(SECRET, lifetimes.0, lifetimes.1),
            eddsa: TokenService::with_signing(&eddsa, b"", lifetimes.0, lifetimes.1).expect("the test key signs"),
            hs256_key: EncodingKey::from_secret(SECRET),
            eddsa_key: EncodingKey::from_ed_pem(ED_KEY.as_bytes()).expect("the test key parses"),
        }
    })
}

fn decode_all(service: &TokenService, token: &str) -> Vec<Claims> {
    [None, Some(TokenType::Access), Some(TokenType::Refresh)]
        .into_iter()
        .filter_map(|expected| {
            let claims = service.decode(token, expected, NOW).ok()?;
            assert!(expected.is_none_or(|t| t == claims.token_type), "wrong token type accepted");
            Some(claims)
        })
        .collect()
}

fn check(claims: &Claims) {
    assert!(claims.exp > NOW, "expired token accepted: {claims:?}");
    assert!(claims.iat <= NOW + 60, "token from the future accepted: {claims:?}");
    assert!(!claims.jti.is_empty() && !claims.sid.is_empty(), "token without id or session accepted: {claims:?}");
    assert!(
        !claims.user_id.is_empty() && claims.user_id.bytes().all(|b| b.is_ascii_digit()),
        "odd user id accepted: {claims:?}"
    );
}

fn signed(header: &[u8], payload: &[u8], key: &EncodingKey, algorithm: Algorithm) -> String {
    let message = format!("{}.{}", b64.encode(header), b64.encode(payload));
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), key, algorithm).expect("signing bytes cannot fail");
    format!("{message}.{signature}")
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let s = services();
    if mode % 2 == 0 {
        let token = String::from_utf8_lossy(rest);
        assert!(decode_all(&s.hs256, &token).is_empty(), "an unsigned token was accepted (HS256): {token:?}");
        assert!(decode_all(&s.eddsa, &token).is_empty(), "an unsigned token was accepted (EdDSA): {token:?}");
        return;
    }
    let (header, payload) = match rest.iter().position(|&b| b == 0) {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (&br#"{"alg":"HS256","typ":"JWT"}"#[..], rest),
    };
    for claims in decode_all(&s.hs256, &signed(header, payload, &s.hs256_key, Algorithm::HS256)) {
        check(&claims);
    }
    for claims in decode_all(&s.eddsa, &signed(header, payload, &s.eddsa_key, Algorithm::EdDSA)) {
        check(&claims);
    }
    // A token signed with HS256 whose key is the EdDSA service's public key (algorithm confusion).
    let public = s.eddsa.public_keys().keys[0].clone();
    if let jsonwebtoken::jwk::AlgorithmParameters::OctetKeyPair(okp) = &public.algorithm {
        let confused = EncodingKey::from_secret(okp.x.as_bytes());
        let token = signed(header, payload, &confused, Algorithm::HS256);
        assert!(decode_all(&s.eddsa, &token).is_empty(), "HS256 with the public key accepted: {token:?}");
    }
});
