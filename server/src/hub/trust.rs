//! What a hub trusts as of its last contact with central: central's public keys, the signed
//! revocation list, and central's time, behind which the hub's clock never runs. Offline grants
//! are checked against them. Kept in `contact.json`, so a restart while central is out of
//! reach keeps them.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{RwLock, RwLockReadGuard};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{HubError, Result};
use crate::auth::grant::{self, GrantClaims, RevocationList};
use crate::auth::token::ALGORITHM;
use crate::clock;

const FILE: &str = "contact.json";

/// What the hub keeps of its contact with central.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Contact {
    /// Central's public keys.
    pub jwks: Option<JwkSet>,
    /// The revocation list as central signed it.
    pub revocations: Option<String>,
    /// The newest time central told the hub (the revocation list's `iat`).
    pub central_time: i64,
    /// The hub's time at its last complete contact with central.
    pub last_contact: i64,
    /// Where the hub's copy of its unit stands: the pull cursor's `since` and `after`.
    pub since: u64,
    pub after: u64,
    /// Central revoked this hub: it serves no phone any more.
    #[serde(default)]
    pub revoked: bool,
    /// The last entry of the hub's audit log central holds.
    #[serde(default)]
    pub audit_through: i64,
    /// The entity tag of the report kinds last copied from central.
    #[serde(default)]
    pub kinds_tag: Option<String>,
}

/// Why a phone may not open a session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{0}")]
    Grant(String),
    #[error(
        "this hub has not reached the server for longer than an offline grant lasts; connect \
         the office to the network, or sync with the server directly"
    )]
    OutOfTouch,
    #[error("this device has been revoked")]
    Revoked,
}

pub struct Trust {
    path: PathBuf,
    issuer: String,
    held: RwLock<Held>,
}

/// The kept contact, with its revocation list verified once when kept or loaded rather than
/// at every phone request.
struct Held {
    contact: Contact,
    /// The kept list's claims, or why it does not verify with the kept keys; none until both
    /// were kept.
    revocations: Option<Result<RevocationList, String>>,
}

impl Held {
    fn new(contact: Contact, issuer: &str) -> Held {
        let revocations = match (&contact.revocations, &contact.jwks) {
            (Some(list), Some(jwks)) => Some(verify(list, jwks, grant::REVOCATIONS_TYP, issuer)),
            _ => None,
        };
        Held {
            contact,
            revocations,
        }
    }

    /// `next` held in place of this: its list is verified again only when it or the keys
    /// changed, not at each page the hub pulls.
    fn replaced(&mut self, next: Contact, issuer: &str) {
        if next.revocations == self.contact.revocations && next.jwks == self.contact.jwks {
            self.contact = next;
        } else {
            *self = Held::new(next, issuer);
        }
    }

    /// The hub's time: see [`Trust::now`].
    fn now(&self) -> i64 {
        clock::now().max(self.contact.central_time)
    }

    /// Refuses `claims` when the kept revocation list names its device, its user as disabled,
    /// or a change of its user's password since it was issued.
    fn not_revoked(&self, claims: &GrantClaims) -> Result<(), Refusal> {
        let list = match &self.revocations {
            None => return Ok(()),
            Some(Err(e)) => return Err(Refusal::Grant(e.clone())),
            Some(Ok(list)) => list,
        };
        if list.devices.iter().any(|d| d.id == claims.dev) {
            return Err(Refusal::Revoked);
        }
        if list.disabled_users.contains(&claims.sub) {
            return Err(Refusal::Grant("this account is disabled".into()));
        }
        // The same second counts as before: a grant minted then may be the old session's.
        if list
            .changed_passwords
            .iter()
            .any(|c| c.user_id == claims.sub && claims.iat <= c.changed_at)
        {
            return Err(Refusal::Grant(
                "the password was changed after this grant was issued: log in to the server \
                 again with the new password"
                    .into(),
            ));
        }
        Ok(())
    }
}

