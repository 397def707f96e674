//! Sync with the village office hub when central is out of reach. The phone speaks TLS with the
//! hub under the key central certified for it (`hub_tls`): it checks the hub's certificate with
//! central's keys (kept from its last login) and that the TLS handshake proved the key the
//! certificate names, before it sends anything but a request for a nonce. It opens a session
//! with its offline grant and its device key's answer to the hub's nonce, pushes what it owes central (each push
//! signed with the device key, never a restricted report), pulls the hub's copy of its scope,
//! takes central's receipts for what the hub relayed, each checked with central's keys, and
//! uploads its attachments there (`client::attachments`).
//!
//! What the hub acknowledges stays owed to central (see `gridsync_core::replica::Server`);
//! only central's acknowledgement or its receipt settles it. A hub's refusal is not central's:
//! the report waits for the next sync that reaches central. A hub that says this device was
//! revoked is believed only with central's signed revocation list naming it.

use std::collections::BTreeSet;
use std::sync::Arc;

use automerge::ChangeHash;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::SigningKey;
use gridsync_core::DocId;
use gridsync_core::attest;
use gridsync_core::protocol::{self, Push, PushResult};
use gridsync_core::replica::Server;
use gridsync_core::signed::{
    ATTACHMENT_RECEIPT_TYP, AttachmentReceipt, HUB_TYP, HubCertificate, KeySet, RECEIPT_TYP,
    REVOCATIONS_TYP, Receipt, RevokedDevices,
};
use serde::Deserialize;
use serde_json::json;

use super::answers::{parse_json, unexpected};
use super::sync::{Peer, Progress, report};
use super::{Client, parse_id, transport_settings};
use crate::error::{ClientError, Result};
use crate::hub_tls::HubPin;
use crate::model::{SyncPhase, SyncSummary};
use crate::store::{Batch, LocalBlob, OfficeHub};
use crate::transport::{Answer, Traffic, Transport};

const JSON: &str = "application/json";
const FRAME: &str = "application/x-gridsync";
/// Upper bounds on the pull pages and receipt pages of one sync with a hub.
const MAX_PULL_PAGES: u32 = 100_000;
const MAX_RECEIPT_PAGES: u32 = 1_000;

/// An open session at the office hub.
pub(super) struct HubLink {
    pub(super) transport: Transport,
    hub_id: String,
    pub(super) session: String,
    device: String,
    key: SigningKey,
    /// Central's keys, which check the hub's certificate and the receipts it hands on.
    keys: KeySet,
}

#[derive(Deserialize)]
struct Nonce {
    nonce: String,
    hub_id: String,
    unit_path: String,
    certificate: String,
}

#[derive(Deserialize)]
struct Opened {
    session: String,
}

#[derive(Deserialize)]
struct Receipts {
    receipts: Vec<NumberedReceipt>,
}

#[derive(Deserialize)]
struct NumberedReceipt {
    id: u64,
    receipt: String,
}

#[derive(Deserialize)]
struct Revocations {
    revocations: String,
}

impl Client {
    /// Sets the village office hub this phone syncs with when central is out of reach (an
    /// `https://` address on the office network), or none. Another hub than the one set before
    /// starts from nothing.
    pub fn set_office_hub(&self, url: Option<String>) -> Result<()> {
        let _sync = self.sync_guard();
        let hub = match url {
            Some(url) => {
                // Checks the address as the transport will use it.
                let transport =
                    Transport::to_hub(&url, transport_settings(&self.config), Arc::default())?;
                Some(OfficeHub {
                    url: transport.base().to_owned(),
                    id: None,
                    key: None,
                })
            }
            None => None,
        };
        let mut state = self.lock();
        let same =
            state.store()?.office_hub()?.map(|h| h.url) == hub.as_ref().map(|h| h.url.clone());
        if same {
            return Ok(());
        }
        state.store()?.set_office_hub(hub.as_ref())?;
        state.replica.leave_hub();
        Ok(())
    }

    /// The office hub's address, when one is set.
    pub fn office_hub(&self) -> Result<Option<String>> {
        Ok(self.lock().store()?.office_hub()?.map(|h| h.url))
    }

