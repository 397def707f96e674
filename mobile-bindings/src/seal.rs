//! Encryption at rest: every stored document and token blob is sealed with XChaCha20-Poly1305
//! under the 32-byte key the app takes from the platform keystore.
//!
//! A sealed blob is `version (1 byte, 1) || nonce (24 random bytes) || ciphertext || tag (16)`.
//! The associated data names what the blob is (`doc:<id>`, `session`, ...), so a blob copied
//! into another row or another column fails to open instead of being read as that row's data.
//! A wrong key fails the tag check: the caller gets an error, never garbage.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use crate::error::{ClientError, Result};

const VERSION: u8 = 1;
const NONCE_LEN: usize = 24;
/// Bytes a sealed blob adds to its plaintext.
pub const OVERHEAD: usize = 1 + NONCE_LEN + 16;

/// A cipher under the database key.
#[derive(Clone)]
pub struct Sealer {
    cipher: XChaCha20Poly1305,
}

// By hand, so that no key material is ever printed.
impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer")
    }
}

impl Sealer {
    /// A sealer under `key`, which must be exactly 32 bytes.
    pub fn new(key: &[u8]) -> Result<Sealer> {
        if key.len() != 32 {
            return Err(ClientError::Invalid(format!(
                "the database key must be 32 bytes, not {}",
                key.len()
            )));
        }
        let cipher = XChaCha20Poly1305::new_from_slice(key)
            .map_err(|_| ClientError::Invalid("the database key must be 32 bytes".into()))?;
        Ok(Sealer { cipher })
    }

    /// Encrypts `plain`, bound to `aad`, under a fresh random nonce.
    pub fn seal(&self, aad: &str, plain: &[u8]) -> Result<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce)
            .map_err(|e| ClientError::Storage(format!("no randomness for a nonce: {e}")))?;
        let sealed = self
            .cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plain,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| ClientError::Storage("encryption failed".into()))?;
        let mut out = Vec::with_capacity(OVERHEAD + plain.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Decrypts a blob sealed under `aad`; `WrongKey` when the tag does not verify, which is
    /// what a different key (or a tampered or misplaced blob) gives.
    pub fn open(&self, aad: &str, blob: &[u8]) -> Result<Vec<u8>> {
        if blob.len() < OVERHEAD {
            return Err(ClientError::Storage(format!(
                "sealed {aad} is {} bytes, shorter than its header",
                blob.len()
            )));
        }
        if blob[0] != VERSION {
            return Err(ClientError::Storage(format!(
                "sealed {aad} has unknown format version {}",
                blob[0]
            )));
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&blob[1..=NONCE_LEN]);
        self.cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: &blob[1 + NONCE_LEN..],
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| {
                ClientError::WrongKey(format!(
                    "{aad} does not open with this key: the key is not the one the data was \
                     written with, or the data was altered"
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_blob_opens_with_its_key_and_aad_only() {
        let sealer = Sealer::new(&[7u8; 32]).unwrap();
        let blob = sealer.seal("doc:1", b"parties: Zhang San").unwrap();
        assert_eq!(blob.len(), OVERHEAD + 18);
        assert!(
            !blob.windows(5).any(|w| w == b"Zhang"),
            "no plaintext in the blob"
        );
        assert_eq!(sealer.open("doc:1", &blob).unwrap(), b"parties: Zhang San");
        assert!(matches!(
            sealer.open("doc:2", &blob),
            Err(ClientError::WrongKey(_))
        ));
        let other = Sealer::new(&[8u8; 32]).unwrap();
        assert!(matches!(
            other.open("doc:1", &blob),
            Err(ClientError::WrongKey(_))
        ));
    }

    #[test]
    fn the_same_plaintext_seals_differently_each_time() {
        let sealer = Sealer::new(&[1u8; 32]).unwrap();
        assert_ne!(
            sealer.seal("x", b"same").unwrap(),
            sealer.seal("x", b"same").unwrap()
        );
    }

    #[test]
    fn a_key_of_the_wrong_length_is_refused() {
        assert!(matches!(
            Sealer::new(&[0u8; 16]),
            Err(ClientError::Invalid(_))
        ));
    }

    #[test]
    fn truncated_blobs_are_errors_not_panics() {
        let sealer = Sealer::new(&[1u8; 32]).unwrap();
        let blob = sealer.seal("x", b"ab").unwrap();
        for len in 0..blob.len() {
            assert!(sealer.open("x", &blob[..len]).is_err(), "{len} bytes");
        }
    }
}
