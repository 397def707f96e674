//! A hub's folder: who it is (`hub.json`: central's address, the hub id, its unit, its
//! certificate and its private key, sealed under the hub's sealing key, readable by its owner
//! only) and its database (`hub.db`, sealed too).

use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use super::sealing::SealingKey;
use super::{HubError, Result};

const FILE: &str = "hub.json";
/// What the hub's key is sealed for, so that no other sealed text passes for it.
const SEED_LABEL: &str = "gridsync hub key";

/// What a hub learned at its enrolment, and its key.
#[derive(Clone)]
pub struct Identity {
    /// Central's base URL.
    pub central: String,
    /// Central's issuer, as its certificates, grants and receipts name it.
    pub issuer: String,
    pub hub_id: String,
    pub unit_id: String,
    pub unit_path: String,
    /// The certificate central signed at enrolment, which phones check.
    pub certificate: String,
    /// The 32-byte Ed25519 seed of the hub's key.
    seed: [u8; 32],
}

/// `hub.json` as written.
#[derive(Serialize, Deserialize)]
struct Stored {
    central: String,
    issuer: String,
    hub_id: String,
    unit_id: String,
    unit_path: String,
    certificate: String,
    /// The seed, sealed ([`SealingKey::seal`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sealed_seed: Option<String>,
    /// The seed in clear, unpadded base64url, as hubs enrolled before sealing wrote it: sealed
    /// at their next start.
    #[serde(default, skip_serializing)]
    seed: Option<String>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("central", &self.central)
            .field("hub_id", &self.hub_id)
            .field("unit_path", &self.unit_path)
            .finish_non_exhaustive()
    }
}

impl Identity {
    pub fn new(central: &str, issuer: &str, enrolled: Enrolled, seed: &[u8; 32]) -> Identity {
        Identity {
            central: central.to_owned(),
            issuer: issuer.to_owned(),
            hub_id: enrolled.hub_id,
            unit_id: enrolled.unit_id,
            unit_path: enrolled.unit_path,
            certificate: enrolled.certificate,
            seed: *seed,
        }
    }

    /// The hub's private key seed.
    pub fn seed(&self) -> [u8; 32] {
        self.seed
    }

    /// The identity in `dir`, its key opened with `key`. A key written in clear (a hub
    /// enrolled before sealing) is sealed now.
    pub fn load(dir: &Path, key: &SealingKey) -> Result<Identity> {
        let path = dir.join(FILE);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(HubError::NotEnrolled(dir.to_owned()));
            }
            Err(source) => return Err(HubError::Io { path, source }),
        };
        let stored: Stored = serde_json::from_str(&text)
            .map_err(|e| HubError::Invalid(format!("{}: {e}", path.display())))?;
        let damaged = || HubError::Invalid(format!("{} holds a damaged key", path.display()));
        let (seed, in_clear) = match (&stored.sealed_seed, &stored.seed) {
            (Some(sealed), _) => (key.open(SEED_LABEL, sealed)?, false),
            (None, Some(clear)) => (URL_SAFE_NO_PAD.decode(clear).map_err(|_| damaged())?, true),
            (None, None) => return Err(damaged()),
        };
        let seed = <[u8; 32]>::try_from(seed).map_err(|_| damaged())?;
        let identity = Identity {
            central: stored.central,
            issuer: stored.issuer,
            hub_id: stored.hub_id,
            unit_id: stored.unit_id,
            unit_path: stored.unit_path,
            certificate: stored.certificate,
            seed,
        };
        if in_clear {
            identity.write(dir, key, Write::Replace)?;
            tracing::info!(path = %path.display(), "sealed the hub's key, kept in clear until now");
        }
        Ok(identity)
    }

    /// Writes the identity into `dir`, which must not hold one yet.
    pub fn create(&self, dir: &Path, key: &SealingKey) -> Result<()> {
        self.write(dir, key, Write::New)
    }

    /// Writes `hub.json`, readable by its owner only, its key sealed under `key`: a new file, or
    /// in place of the one there (through a copy renamed over it, so a crash leaves one whole).
    fn write(&self, dir: &Path, key: &SealingKey, how: Write) -> Result<()> {
        let io = |path: &PathBuf| {
            let path = path.clone();
            move |source| HubError::Io { path, source }
        };
        fs::create_dir_all(dir).map_err(io(&dir.to_owned()))?;
        let stored = Stored {
            central: self.central.clone(),
            issuer: self.issuer.clone(),
            hub_id: self.hub_id.clone(),
            unit_id: self.unit_id.clone(),
            unit_path: self.unit_path.clone(),
            certificate: self.certificate.clone(),
            sealed_seed: Some(key.seal(SEED_LABEL, &self.seed)?),
            seed: None,
        };
        let text = serde_json::to_string_pretty(&stored)
            .map_err(|e| HubError::Invalid(format!("writing {FILE}: {e}")))?;
        let path = dir.join(FILE);
        let written = match how {
            Write::New => path.clone(),
            Write::Replace => dir.join(format!("{FILE}.new")),
        };
        let mut options = fs::OpenOptions::new();
        options.write(true);
        match how {
            Write::New => options.create_new(true),
            Write::Replace => options.create(true).truncate(true),
        };
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = match options.open(&written) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(HubError::AlreadyEnrolled(dir.to_owned()));
            }
            Err(source) => return Err(HubError::Io { path, source }),
        };
        std::io::Write::write_all(&mut file, text.as_bytes()).map_err(io(&written))?;
        file.sync_all().map_err(io(&written))?;
        if written != path {
            fs::rename(&written, &path).map_err(io(&path))?;
        }
        Ok(())
    }

    /// Whether `dir` holds an identity already.
    pub fn exists(dir: &Path) -> bool {
        dir.join(FILE).exists()
    }

    /// The hub's database in `dir`.
    pub fn database(dir: &Path) -> PathBuf {
        dir.join("hub.db")
    }
}