    /// Pushes to, pulls from and takes receipts from the office hub.
    pub(super) fn sync_via_hub(
        &self,
        summary: &mut SyncSummary,
        traffic: &mut Traffic,
        progress: Option<&dyn Progress>,
    ) -> Result<()> {
        let link = self.open_hub(traffic)?;
        summary.via_hub = Some(link.hub_id.clone());
        self.push_all(&Peer::Hub(&link), summary, traffic, progress)?;
        self.pull_hub(&link, summary, traffic, progress)?;
        self.take_receipts(&link, summary, traffic)?;
        self.upload_pending(&Peer::Hub(&link), summary, traffic)?;
        self.release_delivered(summary)
    }

    /// `at_central`, unless it failed for want of a network and an office hub is set: then
    /// `at_hub`. Whatever keeps the hub from serving leaves the phone as offline as without it,
    /// and keeping everything for the next try; a wipe or a failing store is said as itself.
    pub(super) fn or_at_hub<T>(
        &self,
        at_central: Result<T>,
        at_hub: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        let why = match at_central {
            Err(ClientError::Network(why)) => why,
            other => return other,
        };
        if self.lock().store()?.office_hub()?.is_none() {
            return Err(ClientError::Network(why));
        }
        at_hub().map_err(|e| match e {
            ClientError::Network(at_hub)
            | ClientError::Unauthorized(at_hub)
            | ClientError::Server(at_hub)
            | ClientError::Invalid(at_hub) => {
                ClientError::Network(format!("{why}; the office hub: {at_hub}"))
            }
            other => other,
        })
    }

    /// Downloads an attachment the office hub holds.
    pub(super) fn fetch_at_hub(
        &self,
        doc: &DocId,
        sha256: &str,
        traffic: &mut Traffic,
    ) -> Result<Answer> {
        let link = self.open_hub(traffic)?;
        let answer = link.transport.get(
            &format!("/hub/v1/reports/{doc}/attachments/{sha256}"),
            Some(&link.session),
            traffic,
        )?;
        if answer.ok() {
            Ok(answer)
        } else {
            Err(self.link_refusal(&link, &answer, traffic))
        }
    }

    /// Checks the hub's certificate and opens a session there.
    fn open_hub(&self, traffic: &mut Traffic) -> Result<HubLink> {
        let (hub, grant, revoked, device, seed, keys) = {
            let mut state = self.lock();
            let revoked = state
                .session
                .as_ref()
                .map(|s| s.revoked_hubs.clone())
                .unwrap_or_default();
            let grant = state
                .session
                .as_ref()
                .and_then(|s| s.offline_grant.clone())
                .ok_or_else(|| {
                    ClientError::Unauthorized(
                        "this session holds no grant for an office hub; log in with the server \
                         first"
                            .into(),
                    )
                })?;
            let store = state.store()?;
            let hub = store
                .office_hub()?
                .ok_or_else(|| ClientError::Invalid("no office hub is set".into()))?;
            let keys = store.central_keys()?.ok_or_else(|| {
                ClientError::Unauthorized(
                    "this phone holds no keys of the server's yet; log in with the server once"
                        .into(),
                )
            })?;
            (
                hub,
                grant,
                revoked,
                store.device_id()?,
                store.device_key()?,
                keys,
            )
        };
        let keys = KeySet::from_jwks(&keys).map_err(|e| ClientError::Storage(e.to_string()))?;
        let pin = Arc::new(match &hub.key {
            Some(key) => HubPin::fixed(key)?,
            None => HubPin::default(),
        });
        let transport = Transport::to_hub(&hub.url, transport_settings(&self.config), pin.clone())?;
        let answer = transport.post("/hub/v1/nonce", JSON, b"", None, traffic)?;
        if !answer.ok() {
            return Err(self.hub_refusal(&answer, &transport, &keys, &device, traffic));
        }
        let nonce: Nonce = parse_json(&answer)?;
        let certificate: HubCertificate = keys.open(&nonce.certificate, HUB_TYP).map_err(|e| {
            ClientError::Unauthorized(format!(
                "{} is not an office hub the server enrolled: {e}",
                hub.url
            ))
        })?;
        if certificate.sub != nonce.hub_id
            || certificate.unit != nonce.unit_path
            || pin.presented().as_deref() != Some(certificate.hkey.as_str())
        {
            return Err(ClientError::Unauthorized(format!(
                "{} shows the certificate of another hub",
                hub.url
            )));
        }
        if revoked.contains(&certificate.sub) {
            return Err(ClientError::Unauthorized(format!(
                "the server revoked the office hub at {}",
                hub.url
            )));
        }
        pin.fix(&certificate.hkey)?;
        if hub.id.as_deref() != Some(nonce.hub_id.as_str()) || hub.key.is_none() {
            // Another hub at this address (the office PC was replaced): nothing it holds is known.
            let mut state = self.lock();
            state.store()?.set_office_hub(Some(&OfficeHub {
                url: hub.url.clone(),
                id: Some(nonce.hub_id.clone()),
                key: Some(certificate.hkey.clone()),
            }))?;
            state.replica.leave_hub();
        }
        let key = SigningKey::from_bytes(&seed);
        let signature = attest::sign_challenge(&key, &nonce.hub_id, nonce.nonce.as_bytes());
        let body = json!({
            "grant": grant,
            "nonce": nonce.nonce,
            "signature": URL_SAFE_NO_PAD.encode(signature),
        });
        let answer = transport.post(
            "/hub/v1/session",
            JSON,
            body.to_string().as_bytes(),
            None,
            traffic,
        )?;
        if !answer.ok() {
            return Err(self.hub_refusal(&answer, &transport, &keys, &device, traffic));
        }
        let opened: Opened = parse_json(&answer)?;
        Ok(HubLink {
            transport,
            hub_id: nonce.hub_id,
            session: opened.session,
            device,
            key,
            keys,
        })
    }

