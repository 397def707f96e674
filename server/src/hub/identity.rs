//! A hub's folder: who it is (`hub.json`: central's address, the hub id, its unit, its
//! certificate and its private key, readable by its owner only) and its database (`hub.db`).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use super::{HubError, Result};

const FILE: &str = "hub.json";

/// What a hub learned at its enrolment, and its key.
#[derive(Clone, Serialize, Deserialize)]
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
    /// The 32-byte Ed25519 seed of the hub's key, unpadded base64url.
    seed: String,
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
            seed: URL_SAFE_NO_PAD.encode(seed),
        }
    }

    /// The hub's private key seed.
    pub fn seed(&self) -> Result<[u8; 32]> {
        URL_SAFE_NO_PAD
            .decode(&self.seed)
            .ok()
            .and_then(|s| <[u8; 32]>::try_from(s).ok())
            .ok_or_else(|| HubError::Invalid(format!("{FILE} holds a damaged key")))
    }

    /// The identity in `dir`.
    pub fn load(dir: &Path) -> Result<Identity> {
        let path = dir.join(FILE);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(HubError::NotEnrolled(dir.to_owned()));
            }
            Err(source) => return Err(HubError::Io { path, source }),
        };
        serde_json::from_str(&text)
            .map_err(|e| HubError::Invalid(format!("{}: {e}", path.display())))
    }

    /// Writes the identity into `dir`, which must not hold one yet, readable by its owner only.
    pub fn create(&self, dir: &Path) -> Result<()> {
        let io = |path: &PathBuf| {
            let path = path.clone();
            move |source| HubError::Io { path, source }
        };
        fs::create_dir_all(dir).map_err(io(&dir.to_owned()))?;
        let path = dir.join(FILE);
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = match options.open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(HubError::AlreadyEnrolled(dir.to_owned()));
            }
            Err(source) => return Err(HubError::Io { path, source }),
        };
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| HubError::Invalid(format!("writing {FILE}: {e}")))?;
        file.write_all(text.as_bytes()).map_err(io(&path))?;
        file.sync_all().map_err(io(&path))
    }

    /// Whether `dir` holds an identity already.
    pub fn exists(dir: &Path) -> bool {
        dir.join(FILE).exists()
    }

    /// The hub's database in `dir`.
    pub fn database_url(dir: &Path) -> String {
        format!("sqlite://{}", dir.join("hub.db").display())
    }
}

/// Central's answer to an enrolment.
#[derive(Debug, Clone, Deserialize)]
pub struct Enrolled {
    pub hub_id: String,
    pub unit_id: String,
    pub unit_path: String,
    pub certificate: String,
}
