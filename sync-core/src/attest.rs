//! A phone's signatures for a village office hub, with the key its offline grant names: over
//! each push it hands the hub, which central checks before it takes the relayed changes as the
//! phone's own (so a hub can delay or drop what a worker recorded but never alter it or make up
//! a change in the worker's name), and over the hub's nonce when it opens a session there.
//!
//! The signature covers the device id and, per document in the push's order, the document id
//! and the SHA-256 of each change's bytes in order: altering, adding, dropping or reordering any
//! change, or moving it to another document, breaks it.

use automerge::Change;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::protocol::{AttestedPush, Hash, Push};

/// Keep these signatures apart from each other and from anything else a device key might sign.
const DOMAIN: &[u8] = b"gridsync attested push v1\0";
const SESSION_DOMAIN: &[u8] = b"gridsync hub session v1\0";

/// Why an attestation does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttestError {
    #[error("the signature does not match under the device's key")]
    BadSignature,
    #[error("a pushed change does not parse: {0}")]
    BadChange(String),
}

/// What the device signs for `push`: a SHA-256 over the domain, the device id and every change.
/// A receipt names the push by it.
pub fn digest(device: &str, push: &Push) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(DOMAIN);
    hasher.update(length(device.len()));
    hasher.update(device.as_bytes());
    hasher.update(length(push.docs.len()));
    for doc in &push.docs {
        hasher.update(doc.doc.as_bytes());
        hasher.update(length(doc.changes.len()));
        for change in &doc.changes {
            hasher.update(Sha256::digest(change));
        }
    }
    hasher.finalize().into()
}

/// `push` signed by `device` with its key.
pub fn sign(key: &SigningKey, device: &str, push: Push) -> AttestedPush {
    let signature = key.sign(&digest(device, &push)).to_bytes();
    AttestedPush {
        push,
        device: device.to_owned(),
        signature,
    }
}

/// Checks that `key`, the device's public key, signed exactly this push.
pub fn verify(attested: &AttestedPush, key: &VerifyingKey) -> Result<(), AttestError> {
    let digest = digest(&attested.device, &attested.push);
    key.verify_strict(&digest, &Signature::from_bytes(&attested.signature))
        .map_err(|_| AttestError::BadSignature)
}

/// What a phone signs to open a session at hub `hub_id` with the hub's `nonce`.
fn challenge(hub_id: &str, nonce: &[u8]) -> Vec<u8> {
    [
        SESSION_DOMAIN,
        &length(hub_id.len()),
        hub_id.as_bytes(),
        nonce,
    ]
    .concat()
}

/// The phone's answer to hub `hub_id`'s `nonce`.
pub fn sign_challenge(key: &SigningKey, hub_id: &str, nonce: &[u8]) -> [u8; 64] {
    key.sign(&challenge(hub_id, nonce)).to_bytes()
}

/// Checks that `key` answered hub `hub_id`'s `nonce` with `signature`.
pub fn verify_challenge(
    key: &VerifyingKey,
    hub_id: &str,
    nonce: &[u8],
    signature: &[u8; 64],
) -> Result<(), AttestError> {
    key.verify_strict(&challenge(hub_id, nonce), &Signature::from_bytes(signature))
        .map_err(|_| AttestError::BadSignature)
}

/// The heads of a document's pushed changes: those no other change among them depends on.
pub fn heads(changes: &[Vec<u8>]) -> Result<Vec<Hash>, AttestError> {
    let mut hashes = Vec::with_capacity(changes.len());
    let mut deps = std::collections::HashSet::new();
    for bytes in changes {
        let change =
            Change::from_bytes(bytes.clone()).map_err(|e| AttestError::BadChange(e.to_string()))?;
        hashes.push(change.hash().0);
        deps.extend(change.deps().iter().map(|d| d.0));
    }
    hashes.retain(|h| !deps.contains(h));
    Ok(hashes)
}

/// A length as four big-endian bytes, so that no two lists of items hash alike.
fn length(len: usize) -> [u8; 4] {
    u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes()
}