    /// Signs `push` with the device key and hands it to the hub.
    pub(super) fn push_to_hub(
        &self,
        link: &HubLink,
        push: &Push,
        traffic: &mut Traffic,
    ) -> Result<PushResult> {
        let attested = attest::sign(&link.key, &link.device, push.clone());
        self.hub_frame(
            link,
            "/hub/v1/sync/push",
            protocol::encode(&attested),
            traffic,
        )
    }

    fn pull_hub(
        &self,
        link: &HubLink,
        summary: &mut SyncSummary,
        traffic: &mut Traffic,
        progress: Option<&dyn Progress>,
    ) -> Result<()> {
        // Forms of unknown kinds are fetched from central on the next sync that reaches it,
        // which pulls those reports again.
        let mut lacking = BTreeSet::new();
        let mut diverged = false;
        for page in 1..=MAX_PULL_PAGES {
            let pull = self
                .lock()
                .replica
                .build_pull_from(Server::Hub, self.config.pull_byte_budget);
            let result =
                self.hub_frame(link, "/hub/v1/sync/pull", protocol::encode(&pull), traffic)?;
            let pulled = self.apply_page(Server::Hub, result, &mut lacking)?;
            summary.pulled_reports += pulled.docs as u32;
            report(
                progress,
                SyncPhase::Pull,
                page,
                summary.pulled_reports,
                traffic,
            );
            if pulled.diverged {
                // Pulled again from zero once; a hub that disagrees again is left for now.
                if diverged {
                    return Ok(());
                }
                diverged = true;
                continue;
            }
            if !pulled.more {
                return Ok(());
            }
        }
        Err(ClientError::Server(format!(
            "pulling from the office hub did not finish in {MAX_PULL_PAGES} pages"
        )))
    }

    /// Takes central's receipts for this phone's relayed pushes: each checked with central's
    /// keys, then counted as central's. One that does not verify counts for nothing: what it
    /// names stays owed to central, which the phone reaches in the end.
    fn take_receipts(
        &self,
        link: &HubLink,
        summary: &mut SyncSummary,
        traffic: &mut Traffic,
    ) -> Result<()> {
        for _ in 0..MAX_RECEIPT_PAGES {
            let after = self.lock().store()?.receipts_after()?;
            let answer = link.transport.get(
                &format!("/hub/v1/receipts?after={after}"),
                Some(&link.session),
                traffic,
            )?;
            if !answer.ok() {
                return Err(self.link_refusal(link, &answer, traffic));
            }
            let page: Receipts = parse_json(&answer)?;
            // A hub that answers with what the phone took already makes no progress.
            let fresh: Vec<&NumberedReceipt> =
                page.receipts.iter().filter(|r| r.id > after).collect();
            let Some(last) = fresh.iter().map(|r| r.id).max() else {
                return Ok(());
            };
            let mut state = self.lock();
            let mut batch = Batch::default();
            for receipt in fresh
                .iter()
                .filter_map(|r| opened_receipt(link, &r.receipt))
            {
                for doc in &receipt.docs {
                    let heads: Option<Vec<ChangeHash>> =
                        doc.heads.iter().map(|h| h.parse().ok()).collect();
                    let (Ok(id), Some(heads)) = (parse_id(&doc.doc), heads) else {
                        continue;
                    };
                    if state.replica.apply_receipt(&id, &heads, doc.held)?
                        && let Some(index) = state.replica.index_of(&id)
                    {
                        batch.put_index(id, index);
                    }
                }
                summary.receipts += 1;
            }
            batch.set_receipts_after(last);
            state.store()?.commit(batch)?;
            state.replica.park(None);
        }
        Ok(())
    }