/// How [`Identity::write`] writes.
enum Write {
    New,
    Replace,
}

/// Central's answer to an enrolment.
#[derive(Debug, Clone, Deserialize)]
pub struct Enrolled {
    pub hub_id: String,
    pub unit_id: String,
    pub unit_path: String,
    pub certificate: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enrolled() -> Enrolled {
        Enrolled {
            hub_id: "hub-1".into(),
            unit_id: "v1".into(),
            unit_path: "/d/t1/v1/".into(),
            certificate: "a.b.c".into(),
        }
    }

    #[test]
    fn the_hubs_key_is_sealed_on_disk_and_opens_only_with_the_sealing_key() {
        let dir = tempfile::tempdir().expect("dir");
        let key = SealingKey::read_or_create(&dir.path().join("hub.key")).expect("key");
        let seed = [9; 32];
        Identity::new("https://central", "gridsync", enrolled(), &seed)
            .create(dir.path(), &key)
            .expect("create");
        let text = fs::read_to_string(dir.path().join(FILE)).expect("hub.json");
        assert!(!text.contains(&URL_SAFE_NO_PAD.encode(seed)), "{text}");
        assert_eq!(Identity::load(dir.path(), &key).expect("load").seed(), seed);

        let other = SealingKey::read_or_create(&dir.path().join("other.key")).expect("key");
        assert!(Identity::load(dir.path(), &other).is_err());
    }

    #[test]
    fn a_key_kept_in_clear_by_an_earlier_hub_is_sealed_at_the_next_start() {
        let dir = tempfile::tempdir().expect("dir");
        let key = SealingKey::read_or_create(&dir.path().join("hub.key")).expect("key");
        let seed = [5; 32];
        let clear = serde_json::json!({
            "central": "https://central", "issuer": "gridsync", "hub_id": "hub-1",
            "unit_id": "v1", "unit_path": "/d/t1/v1/", "certificate": "a.b.c",
            "seed": URL_SAFE_NO_PAD.encode(seed),
        });
        fs::write(dir.path().join(FILE), clear.to_string()).expect("write");
        assert_eq!(Identity::load(dir.path(), &key).expect("load").seed(), seed);
        let text = fs::read_to_string(dir.path().join(FILE)).expect("hub.json");
        let stored: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        assert!(stored.get("seed").is_none() && stored.get("sealed_seed").is_some());
        assert_eq!(
            Identity::load(dir.path(), &key).expect("again").seed(),
            seed
        );
    }
}
