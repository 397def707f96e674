//! Access tokens: short-lived EdDSA (Ed25519) JWTs. The signing keys live in the database so
//! that every server node shares them; the newest signs, any stored key verifies by the `kid`
//! header, so a new key can be added without logging anyone out. Their public halves are
//! published as a JWKS: whatever checks a token needs no key that could mint one.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::{AuthError, Result, secret};
use crate::clock;
use crate::config::Config;
use crate::store::{SigningKey, Store};

/// The one algorithm issued and accepted; a token naming any other is invalid.
pub const ALGORITHM: Algorithm = Algorithm::EdDSA;

/// An unknown `kid` may be a key another node just added: look again, but at most this often,
/// so tokens with made-up kids cannot turn into a database query each.
const RELOAD_AT_MOST_EVERY: Duration = Duration::from_secs(10);
/// Pick up a key added by another node for signing within this time.
const RELOAD_FOR_SIGNING_EVERY: Duration = Duration::from_secs(300);
/// Tokens are issued and checked by our own nodes, so only their clocks can disagree.
const LEEWAY_SECS: u64 = 10;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    /// The user id.
    pub sub: String,
    /// The device the token was issued to.
    pub dev: String,
    /// The session: the refresh-token family of the login that issued this token.
    pub sid: String,
    pub iat: i64,
    pub exp: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the access token has expired")]
    Expired,
    /// Malformed, badly signed, unknown key, another algorithm, issuer or audience.
    #[error("the access token is not valid")]
    Invalid,
}

/// A stored key ready to sign and verify.
struct Key {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    public: PublicKey,
}

/// The public half of a signing key, as a JWK (RFC 8037: `kty` OKP, `crv` Ed25519).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PublicKey {
    /// `OKP`.
    pub kty: String,
    /// `Ed25519`.
    pub crv: String,
    /// The public key, 32 bytes as unpadded base64url.
    pub x: String,
    /// The `kid` header of the tokens this key signs.
    pub kid: String,
    /// `EdDSA`.
    pub alg: String,
    /// `sig`.
    #[serde(rename = "use")]
    pub use_: String,
}

struct KeySet {
    /// Newest first.
    keys: Vec<Key>,
    loaded_at: Instant,
}

/// The signing keys, cached from the store.
pub struct Keys {
    store: Arc<dyn Store>,
    issuer: String,
    audience: String,
    ttl: Duration,
    set: RwLock<KeySet>,
}

impl Keys {
    /// Loads the stored keys, creating the first one when there is none.
    pub async fn load(store: Arc<dyn Store>, config: &Config) -> Result<Keys> {
        if store.signing_keys().await?.is_empty() {
            store.insert_signing_key(&new_key()?).await?;
        }
        let set = fetch(store.as_ref()).await?;
        Ok(Keys {
            store,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            ttl: config.access_ttl,
            set: RwLock::new(set),
        })
    }

