//! Offline grants: what central signs for a phone at each login and refresh, so that a village
//! office hub, which holds no key that can mint tokens, can let the phone in while central is out
//! of reach. A grant names the user, the device and the public key the phone generated, the
//! role and scope, and the units whose hubs may take it; it expires. The revocation list says
//! which grants no longer count, those of revoked devices, of disabled accounts and those issued
//! before their user's password changed, and which hub certificates: those of revoked hubs. A
//! receipt tells a phone, through its hub, that central holds what the phone pushed to the hub.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use super::Result;
use crate::scope::{Role, Scope};
use crate::store::{ChangedPassword, Device, Level, RevokedDevice, Store, User};

/// What phones check of these with central's keys, and the `aud` of grants, never an access
/// token's: a grant does not pass for one.
pub use gridsync_core::signed::{
    ATTACHMENT_RECEIPT_TYP, AUDIENCE, AttachmentReceipt, HUB_TYP, HubCertificate, RECEIPT_TYP,
    REVOCATIONS_TYP, Receipt, ReceiptDoc,
};

/// The `typ` header of grants.
pub const TYP: &str = "gridsync-grant+jwt";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantClaims {
    pub iss: String,
    pub aud: String,
    /// The user id.
    pub sub: String,
    /// The device id.
    pub dev: String,
    /// The device's Ed25519 public key, unpadded base64url: the hub has the phone sign its
    /// nonce with the private half.
    pub dkey: String,
    pub role: Role,
    /// The org path prefix of the user's scope.
    pub scope: String,
    /// Org paths of the units whose hubs may take this grant.
    pub units: Vec<String>,
    pub iat: i64,
    pub exp: i64,
}

/// Checks the public key a phone or a hub sends as `field`: an Ed25519 public key, 32 bytes as
/// unpadded base64url. The error says what is wrong with it.
pub fn check_public_key(field: &str, text: &str) -> Result<(), String> {
    public_key(field, text).map(drop)
}

/// The Ed25519 public key `text` (32 bytes as unpadded base64url), as devices and hubs send
/// and the store keeps them; the error says what is wrong with the `field`.
pub fn public_key(field: &str, text: &str) -> Result<ed25519_dalek::VerifyingKey, String> {
    let bytes = URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| format!("{field} must be unpadded base64url"))?;
    let bytes: [u8; 32] = bytes
        .try_into()
        .map_err(|_| format!("{field} must be a 32-byte Ed25519 public key"))?;
    ed25519_dalek::VerifyingKey::from_bytes(&bytes)
        .map_err(|_| format!("{field} is not an Ed25519 public key"))
}

/// The claims of a grant for `user` on `device`, issued at `now` for `ttl_secs`; `None` when
/// the device has sent no key, is being handed in, or no hub serves the user's work.
pub async fn claims(
    store: &dyn Store,
    issuer: &str,
    user: &User,
    device: &Device,
    now: i64,
    ttl_secs: i64,
) -> Result<Option<GrantClaims>> {
    let Some(dkey) = &device.public_key else {
        return Ok(None);
    };
    // A phone being handed in (a disabled user's among them) only delivers what it holds, which
    // it does to the server.
    if device.retiring_at.is_some() || user.disabled {
        return Ok(None);
    }
    let Some(unit) = store.org_unit(&user.org_unit_id).await? else {
        return Ok(None);
    };
    let scope = Scope::for_role(&user.id, user.role, &unit.path).prefix;
    // Hubs stand in village and community offices: the people who work there are the grid
    // workers of their grids and the cadres. Everyone else works from offices central reaches.
    let village = match (user.role, unit.level) {
        (Role::VillageCadre, Level::Village | Level::Community) => Some(unit),
        (Role::GridWorker, Level::Grid) => match &unit.parent_id {
            Some(parent) => store.org_unit(parent).await?,
            None => None,
        },
        _ => None,
    };
    let units: Vec<String> = village
        .filter(|v| matches!(v.level, Level::Village | Level::Community))
        .map(|v| v.path)
        .into_iter()
        .collect();
    if units.is_empty() {
        return Ok(None);
    }
    Ok(Some(GrantClaims {
        iss: issuer.to_owned(),
        aud: AUDIENCE.to_owned(),
        sub: user.id.clone(),
        dev: device.id.clone(),
        dkey: dkey.clone(),
        role: user.role,
        scope,
        units,
        iat: now,
        exp: now.saturating_add(ttl_secs),
    }))
}

/// The signed revocation list: the grants a hub must refuse from now on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationList {
    pub iss: String,
    pub aud: String,
    /// When central read the list: a hub never runs its clock behind the newest it has seen.
    pub iat: i64,
    /// Devices revoked within a grant's life, each to be refused and wiped. A device revoked
    /// longer ago holds no grant that has not expired.
    pub devices: Vec<RevokedDevice>,
    /// Disabled accounts, by user id: none of their grants count.
    pub disabled_users: Vec<String>,
    /// Revoked hubs, by hub id: phones no longer trust their certificates.
    pub revoked_hubs: Vec<String>,
    /// Passwords changed or reset within a grant's life: the user's grants issued up to then
    /// no longer count, as central ended the sessions they came with. Absent from the lists of
    /// a central older than this field.
    #[serde(default)]
    pub changed_passwords: Vec<ChangedPassword>,
}

/// The revocation list as of `now`, for grants living `ttl_secs`.
pub async fn revocations(
    store: &dyn Store,
    issuer: &str,
    now: i64,
    ttl_secs: i64,
) -> Result<RevocationList> {
    let revoked = store.revocations(now.saturating_sub(ttl_secs)).await?;
    Ok(RevocationList {
        iss: issuer.to_owned(),
        aud: AUDIENCE.to_owned(),
        iat: now,
        devices: revoked.devices,
        disabled_users: revoked.disabled_users,
        revoked_hubs: revoked.revoked_hubs,
        changed_passwords: revoked.changed_passwords,
    })
}
