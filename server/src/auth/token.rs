//! Access tokens: short-lived HS256 JWTs. The signing keys live in the database so that every
//! server node shares them; the newest signs, any stored key verifies by the `kid` header, so a
//! new key can be added without logging anyone out.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::{Result, secret};
use crate::clock;
use crate::config::Config;
use crate::store::{SigningKey, Store};

/// The one algorithm issued and accepted; a token naming any other is invalid.
pub const ALGORITHM: Algorithm = Algorithm::HS256;

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

struct KeySet {
    /// Newest first.
    keys: Vec<(SigningKey, EncodingKey, DecodingKey)>,
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
        if self.read().loaded_at.elapsed() > RELOAD_FOR_SIGNING_EVERY {
            self.reload().await?;
        }
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
        let set = self.read();
        // `load` guarantees at least one key and keys are never deleted from the set.
        let (key, encoding, _) = set
            .keys
            .first()
            .ok_or_else(|| crate::store::StoreError::NotFound("signing key".into()))?;
        let mut header = Header::new(ALGORITHM);
        header.kid = Some(key.kid.clone());
        Ok(jsonwebtoken::encode(&header, &claims, encoding)?)
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
        let (_, _, decoding) = set.keys.iter().find(|(k, _, _)| k.kid == kid)?;
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
        let encoding = EncodingKey::from_secret(&key.secret)?;
        let decoding = DecodingKey::from_secret(&key.secret)?;
        keys.push((key, encoding, decoding));
    }
    Ok(KeySet {
        keys,
        loaded_at: Instant::now(),
    })
}

/// A fresh key: 64 random bytes (HS256 wants at least 32) and a random kid.
pub fn new_key() -> Result<SigningKey> {
    Ok(SigningKey {
        kid: hex::encode(secret::random_bytes::<8>()?),
        secret: secret::random_bytes::<64>()?.to_vec(),
        created_at: clock::now(),
    })
}
