//! The signature algorithms of this service's JWTs, as `jsonwebtoken`'s process-wide crypto
//! provider: HS256 (our tokens with `JWT_SECRET`, the old service's, media grants) and EdDSA
//! (`domain::tokens::TokenService::with_signing`). The crate's own RustCrypto provider links RSA
//! and ECDSA as well, which no token of ours uses and `domain::tokens::validation` never accepts:
//! about 60 KB of every zipped Lambda package, and the `rsa` crate with its unfixed timing
//! advisory (RUSTSEC-2023-0071).
//!
//! jsonwebtoken panics when it signs or verifies without a provider, so every constructor of a
//! key of ours calls [`install`] first (tokens, legacy tokens, media grants, the JWKS).

use hmac::{KeyInit, Mac};
use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{Error, ErrorKind};
use jsonwebtoken::jwk::{EllipticCurve, ThumbprintHash};
use jsonwebtoken::signature::{self, Signer, Verifier};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, EncodingKey};
use sha2::Digest;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

static PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: signer,
    verifier_factory: verifier,
    key_utils: KeyUtils {
        rsa_pub_components_from_private_key: |_| Err(ErrorKind::InvalidAlgorithm.into()),
        rsa_pub_components_from_public_key: |_| Err(ErrorKind::InvalidAlgorithm.into()),
        ec_pub_components_from_private_key: |_, _| Err(ErrorKind::InvalidAlgorithm.into()),
        ed_pub_components_from_private_key: ed25519_public_key,
        compute_digest: digest,
    },
};

/// Makes this module the provider of the process (once; later calls change nothing).
pub fn install() {
    // Err: a provider is set already. In our binaries that is this one (no other is linked).
    let _ = PROVIDER.install_default();
}

fn signer(algorithm: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>, Error> {
    match (algorithm, key.family()) {
        (Algorithm::HS256, AlgorithmFamily::Hmac) => Ok(Box::new(Hs256(hmac_key(key.as_bytes())?))),
        (Algorithm::EdDSA, AlgorithmFamily::Ed) => {
            use ed25519_dalek::pkcs8::DecodePrivateKey;
            let key =
                ed25519_dalek::SigningKey::from_pkcs8_der(key.as_bytes()).map_err(|_| ErrorKind::InvalidEddsaKey)?;
            Ok(Box::new(EdDsaSigner(key)))
        }
        (Algorithm::HS256 | Algorithm::EdDSA, _) => Err(ErrorKind::InvalidKeyFormat.into()),
        _ => Err(ErrorKind::InvalidAlgorithm.into()),
    }
}

fn verifier(algorithm: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>, Error> {
    match (algorithm, key.family()) {
        (Algorithm::HS256, AlgorithmFamily::Hmac) => Ok(Box::new(Hs256(hmac_key(key.try_get_as_bytes()?)?))),
        (Algorithm::EdDSA, AlgorithmFamily::Ed) => {
            let bytes: &[u8; 32] = key.try_get_as_bytes()?.try_into().map_err(|_| ErrorKind::InvalidEddsaKey)?;
            let key = ed25519_dalek::VerifyingKey::from_bytes(bytes).map_err(|_| ErrorKind::InvalidEddsaKey)?;
            Ok(Box::new(EdDsaVerifier(key)))
        }
        (Algorithm::HS256 | Algorithm::EdDSA, _) => Err(ErrorKind::InvalidKeyFormat.into()),
        _ => Err(ErrorKind::InvalidAlgorithm.into()),
    }
}

fn hmac_key(secret: &[u8]) -> Result<HmacSha256, Error> {
    HmacSha256::new_from_slice(secret).map_err(|_| ErrorKind::InvalidKeyFormat.into())
}

/// The public half of a PKCS#8 Ed25519 private key (for its JWK).
fn ed25519_public_key(der: &[u8], curve: &EllipticCurve) -> Result<Vec<u8>, Error> {
    use ed25519_dalek::pkcs8::DecodePrivateKey;
    if *curve != EllipticCurve::Ed25519 {
        return Err(ErrorKind::InvalidAlgorithm.into());
    }
    let key = ed25519_dalek::SigningKey::from_pkcs8_der(der).map_err(|_| ErrorKind::InvalidEddsaKey)?;
    Ok(key.verifying_key().as_bytes().to_vec())
}

/// A JWK thumbprint's hash (RFC 7638).
fn digest(data: &[u8], hash: ThumbprintHash) -> Result<Vec<u8>, Error> {
    Ok(match hash {
        ThumbprintHash::SHA256 => sha2::Sha256::digest(data).to_vec(),
        ThumbprintHash::SHA384 => sha2::Sha384::digest(data).to_vec(),
        ThumbprintHash::SHA512 => sha2::Sha512::digest(data).to_vec(),
        _ => return Err(ErrorKind::InvalidAlgorithm.into()),
    })
}

struct Hs256(HmacSha256);

impl Signer<Vec<u8>> for Hs256 {
    fn try_sign(&self, message: &[u8]) -> Result<Vec<u8>, signature::Error> {
        let mut mac = self.0.clone();
        mac.update(message);
        Ok(mac.finalize().into_bytes().to_vec())
    }
}

impl Verifier<Vec<u8>> for Hs256 {
    /// In constant time (`Mac::verify_slice`).
    fn verify(&self, message: &[u8], signature: &Vec<u8>) -> Result<(), signature::Error> {
        let mut mac = self.0.clone();
        mac.update(message);
        mac.verify_slice(signature).map_err(signature::Error::from_source)
    }
}

impl JwtSigner for Hs256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::HS256
    }
}

