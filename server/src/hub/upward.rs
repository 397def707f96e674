//! The hub's contact with central, whenever central answers: its keys, the revocation list and
//! its time; the hub's units and the report kinds in force; the pushes phones made here, relayed
//! with their signatures; what central holds for the unit, copied down; the attachments phones
//! uploaded here; and the hub's own audit log, signed. Each step stands on its own, so a contact
//! cut short loses nothing: a relayed push or attachment stays queued until central's answer is
//! recorded (an attachment resumes where central's copy ends), the copy's cursor moves only after
//! the page is stored, and the audit log's only after central says how far it holds it.

use std::collections::HashSet;
use std::time::Duration;

use gridsync_core::protocol::{
    AttestedPush, Pull, PullBody, PullResult, Push, PushDoc, PushOutcome, Relay, RelayResult,
};
use gridsync_core::report::ReportDoc;
use gridsync_core::schema::Schema;
use jsonwebtoken::jwk::JwkSet;
use serde::Deserialize;

use super::central::Reply;
use super::{HubError, HubState, Result};
use crate::auth::hub as hub_token;
use crate::catalogue::{self, Actor, RegistryError};
use crate::config::ATTACHMENT_MEDIA_TYPES;
use crate::http::attachments::ATTACHMENT_RECEIPT;
use crate::http::error::UPLOAD_OFFSET;
use crate::http::hub_sync::KindInForce;
use crate::http::org::OrgTree;
use crate::scope::Scope;
use crate::store::{OrgUnit, QueuedAttachment, SchemaState, Via, Writer};

/// Pushes relayed in one request.
const RELAY_BATCH: i64 = 64;
/// Bytes of documents asked for in one pull page.
const PAGE_BYTES: u32 = 1 << 20;
/// Audit entries uploaded in one request.
const AUDIT_BATCH: i64 = 500;
/// Queued attachments read at a time.
const ATTACHMENT_BATCH: i64 = 64;
/// Bytes of an attachment sent to central in one request.
const ATTACHMENT_CHUNK: i64 = 256 * 1024;

/// What one contact did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Contacted {
    /// Pushes central took (acknowledged, held or refused for good).
    pub relayed: usize,
    /// Documents copied down.
    pub copied: usize,
    /// Attachments central holds now, with its receipt.
    pub attachments: usize,
}

/// Contacts central every `period`, and whenever `poke` is notified, for as long as the hub runs.
pub async fn every(hub: HubState, period: Duration, poke: std::sync::Arc<tokio::sync::Notify>) {
    loop {
        match contact(&hub).await {
            Ok(done) => tracing::info!(
                relayed = done.relayed,
                copied = done.copied,
                attachments = done.attachments,
                "contacted central"
            ),
            Err(e) => tracing::warn!(error = %e, "could not reach central; trying again later"),
        }
        tokio::select! {
            () = tokio::time::sleep(period) => {}
            () = poke.notified() => {}
        }
    }
}

/// One contact with central: trust, units, relay up, copy down.
pub async fn contact(hub: &HubState) -> Result<Contacted> {
    let token = hub_token::sign(
        &hub.identity.seed(),
        &hub.identity.hub_id,
        &hub.identity.issuer,
        hub.trust.now(),
    )?;
    refresh_trust(hub, &token).await?;
    import_units(hub, &token).await?;
    import_kinds(hub, &token).await?;
    let relayed = relay(hub, &token).await?;
    let copied = copy_down(hub, &token).await?;
    let attachments = relay_attachments(hub, &token).await?;
    upload_audit(hub, &token).await?;
    Ok(Contacted {
        relayed,
        copied,
        attachments,
    })
}

/// What became of one queued attachment.
enum Sent {
    /// Central holds the bytes: its receipt.
    Held(String),
    /// Central cannot take them yet (the report's changes have not reached it).
    Later,
    /// Central will never take these bytes from this hub, and says why. The phone that
    /// uploaded them still holds them and owes them to central.
    Never(HubError),
}

