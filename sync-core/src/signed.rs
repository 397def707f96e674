//! What central signs for others to check without reaching it: hub certificates, receipts for
//! relayed pushes and attachments, and the revocation list, as compact JWS (EdDSA) under a key
//! of central's JWKS. The server signs and checks them with its JWT library; this is the phone's
//! side, which holds central's key set from its last contact and needs no JWT library to read
//! them at a hub.
//!
//! Only the signature, the key id, the algorithm, the header type and the audience are checked
//! here: expiry and what the claims must say are the caller's.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, VerifyingKey};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The `aud` of everything signed for phones and hubs rather than for the API.
pub const AUDIENCE: &str = "gridsync-offline";
/// The `typ` header of hub certificates.
pub const HUB_TYP: &str = "gridsync-hub+jwt";
/// The `typ` header of receipts for relayed pushes.
pub const RECEIPT_TYP: &str = "gridsync-receipt+jwt";
/// The `typ` header of receipts for attachments a hub relayed.
pub const ATTACHMENT_RECEIPT_TYP: &str = "gridsync-attachment-receipt+jwt";
/// The `typ` header of revocation lists.
pub const REVOCATIONS_TYP: &str = "gridsync-revocations+jwt";

/// Why a signed text was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignedError {
    #[error("not a key set: {0}")]
    KeySet(String),
    #[error("not a compact JWS")]
    Malformed,
    #[error("not a {0}")]
    WrongType(&'static str),
    #[error("signed with a key the server never published")]
    UnknownKey,
    #[error("the signature does not verify with the server's keys")]
    BadSignature,
    #[error("the claims do not parse: {0}")]
    Claims(String),
}

/// A hub's certificate, signed at its enrolment: phones on the office network trust the hub
/// whose key it names for the unit it names, with no public certificate authority.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HubCertificate {
    pub iss: String,
    pub aud: String,
    /// The hub id.
    pub sub: String,
    /// The org path of the village or community the hub serves.
    pub unit: String,
    /// The hub's Ed25519 public key, unpadded base64url.
    pub hkey: String,
    pub iat: i64,
}

/// Central's receipt for a push a hub relayed: the phone that signed it learns, through the hub,
/// which of its documents central holds, without reaching central itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub iss: String,
    pub aud: String,
    /// The hub id.
    pub hub: String,
    /// The device that signed the push.
    pub dev: String,
    /// The push's [`crate::attest::digest`], hex: which push this answers.
    pub push: String,
    /// The documents central took, each with the heads of what the phone pushed of it.
    pub docs: Vec<ReceiptDoc>,
    pub iat: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptDoc {
    pub doc: String,
    /// Hex change hashes.
    pub heads: Vec<String>,
    /// Kept as held work rather than applied (the phone may no longer write the report); as
    /// delivered as an applied change.
    pub held: bool,
}

/// Central's receipt for an attachment a hub relayed: central holds these bytes, verified, for
/// this report. Bytes are named by their hash, so it tells any phone holding them, whoever
/// attached them, that it no longer owes central the upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentReceipt {
    pub iss: String,
    pub aud: String,
    /// The hub id.
    pub hub: String,
    pub doc: String,
    /// sha256 of the bytes, lowercase hex.
    pub sha256: String,
    pub size: u64,
    pub iat: i64,
}

/// What a phone reads of the revocation list: the devices to refuse and wipe. (The server's
/// own type carries the rest.)
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RevokedDevices {
    pub iat: i64,
    pub devices: Vec<RevokedDevice>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RevokedDevice {
    pub id: String,
}

/// Central's public keys, as its `/.well-known/jwks.json` lists them (Ed25519 only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySet {
    keys: Vec<(String, VerifyingKey)>,
}

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    kty: String,
    #[serde(default)]
    crv: String,
    #[serde(default)]
    x: String,
    #[serde(default)]
    kid: String,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    kid: Option<String>,
}

#[derive(Deserialize)]
struct Audience {
    aud: String,
}

impl KeySet {
    /// Reads a JWKS document; keys of other types are skipped, and a set without one Ed25519
    /// key is refused.
    pub fn from_jwks(json: &[u8]) -> Result<KeySet, SignedError> {
        let jwks: Jwks =
            serde_json::from_slice(json).map_err(|e| SignedError::KeySet(e.to_string()))?;
        let keys: Vec<(String, VerifyingKey)> = jwks
            .keys
            .into_iter()
            .filter(|k| k.kty == "OKP" && k.crv == "Ed25519" && !k.kid.is_empty())
            .filter_map(|k| {
                let bytes: [u8; 32] = URL_SAFE_NO_PAD.decode(&k.x).ok()?.try_into().ok()?;
                Some((k.kid, VerifyingKey::from_bytes(&bytes).ok()?))
            })
            .collect();
        if keys.is_empty() {
            return Err(SignedError::KeySet("no Ed25519 key in it".into()));
        }
        Ok(KeySet { keys })
    }

    /// The claims of `jws` when one of these keys signed it under header type `typ` for
    /// [`AUDIENCE`].
    pub fn open<T: DeserializeOwned>(
        &self,
        jws: &str,
        typ: &'static str,
    ) -> Result<T, SignedError> {
        let mut parts = jws.trim().split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(SignedError::Malformed);
        };
        let decode = |part: &str| {
            URL_SAFE_NO_PAD
                .decode(part)
                .map_err(|_| SignedError::Malformed)
        };
        let head: Header =
            serde_json::from_slice(&decode(header)?).map_err(|_| SignedError::Malformed)?;
        if head.alg != "EdDSA" || head.typ.as_deref() != Some(typ) {
            return Err(SignedError::WrongType(typ));
        }
        let kid = head.kid.ok_or(SignedError::UnknownKey)?;
        let key = self
            .keys
            .iter()
            .find(|(k, _)| *k == kid)
            .map(|(_, key)| key)
            .ok_or(SignedError::UnknownKey)?;
        let signature: [u8; 64] = decode(signature)?
            .try_into()
            .map_err(|_| SignedError::BadSignature)?;
        let signed_over = &jws.trim()[..header.len() + 1 + payload.len()];
        key.verify_strict(signed_over.as_bytes(), &Signature::from_bytes(&signature))
            .map_err(|_| SignedError::BadSignature)?;
        let claims = decode(payload)?;
        let audience: Audience =
            serde_json::from_slice(&claims).map_err(|e| SignedError::Claims(e.to_string()))?;
        if audience.aud != AUDIENCE {
            return Err(SignedError::WrongType(typ));
        }
        serde_json::from_slice(&claims).map_err(|e| SignedError::Claims(e.to_string()))
    }
}