impl JwtVerifier for Hs256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::HS256
    }
}

struct EdDsaSigner(ed25519_dalek::SigningKey);

impl Signer<Vec<u8>> for EdDsaSigner {
    fn try_sign(&self, message: &[u8]) -> Result<Vec<u8>, signature::Error> {
        Ok(self.0.sign(message).to_bytes().to_vec())
    }
}

impl JwtSigner for EdDsaSigner {
    fn algorithm(&self) -> Algorithm {
        Algorithm::EdDSA
    }
}

struct EdDsaVerifier(ed25519_dalek::VerifyingKey);

impl Verifier<Vec<u8>> for EdDsaVerifier {
    /// Strict verification (RFC 8032 with the checks against malleable signatures and small-order keys).
    fn verify(&self, message: &[u8], signature: &Vec<u8>) -> Result<(), signature::Error> {
        let signature = ed25519_dalek::Signature::from_slice(signature)?;
        self.0.verify_strict(message, &signature)
    }
}

impl JwtVerifier for EdDsaVerifier {
    fn algorithm(&self) -> Algorithm {
        Algorithm::EdDSA
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{Header, Validation};
    use serde_json::{json, Value};

    use super::*;

    use crate::domain::tokens::tests::ED_KEY_1 as ED_PEM;

    fn round_trip(
        header: Header,
        encoding: &EncodingKey,
        decoding: &DecodingKey,
    ) -> jsonwebtoken::errors::Result<Value> {
        install();
        let token = jsonwebtoken::encode(&header, &json!({"sub": "7"}), encoding)?;
        let mut validation = Validation::new(header.alg);
        validation.required_spec_claims.clear();
        Ok(jsonwebtoken::decode::<Value>(&token, decoding, &validation)?.claims)
    }

    /// HS256 and EdDSA sign and verify; a token changed by one character does not verify.
    #[test]
    fn our_two_algorithms_sign_and_verify() {
        let secret = b"secret-secret-secret-secret-secret";
        let claims = round_trip(
            Header::new(Algorithm::HS256),
            &EncodingKey::from_secret(secret),
            &DecodingKey::from_secret(secret),
        );
        assert_eq!(claims.unwrap()["sub"], "7");
        let other = DecodingKey::from_secret(b"another-secret-another-secret");
        assert!(round_trip(Header::new(Algorithm::HS256), &EncodingKey::from_secret(secret), &other).is_err());

        let private = EncodingKey::from_ed_pem(ED_PEM.as_bytes()).unwrap();
        let jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&private, Algorithm::EdDSA).unwrap();
        let public = DecodingKey::from_jwk(&jwk).unwrap();
        assert_eq!(round_trip(Header::new(Algorithm::EdDSA), &private, &public).unwrap()["sub"], "7");

        let token = jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &json!({"sub": "7"}), &private).unwrap();
        let (body, signature) = token.rsplit_once('.').unwrap();
        let flipped = if signature.starts_with('A') { "B" } else { "A" };
        let tampered = format!("{body}.{flipped}{}", &signature[1..]);
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.required_spec_claims.clear();
        assert!(jsonwebtoken::decode::<Value>(&tampered, &public, &validation).is_err());
    }

    /// Any other algorithm is refused, for signing and for verifying, whatever the key.
    #[test]
    fn other_algorithms_are_refused() {
        install();
        let secret = EncodingKey::from_secret(b"secret-secret-secret-secret-secret");
        for alg in [Algorithm::HS384, Algorithm::HS512, Algorithm::RS256, Algorithm::ES256, Algorithm::PS256] {
            let err = jsonwebtoken::encode(&Header::new(alg), &json!({}), &secret).unwrap_err();
            assert_eq!(err.kind(), &ErrorKind::InvalidAlgorithm, "{alg:?}");
            let verify = jsonwebtoken::crypto::verify("AAAA", b"x.y", &DecodingKey::from_secret(b"k"), alg);
            assert!(verify.is_err(), "{alg:?}");
        }
        // The right algorithm with the other algorithm's key.
        let ed = EncodingKey::from_ed_pem(ED_PEM.as_bytes()).unwrap();
        assert!(jsonwebtoken::encode(&Header::new(Algorithm::HS256), &json!({}), &ed).is_err());
        assert!(jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &json!({}), &secret).is_err());
    }
}
