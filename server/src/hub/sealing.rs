//! The hub's sealing key: 32 random bytes kept outside the hub's folder (in a file the service
//! manager hands the hub, sealed to the PC's TPM where it has one). The hub's database is sealed
//! under it (SQLCipher) and so is its private key in `hub.json` (XChaCha20-Poly1305), so that a
//! stolen disk, or a copy of the folder, gives neither the village's reports nor the hub's
//! identity.

use std::fs;
use std::io::Write;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use super::{HubError, Result};
use crate::auth::secret;

const NONCE_LEN: usize = 24;

pub struct SealingKey([u8; 32]);

// By hand, so that no key material is ever printed.
impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealingKey")
    }
}

impl SealingKey {
    /// The key in the file at `path` (64 hex digits), made there, readable by its owner only,
    /// when there is none.
    pub fn read_or_create(path: &Path) -> Result<SealingKey> {
        let key = SealingKey(secret::random_bytes::<32>()?);
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let io = |source| HubError::Io {
            path: path.to_owned(),
            source,
        };
        match options.open(path) {
            Ok(mut file) => {
                file.write_all(format!("{}\n", hex::encode(key.0)).as_bytes())
                    .and_then(|()| file.sync_all())
                    .map_err(io)?;
                Ok(key)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => SealingKey::read(path),
            Err(source) => Err(io(source)),
        }
    }

    /// The key in the file at `path`.
    pub fn read(path: &Path) -> Result<SealingKey> {
        let text = fs::read_to_string(path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => HubError::Invalid(format!(
                "there is no sealing key at {}: give the --key-file the hub was enrolled with",
                path.display()
            )),
            _ => HubError::Io {
                path: path.to_owned(),
                source,
            },
        })?;
        hex::decode(text.trim())
            .ok()
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
            .map(SealingKey)
            .ok_or_else(|| {
                HubError::Invalid(format!(
                    "{} holds no sealing key (64 hex digits)",
                    path.display()
                ))
            })
    }

    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// `plain` sealed for what `label` names, as unpadded base64url of the nonce and the
    /// ciphertext: it opens only under this key and this label.
    pub fn seal(&self, label: &str, plain: &[u8]) -> Result<String> {
        let nonce = secret::random_bytes::<NONCE_LEN>()?;
        let sealed = self
            .cipher()
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plain,
                    aad: label.as_bytes(),
                },
            )
            .map_err(|_| HubError::Invalid("sealing failed".into()))?;
        Ok(URL_SAFE_NO_PAD.encode([nonce.as_slice(), &sealed].concat()))
    }

    /// What [`SealingKey::seal`] sealed for `label`.
    pub fn open(&self, label: &str, sealed: &str) -> Result<Vec<u8>> {
        let refused = || {
            HubError::Invalid(format!(
                "{label} does not open with this sealing key: it was sealed under another one, \
                 or damaged"
            ))
        };
        let bytes = URL_SAFE_NO_PAD.decode(sealed).map_err(|_| refused())?;
        if bytes.len() < NONCE_LEN {
            return Err(refused());
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce = <[u8; NONCE_LEN]>::try_from(nonce).map_err(|_| refused())?;
        self.cipher()
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: label.as_bytes(),
                },
            )
            .map_err(|_| refused())
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&self.0.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_sealed_opens_only_under_its_key_and_label() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("hub.key");
        let key = SealingKey::read_or_create(&path).expect("made");
        let again = SealingKey::read_or_create(&path).expect("read");
        assert_eq!(key.bytes(), again.bytes(), "an existing key is kept");
        let sealed = key.seal("hub seed", b"secret").expect("sealed");
        assert_eq!(key.open("hub seed", &sealed).expect("opens"), b"secret");
        assert!(key.open("another label", &sealed).is_err());
        let other = SealingKey::read_or_create(&dir.path().join("other.key")).expect("made");
        assert!(other.open("hub seed", &sealed).is_err());
        assert!(key.open("hub seed", "not base64!").is_err());
        fs::write(&path, "too short").expect("write");
        assert!(SealingKey::read(&path).is_err());
    }
}