impl Trust {
    /// The contact kept in `dir`, or none yet.
    pub fn load(dir: &Path, issuer: &str) -> Result<Trust> {
        let path = dir.join(FILE);
        let contact = match fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map_err(|e| HubError::Invalid(format!("{}: {e}", path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Contact::default(),
            Err(source) => return Err(HubError::Io { path, source }),
        };
        Ok(Trust {
            path,
            issuer: issuer.to_owned(),
            held: RwLock::new(Held::new(contact, issuer)),
        })
    }

    fn held(&self) -> RwLockReadGuard<'_, Held> {
        self.held.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn contact(&self) -> Contact {
        self.held().contact.clone()
    }

    /// Whether central revoked this hub.
    pub fn revoked(&self) -> bool {
        self.held().contact.revoked
    }

    /// The hub's time: its clock, but never behind the newest time central told it, so setting
    /// the office PC's clock back revives no expired grant.
    pub fn now(&self) -> i64 {
        self.held().now()
    }

    /// Changes the kept contact and writes it out (to a temporary file, then renamed).
    pub fn update(&self, change: impl FnOnce(&mut Contact)) -> Result<()> {
        let mut held = self.held.write().unwrap_or_else(|p| p.into_inner());
        let mut next = held.contact.clone();
        change(&mut next);
        let text = serde_json::to_vec_pretty(&next)
            .map_err(|e| HubError::Invalid(format!("writing {FILE}: {e}")))?;
        let temporary = self.path.with_extension("json.new");
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| HubError::Io { path, source }
        };
        fs::write(&temporary, text).map_err(io(&temporary))?;
        fs::rename(&temporary, &self.path).map_err(io(&self.path))?;
        held.replaced(next, &self.issuer);
        Ok(())
    }

    /// Keeps what a contact with central brought: its keys and the revocation list `jws`,
    /// checked against them first, and central's time; and, when the list names hub `hub_id`,
    /// that it is revoked.
    pub fn keep(&self, jwks: JwkSet, jws: String, hub_id: &str) -> Result<()> {
        let list: RevocationList = verify(&jws, &jwks, grant::REVOCATIONS_TYP, &self.issuer)
            .map_err(|e| HubError::BadAnswer(format!("the revocation list: {e}")))?;
        let now = self.now();
        self.update(|c| {
            c.jwks = Some(jwks);
            c.revocations = Some(jws);
            c.central_time = c.central_time.max(list.iat);
            c.last_contact = now.max(list.iat);
            c.revoked |= list.revoked_hubs.iter().any(|h| h == hub_id);
        })
    }

    /// The claims of `grant` when a phone may open a session with it at this hub, serving
    /// `unit_path`: signed by central, unexpired by the hub's time, for this unit, of a device
    /// and user not revoked, and the hub in touch with central within a grant's life.
    pub fn check_grant(&self, jws: &str, unit_path: &str) -> Result<GrantClaims, Refusal> {
        let held = self.held();
        let jwks = held
            .contact
            .jwks
            .as_ref()
            .ok_or_else(|| Refusal::Grant("this hub has not reached the server yet".into()))?;
        let claims: GrantClaims =
            verify(jws, jwks, grant::TYP, &self.issuer).map_err(Refusal::Grant)?;
        let now = held.now();
        if claims.exp <= now {
            return Err(Refusal::Grant(
                "the offline grant has expired: sync with the server once to renew it".into(),
            ));
        }
        if now - held.contact.last_contact > claims.exp - claims.iat {
            return Err(Refusal::OutOfTouch);
        }
        if !claims.units.iter().any(|u| u == unit_path) {
            return Err(Refusal::Grant(
                "the offline grant is not for this village's hub".into(),
            ));
        }
        held.not_revoked(&claims)?;
        Ok(claims)
    }

    /// Whether the grant behind an open session still counts: the revocation list fetched
    /// since the session opened may name its device, its user or a password change.
    pub fn still_counts(&self, claims: &GrantClaims) -> Result<(), Refusal> {
        self.held().not_revoked(claims)
    }
}

/// The claims of `jws` when central signed it with one of `jwks` under header type `typ`; its
/// expiry, if any, is the caller's to check against the hub's own time.
fn verify<T: DeserializeOwned>(
    jws: &str,
    jwks: &JwkSet,
    typ: &str,
    issuer: &str,
) -> Result<T, String> {
    let header = jsonwebtoken::decode_header(jws).map_err(|_| "not a JWS".to_owned())?;
    if header.alg != ALGORITHM || header.typ.as_deref() != Some(typ) {
        return Err(format!("not a {typ}"));
    }
    let kid = header.kid.ok_or("no key id")?;
    let jwk = jwks
        .find(&kid)
        .ok_or("signed with a key the server never published")?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    let mut validation = Validation::new(ALGORITHM);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[grant::AUDIENCE]);
    validation.set_required_spec_claims(&["iss", "aud"]);
    validation.validate_exp = false;
    jsonwebtoken::decode::<T>(jws, &key, &validation)
        .map(|d| d.claims)
        .map_err(|_| format!("the {typ} does not verify with the server's keys"))
}