/// Relays the queued attachments, oldest first, and records central's receipts. One central
/// cannot take yet stays queued.
async fn relay_attachments(hub: &HubState, token: &str) -> Result<usize> {
    let mut held = 0;
    let mut after = 0;
    loop {
        let queued = hub
            .store
            .waiting_attachments(after, ATTACHMENT_BATCH)
            .await?;
        let Some(last) = queued.last() else {
            return Ok(held);
        };
        after = last.id;
        for attachment in &queued {
            let receipt = match relay_attachment(hub, token, attachment).await? {
                Sent::Held(receipt) => {
                    held += 1;
                    Some(receipt)
                }
                Sent::Later => continue,
                Sent::Never(why) => {
                    tracing::warn!(doc = %attachment.doc_id, hash = attachment.hash, error = %why,
                        "central will not take an attachment from this hub");
                    None
                }
            };
            hub.store
                .mark_attachment_relayed(attachment.id, hub.trust.now(), receipt.as_deref())
                .await?;
        }
    }
}

/// Sends one attachment to central from where central's copy ends, chunk by chunk.
async fn relay_attachment(
    hub: &HubState,
    token: &str,
    attachment: &QueuedAttachment,
) -> Result<Sent> {
    let path = format!(
        "/api/v1/hubs/attachments/{}/{}",
        attachment.doc_id, attachment.hash
    );
    let held = |reply: &Reply| {
        reply
            .header(ATTACHMENT_RECEIPT)
            .map(|r| Sent::Held(r.to_owned()))
            .ok_or_else(|| {
                HubError::BadAnswer(format!("{path}: central holds it, but gave no receipt"))
            })
    };
    let offset_of = |reply: &Reply| {
        reply
            .header(UPLOAD_OFFSET)
            .and_then(|o| o.parse::<i64>().ok())
    };
    let head = hub.central.head(&path, token).await?;
    let mut offset = match head.status {
        200 if head.header(ATTACHMENT_RECEIPT).is_some() => return held(&head),
        200 => offset_of(&head).unwrap_or(0),
        // No such report at central yet, or it does not name these bytes yet: no byte is sent.
        404 | 409 => return Ok(Sent::Later),
        _ => return Err(head.refused()),
    };
    loop {
        let end = (offset + ATTACHMENT_CHUNK).min(attachment.size);
        let bytes = hub
            .store
            .read_blob(&attachment.hash, offset, end)
            .await?
            .ok_or_else(|| {
                HubError::Invalid(format!("attachment {} has no blob", attachment.hash))
            })?;
        let range = format!("bytes {offset}-{}/{}", end - 1, attachment.size);
        let reply = hub
            .central
            .put(
                &path,
                token,
                &[("content-range", range)],
                (bytes, media_type(&attachment.media_type)?),
            )
            .await?;
        match (reply.status, reply.problem("code").as_str()) {
            (200 | 201, _) => return held(&reply),
            (202, _) => offset = offset_of(&reply).unwrap_or(end),
            (409, "wrong_offset") => {
                offset = offset_of(&reply).ok_or_else(|| {
                    HubError::BadAnswer(format!("{path}: wrong_offset without the offset"))
                })?
            }
            (404, _) | (409, "not_attached") => return Ok(Sent::Later),
            (413 | 415 | 422, _) => return Ok(Sent::Never(reply.refused())),
            _ => return Err(reply.refused()),
        }
    }
}

/// The media type as a static text, which the client sends as `Content-Type`.
fn media_type(stored: &str) -> Result<&'static str> {
    ATTACHMENT_MEDIA_TYPES
        .into_iter()
        .find(|t| *t == stored)
        .ok_or_else(|| HubError::Invalid(format!("an attachment of media type {stored}")))
}

#[derive(Deserialize)]
struct AuditThrough {
    through: i64,
}

/// Uploads the hub's audit log past what central holds, page by page, each signed with the
/// hub's key.
async fn upload_audit(hub: &HubState, token: &str) -> Result<()> {
    loop {
        let after = hub.trust.contact().audit_through;
        let page = hub.store.audit_after(after, AUDIT_BATCH).await?;
        if page.is_empty() {
            return Ok(());
        }
        let log = hub_token::sign_audit(
            &hub.identity.seed(),
            &hub.identity.hub_id,
            &hub.identity.issuer,
            &page,
            hub.trust.now(),
        )?;
        let held: AuditThrough = hub
            .central
            .post_json(
                "/api/v1/hubs/audit",
                &serde_json::json!({ "log": log }),
                Some(token),
            )
            .await?;
        if held.through <= after {
            // Central holds no more than before: another try would send the same page.
            return Ok(());
        }
        hub.trust.update(|c| c.audit_through = held.through)?;
    }
}