    /// Lifetime of the tokens this issues.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A signed access token for `user_id` on `device_id` in session `sid`.
    pub async fn issue(&self, user_id: &str, device_id: &str, sid: &str) -> Result<String> {
        let now = clock::now();
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: user_id.to_owned(),
            dev: device_id.to_owned(),
            sid: sid.to_owned(),
            iat: now,
            exp: now.saturating_add(i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX)),
        };
        self.sign(None, &claims).await
    }

    /// `claims` signed under the header type `typ`: an offline grant or a revocation list
    /// ([`super::grant::TYP`], [`super::grant::REVOCATIONS_TYP`]), never taken for an access
    /// token.
    pub async fn sign_typed(&self, typ: &str, claims: &impl Serialize) -> Result<String> {
        self.sign(Some(typ), claims).await
    }

    /// `claims` signed with the newest key, under the header type `typ` (JWT when `None`).
    async fn sign(&self, typ: Option<&str>, claims: &impl Serialize) -> Result<String> {
        if self.read().loaded_at.elapsed() > RELOAD_FOR_SIGNING_EVERY {
            self.reload().await?;
        }
        let set = self.read();
        // `load` guarantees at least one key and keys are never deleted from the set.
        let key = set
            .keys
            .first()
            .ok_or_else(|| crate::store::StoreError::NotFound("signing key".into()))?;
        let mut header = Header::new(ALGORITHM);
        header.kid = Some(key.kid.clone());
        if let Some(typ) = typ {
            header.typ = Some(typ.to_owned());
        }
        Ok(jsonwebtoken::encode(&header, claims, &key.encoding)?)
    }

    /// The public halves of the keys that verify tokens now, newest first.
    pub async fn public_keys(&self) -> Result<Vec<PublicKey>> {
        if self.read().loaded_at.elapsed() > RELOAD_AT_MOST_EVERY {
            self.reload().await?;
        }
        Ok(self.read().keys.iter().map(|k| k.public.clone()).collect())
    }

    /// Checks signature (by `kid`), algorithm, issuer, audience and expiry.
    pub async fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        if header.alg != ALGORITHM {
            return Err(TokenError::Invalid);
        }
        let kid = header.kid.ok_or(TokenError::Invalid)?;
        if let Some(claims) = self.verify_with(&kid, token) {
            return claims;
        }
        let stale = self.read().loaded_at.elapsed() > RELOAD_AT_MOST_EVERY;
        if stale && let Err(e) = self.reload().await {
            tracing::warn!(error = %e, "could not reload signing keys");
        }
        self.verify_with(&kid, token)
            .unwrap_or(Err(TokenError::Invalid))
    }

    /// `None` when no cached key has this `kid`.
    fn verify_with(&self, kid: &str, token: &str) -> Option<Result<Claims, TokenError>> {
        let set = self.read();
        let decoding = &set.keys.iter().find(|k| k.kid == kid)?.decoding;
        let mut validation = Validation::new(ALGORITHM);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY_SECS;
        Some(
            jsonwebtoken::decode::<Claims>(token, decoding, &validation)
                .map(|data| data.claims)
                .map_err(|e| match e.kind() {
                    ErrorKind::ExpiredSignature => TokenError::Expired,
                    _ => TokenError::Invalid,
                }),
        )
    }

    async fn reload(&self) -> Result<()> {
        let set = fetch(self.store.as_ref()).await?;
        if !set.keys.is_empty() {
            *self.set.write().unwrap_or_else(|p| p.into_inner()) = set;
        }
        Ok(())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, KeySet> {
        // The set is replaced whole, so a panic elsewhere cannot leave it half-written.
        self.set.read().unwrap_or_else(|p| p.into_inner())
    }
}

async fn fetch(store: &dyn Store) -> Result<KeySet> {
    let mut keys = Vec::new();
    for key in store.signing_keys().await? {
        keys.push(ready(key)?);
    }
    Ok(KeySet {
        keys,
        loaded_at: Instant::now(),
    })
}

/// A stored key's signer, its verifier and its public half, derived from its private seed.
fn ready(key: SigningKey) -> Result<Key> {
    let seed: [u8; 32] = key
        .secret
        .as_slice()
        .try_into()
        .map_err(|_| AuthError::BadSigningKey(key.kid.clone()))?;
    let encoding = EncodingKey::from_ed_der(&pkcs8(&seed));
    let x = match Jwk::from_encoding_key(&encoding, ALGORITHM)?.algorithm {
        AlgorithmParameters::OctetKeyPair(pair) => pair.x,
        _ => return Err(AuthError::BadSigningKey(key.kid)),
    };
    let decoding = DecodingKey::from_ed_components(&x)?;
    Ok(Key {
        public: PublicKey {
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            x,
            kid: key.kid.clone(),
            alg: "EdDSA".into(),
            use_: "sig".into(),
        },
        kid: key.kid,
        encoding,
        decoding,
    })
}

/// An Ed25519 private key's 32-byte seed in the PKCS#8 form jsonwebtoken reads (RFC 8410): a
/// fixed 16-byte DER prefix, then the seed.
pub(crate) fn pkcs8(seed: &[u8; 32]) -> Vec<u8> {
    const PREFIX: [u8; 16] = [
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    [&PREFIX[..], seed].concat()
}

/// A fresh key: a random 32-byte Ed25519 seed and a random kid.
pub fn new_key() -> Result<SigningKey> {
    Ok(SigningKey {
        kid: hex::encode(secret::random_bytes::<8>()?),
        secret: secret::random_bytes::<32>()?.to_vec(),
        created_at: clock::now(),
    })
}