    /// Posts a sync frame in the hub session and decodes the answer.
    fn hub_frame<A: protocol::Message>(
        &self,
        link: &HubLink,
        path: &str,
        frame: Vec<u8>,
        traffic: &mut Traffic,
    ) -> Result<A> {
        let answer = link.transport.post_with(
            path,
            &[("content-type", FRAME.to_owned())],
            &frame,
            Some(&link.session),
            traffic,
        )?;
        if !answer.ok() {
            return Err(self.link_refusal(link, &answer, traffic));
        }
        protocol::decode(&answer.body).map_err(|e| {
            ClientError::Server(format!("the office hub's answer is not a sync frame: {e}"))
        })
    }

    /// [`Client::hub_refusal`] within an open session.
    pub(super) fn link_refusal(
        &self,
        link: &HubLink,
        answer: &Answer,
        traffic: &mut Traffic,
    ) -> ClientError {
        self.hub_refusal(answer, &link.transport, &link.keys, &link.device, traffic)
    }

    /// What a hub's refusal becomes. A hub's word that this device was revoked wipes the
    /// phone only when central's signed list, which the hub hands on, names the device.
    fn hub_refusal(
        &self,
        answer: &Answer,
        transport: &Transport,
        keys: &KeySet,
        device: &str,
        traffic: &mut Traffic,
    ) -> ClientError {
        let problem = answer.problem();
        match (answer.status, problem.code.as_str()) {
            (401, "device_revoked") => match revoked_by_central(transport, keys, device, traffic) {
                Ok(true) => self.wipe_revoked().unwrap_or_else(|e| e),
                Ok(false) => ClientError::Unauthorized(
                    "the office hub refuses this device, but the server's revocation list does \
                     not name it"
                        .into(),
                ),
                Err(e) => e,
            },
            (401 | 403, _) => ClientError::Unauthorized(format!(
                "the office hub refused: {} ({})",
                problem.detail, problem.code
            )),
            _ => unexpected(answer),
        }
    }
}

/// Whether central's revocation list, as the hub holds it, names `device`.
fn revoked_by_central(
    transport: &Transport,
    keys: &KeySet,
    device: &str,
    traffic: &mut Traffic,
) -> Result<bool> {
    let answer = transport.get("/hub/v1/revocations", None, traffic)?;
    if !answer.ok() {
        return Ok(false);
    }
    let list: Revocations = parse_json(&answer)?;
    let revoked: RevokedDevices = keys
        .open(&list.revocations, REVOCATIONS_TYP)
        .map_err(|e| ClientError::Unauthorized(format!("the hub's revocation list: {e}")))?;
    Ok(revoked.devices.iter().any(|d| d.id == device))
}

impl HubLink {
    /// Whether `jws` is central's receipt, relayed by this hub, for the bytes of `blob`.
    pub(super) fn receipt_for(&self, jws: &str, blob: &LocalBlob) -> bool {
        match self
            .keys
            .open::<AttachmentReceipt>(jws, ATTACHMENT_RECEIPT_TYP)
        {
            Ok(r) => {
                r.hub == self.hub_id
                    && r.doc == blob.doc_id.to_string()
                    && r.sha256 == blob.sha256
                    && r.size == blob.size
            }
            Err(e) => {
                tracing::warn!(hub = %self.hub_id, error = %e, "an attachment receipt the server did not sign");
                false
            }
        }
    }
}

/// A receipt central signed for this device's push through this hub; `None`, and a warning,
/// for anything else.
fn opened_receipt(link: &HubLink, jws: &str) -> Option<Receipt> {
    let receipt: Receipt = match link.keys.open(jws, RECEIPT_TYP) {
        Ok(receipt) => receipt,
        Err(e) => {
            tracing::warn!(hub = %link.hub_id, error = %e, "a receipt the server did not sign");
            return None;
        }
    };
    if receipt.dev != link.device || receipt.hub != link.hub_id {
        tracing::warn!(hub = %link.hub_id, "a receipt for another device or hub");
        return None;
    }
    Some(receipt)
}