#[derive(Deserialize)]
struct SignedRevocations {
    revocations: String,
}

async fn refresh_trust(hub: &HubState, token: &str) -> Result<()> {
    let jwks: JwkSet = hub.central.get_json("/.well-known/jwks.json", None).await?;
    let signed: SignedRevocations = match hub
        .central
        .get_json("/api/v1/hubs/revocations", Some(token))
        .await
    {
        Err(HubError::Refused { code, .. }) if code == "hub_revoked" => {
            hub.trust.update(|c| c.revoked = true)?;
            return Err(HubError::Revoked);
        }
        other => other?,
    };
    hub.trust
        .keep(jwks, signed.revocations, &hub.identity.hub_id)
}

/// Writes the hub's units (and those above them, which paths and parents name) into its
/// database.
async fn import_units(hub: &HubState, token: &str) -> Result<()> {
    let tree: OrgTree = hub
        .central
        .get_json("/api/v1/hubs/org", Some(token))
        .await?;
    let mut path = String::from("/");
    let mut parent: Option<String> = None;
    for crumb in &tree.ancestors {
        path.push_str(&crumb.id);
        path.push('/');
        hub.store
            .upsert_org_unit(&OrgUnit {
                id: crumb.id.clone(),
                parent_id: parent.clone(),
                level: crumb.level,
                name: crumb.name.clone(),
                path: path.clone(),
            })
            .await?;
        parent = Some(crumb.id.clone());
    }
    for unit in tree.units {
        hub.store
            .upsert_org_unit(&OrgUnit {
                id: unit.id,
                parent_id: unit.parent_id,
                level: unit.level,
                name: unit.name,
                path: unit.path,
            })
            .await?;
    }
    Ok(())
}

/// Copies the report kinds central has in force into the hub's registry, through the same
/// version rules, so that the hub judges reports of kinds published at runtime as central does.
/// A kind that does not pass is left out and said in the log; central still judges its reports.
async fn import_kinds(hub: &HubState, token: &str) -> Result<()> {
    let held = hub.trust.contact().kinds_tag;
    let Some((kinds, tag)) = hub
        .central
        .get_json_if_changed::<Vec<KindInForce>>("/api/v1/hubs/kinds", token, held.as_deref())
        .await?
    else {
        return Ok(());
    };
    let store = hub.store.as_ref();
    let actor = || Actor {
        user: None,
        device: None,
        via: "hub",
    };
    let mut all_copied = true;
    for kind in kinds {
        let schema = match Schema::from_json(&kind.definition.to_string()) {
            Ok(schema) => schema,
            Err(e) => {
                tracing::warn!(error = %e, "central sent a report kind this hub cannot read");
                all_copied = false;
                continue;
            }
        };
        let (name, version) = (schema.kind.as_str(), schema.version);
        let have = store.stored_schema(name, version).await?.map(|r| r.state);
        let copied = async {
            if matches!(have, None | Some(SchemaState::Draft)) {
                catalogue::save_draft(store, &schema, "central", actor()).await?;
                catalogue::publish(store, name, version, actor()).await?;
            }
            if kind.state == SchemaState::Retired && have != Some(SchemaState::Retired) {
                catalogue::retire(store, name, version, actor()).await?;
            }
            Ok::<_, RegistryError>(())
        };
        if let Err(e) = copied.await {
            tracing::warn!(kind = name, version, error = %e, "a report kind was not copied");
            all_copied = false;
        }
    }
    // Only once every kind is copied: otherwise the next contact fetches them all again.
    if all_copied {
        hub.trust.update(|c| c.kinds_tag = tag)?;
    }
    Ok(())
}

/// Relays the queued pushes, oldest first, and records each answer with its receipt. A push
/// central cannot take yet (it lacks a change another push brings) stays queued.
async fn relay(hub: &HubState, token: &str) -> Result<usize> {
    let mut relayed = 0;
    loop {
        let queued = hub.store.waiting_pushes(RELAY_BATCH).await?;
        if queued.is_empty() {
            return Ok(relayed);
        }
        let pushes = queued
            .iter()
            .map(|q| {
                gridsync_core::protocol::decode::<AttestedPush>(&q.frame).map_err(|e| {
                    HubError::Invalid(format!("queued push {} does not decode: {e}", q.id))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let answer: RelayResult = hub
            .central
            .exchange("/api/v1/hubs/relay", token, &Relay { pushes })
            .await?;
        if answer.pushes.len() != queued.len() {
            return Err(HubError::BadAnswer(format!(
                "{} answers to {} relayed pushes",
                answer.pushes.len(),
                queued.len()
            )));
        }
        let now = hub.trust.now();
        let mut waiting = 0;
        for (queued, answer) in queued.iter().zip(answer.pushes) {
            let later = answer
                .result
                .docs
                .iter()
                .any(|d| matches!(d.outcome, PushOutcome::MissingDeps { .. }));
            if later {
                waiting += 1;
                continue;
            }
            hub.store
                .mark_relayed(queued.id, now, answer.receipt.as_deref())
                .await?;
            relayed += 1;
        }
        if waiting > 0 {
            // What they lack comes with a later contact, after other pushes or a copy down.
            return Ok(relayed);
        }
    }
}

/// Copies down what central holds for the unit past the hub's cursor, page by page.
async fn copy_down(hub: &HubState, token: &str) -> Result<usize> {
    let writer = Writer {
        user_id: hub.identity.hub_id.clone(),
        device_id: None,
        scope: Scope::for_hub(&hub.identity.hub_id, &hub.identity.unit_path),
        now: hub.trust.now(),
        hold_out_of_scope: false,
        via: Via::Central,
    };
    let mut copied = 0;
    let mut resend = Vec::new();
    let mut asked = HashSet::new();
    loop {
        let contact = hub.trust.contact();
        let pull = Pull {
            since: contact.since,
            after: contact.after.max(contact.since),
            byte_budget: PAGE_BYTES,
            resend: std::mem::take(&mut resend),
            takes_heads: false,
        };
        let page: PullResult = hub
            .central
            .exchange("/api/v1/hubs/pull", token, &pull)
            .await?;
        let push = Push {
            docs: page
                .docs
                .iter()
                .map(|d| {
                    let changes = match &d.body {
                        PullBody::Changes(changes) => changes.clone(),
                        PullBody::Snapshot(bytes) => ReportDoc::load(d.doc, bytes)
                            .map_err(|e| HubError::BadAnswer(format!("document {}: {e}", d.doc)))?
                            .changes_since(&[]),
                    };
                    Ok(PushDoc {
                        doc: d.doc,
                        changes,
                    })
                })
                .collect::<Result<Vec<_>>>()?,
        };
        let result = hub.ingest.push(hub.store.as_ref(), &writer, &push).await?;
        for doc in &result.docs {
            match &doc.outcome {
                PushOutcome::Acked { .. } => copied += 1,
                // Changes that came without their history: ask for the whole document.
                PushOutcome::MissingDeps { .. } if asked.insert(doc.doc) => resend.push(doc.doc),
                PushOutcome::MissingDeps { .. } => {
                    tracing::warn!(doc = %doc.doc, "a report from central came whole and still lacked history");
                }
                PushOutcome::Rejected { code, reason } | PushOutcome::Held { code, reason } => {
                    tracing::warn!(doc = %doc.doc, code, reason, "a report from central was not copied");
                }
            }
        }
        let restored = page.after < pull.since;
        hub.trust.update(|c| {
            if restored {
                // Central holds less than the hub copied: start the copy over.
                (c.since, c.after) = (0, 0);
            } else if page.more || !resend.is_empty() {
                c.after = page.after;
            } else {
                (c.since, c.after) = (page.after, page.after);
            }
        })?;
        if !page.more && resend.is_empty() {
            return Ok(copied);
        }
    }
}
