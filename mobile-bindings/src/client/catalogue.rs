//! Report kinds from the server: its catalogue (`GET /api/v1/schemas/catalogue`, every published
//! and retired version) and the definitions this phone lacks (`GET /api/v1/schemas/{kind}/
//! {version}`), kept in the store, and the registry the client reads: the built-in kinds, then
//! the stored ones, with retired versions marked.
//!
//! A sync refreshes the catalogue when a pull page names another digest than the stored one,
//! before applying that page, so reports of a new kind arrive with their form. One transaction
//! stores the definitions, the states, the digest and the refusals it lifts: reports the server
//! refused for a kind it did not know are offered again once its catalogue lists that kind.

use std::collections::BTreeSet;
use std::sync::Arc;

use gridsync_core::DocId;
use gridsync_core::replica::DocIndex;
use gridsync_core::schema::{Registry, Schema};
use serde::Deserialize;

use super::answers::{parse_json, unexpected};
use super::{Client, State};
use crate::error::{ClientError, Result};
use crate::model::KindSchema;
use crate::store::{Batch, SchemaState, StoredSchema};
use crate::transport::Traffic;

const CATALOGUE: &str = "/api/v1/schemas/catalogue";
/// The code of ingest's `Refusal::UnknownKind`: the server had no such kind or version.
const UNKNOWN_KIND: &str = "unknown_kind";

/// `GET /api/v1/schemas/catalogue`.
#[derive(Deserialize)]
struct Catalogue {
    /// A u64 in decimal: JSON numbers lose precision past 2^53 in many readers.
    digest: String,
    entries: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    kind: String,
    version: u32,
    state: String,
}

/// One version of one report kind.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct KindVersion {
    pub kind: String,
    pub version: u32,
}

/// What a catalogue refresh did.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Refreshed {
    /// Definitions fetched.
    pub fetched: u32,
    /// Refused reports offered again because the catalogue now lists their kind.
    pub retried: u32,
}

impl Client {
    /// Fetches the server's catalogue of report kinds and the forms this phone lacks, and
    /// returns the kinds new reports may use. A sync does the same when the catalogue changed.
    pub fn refresh_schemas(&self) -> Result<Vec<KindSchema>> {
        // Lifting refusals while a push is in flight would be undone by its answer.
        let _sync = self.sync_guard();
        self.refresh_catalogue(&mut Traffic::default())?;
        Ok(self.schemas())
    }

    /// The registry as it is now; a refresh swaps in another, so hold this one for a whole read.
    pub(super) fn registry(&self) -> Arc<Registry> {
        Arc::clone(
            &self
                .registry
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    pub(super) fn set_registry(&self, registry: Registry) {
        *self
            .registry
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(registry);
    }

    /// Brings the stored kinds up to the server's catalogue: fetches it and every definition
    /// this phone lacks, then stores them with every listed state and the digest, and lifts
    /// the `unknown_kind` refusals of reports whose kind it lists, in one transaction.
    pub(super) fn refresh_catalogue(&self, traffic: &mut Traffic) -> Result<Refreshed> {
        let answer = self.authorized(traffic, |token, t| {
            self.transport.get(CATALOGUE, Some(token), t)
        })?;
        if !answer.ok() {
            return Err(unexpected(&answer));
        }
        let catalogue: Catalogue = parse_json(&answer)?;
        let digest: u64 = catalogue.digest.parse().map_err(|_| {
            ClientError::Server(format!(
                "the catalogue's digest `{}` is not a number",
                catalogue.digest
            ))
        })?;
        let registry = self.registry();
        let stored = self.lock().store()?.schemas()?;
        let mut listed = BTreeSet::new();
        let mut rows = Vec::new();
        let mut fetched = 0;
        for entry in catalogue.entries {
            // A state this app does not know is not one it can act on; an id that is not a
            // kind id could never load, and must not be put into a URL.
            let Some(state) = SchemaState::parse(&entry.state) else {
                continue;
            };
            if !is_kind_id(&entry.kind) {
                continue;
            }
            let key = KindVersion {
                kind: entry.kind,
                version: entry.version,
            };
            let definition = if lacks(&registry, &stored, &key) {
                let json = self.fetch_definition(&key, traffic)?.ok_or_else(|| {
                    ClientError::Server(format!(
                        "the catalogue lists {} version {}, but the server has no definition of it",
                        key.kind, key.version
                    ))
                })?;
                fetched += 1;
                Some(json)
            } else {
                None
            };
            rows.push(StoredSchema {
                kind: key.kind.clone(),
                version: key.version,
                state,
                definition,
            });
            listed.insert(key);
        }
        let mut state = self.lock();
        let mut batch = Batch::default();
        rows.into_iter().for_each(|row| batch.put_schema(row));
        batch.set_catalogue(digest);
        let retried = unknown_kinds_listed(&mut state, &listed)?;
        for (id, index) in &retried {
            batch.put_index(*id, index.clone());
        }
        state.store()?.commit(batch)?;
        // Only once stored, so that memory never runs ahead of the store.
        for (id, _) in &retried {
            state.replica.retry_rejected(id);
        }
        self.reload_registry(&mut state)?;
        Ok(Refreshed {
            fetched,
            retried: retried.len() as u32,
        })
    }

    /// Fetches the definitions of pulled reports whose kind or version this phone lacks still
    /// (a server that sends no catalogue digest, or a version published during the pull).
    /// One the server has no definition of is left: its reports open without a form, as those
    /// of an unknown kind always have. Returns how many were fetched.
    pub(super) fn fetch_missing_kinds(
        &self,
        wanted: &BTreeSet<KindVersion>,
        traffic: &mut Traffic,
    ) -> Result<u32> {
        let registry = self.registry();
        let stored = self.lock().store()?.schemas()?;
        let mut batch = Batch::default();
        let mut fetched = 0;
        let lacking = wanted
            .iter()
            .filter(|k| is_kind_id(&k.kind) && lacks(&registry, &stored, k));
        for key in lacking {
            let Some(json) = self.fetch_definition(key, traffic)? else {
                continue;
            };
            // The server took reports of it, so it is published or retired; which one the next
            // catalogue says. Until then it is offered, as a published version is.
            batch.put_schema(StoredSchema {
                kind: key.kind.clone(),
                version: key.version,
                state: SchemaState::Published,
                definition: Some(json),
            });
            fetched += 1;
        }
        if fetched > 0 {
            let mut state = self.lock();
            state.store()?.commit(batch)?;
            self.reload_registry(&mut state)?;
        }
        Ok(fetched)
    }

    /// One definition as JSON text; `None` when the server has none (404).
    fn fetch_definition(&self, key: &KindVersion, traffic: &mut Traffic) -> Result<Option<String>> {
        let path = format!("/api/v1/schemas/{}/{}", key.kind, key.version);
        let answer = self.authorized(traffic, |token, t| {
            self.transport.get(&path, Some(token), t)
        })?;
        if answer.status == 404 {
            return Ok(None);
        }
        if !answer.ok() {
            return Err(unexpected(&answer));
        }
        String::from_utf8(answer.body).map(Some).map_err(|_| {
            ClientError::Server(format!(
                "the definition of {} version {} is not text",
                key.kind, key.version
            ))
        })
    }

    /// Rebuilds the registry from what the store holds now; called with the state locked, so
    /// that no other refresh stores in between.
    fn reload_registry(&self, state: &mut State) -> Result<()> {
        let stored = state.store()?.schemas()?;
        self.set_registry(registry_of(&stored));
        Ok(())
    }
}

/// The kinds the client reads: the built-in ones, then the stored definitions, then the
/// retired versions marked (built-in ones too). A stored definition this app cannot read (one
/// written for a newer app, say) is left out with its reason logged, never a failure: its
/// reports open without a form, and an app that can read it will.
pub(super) fn registry_of(stored: &[StoredSchema]) -> Registry {
    let mut registry = Registry::builtin();
    for row in stored {
        let Some(json) = &row.definition else {
            continue;
        };
        let added = Schema::from_json(json).and_then(|schema| {
            if schema.kind == row.kind && schema.version == row.version {
                registry.add_json(json).map(|()| None)
            } else {
                Ok(Some(format!(
                    "it defines {} version {}",
                    schema.kind, schema.version
                )))
            }
        });
        let skipped = match added {
            Ok(None) => continue,
            Ok(Some(mismatch)) => mismatch,
            Err(e) => e.to_string(),
        };
        tracing::warn!(
            kind = %row.kind,
            version = row.version,
            reason = %skipped,
            "a stored report kind definition is skipped"
        );
    }
    for row in stored.iter().filter(|r| r.state == SchemaState::Retired) {
        registry.retire(&row.kind, row.version);
    }
    registry
}

/// Whether neither the registry nor the store holds a definition of this version. One stored
/// but unreadable here is not fetched again: a published version never changes.
fn lacks(registry: &Registry, stored: &[StoredSchema], key: &KindVersion) -> bool {
    registry.get(&key.kind, key.version).is_none()
        && !stored
            .iter()
            .any(|s| s.kind == key.kind && s.version == key.version && s.definition.is_some())
}

/// What `Schema::from_json` accepts as a kind id: lowercase ASCII letters, digits and
/// underscores.
fn is_kind_id(kind: &str) -> bool {
    !kind.is_empty()
        && kind
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The reports refused as `unknown_kind` whose kind and version `listed` holds, with the
/// refusal lifted: the next push offers them again.
fn unknown_kinds_listed(
    state: &mut State,
    listed: &BTreeSet<KindVersion>,
) -> Result<Vec<(DocId, DocIndex)>> {
    let mut out = Vec::new();
    for id in state.replica.rejected_ids() {
        let Some(local) = state.replica.load(&id)? else {
            continue;
        };
        let unknown = local
            .rejected
            .as_ref()
            .is_some_and(|r| r.code == UNKNOWN_KIND);
        let listed = local.doc.meta().is_ok_and(|meta| {
            listed.contains(&KindVersion {
                kind: meta.kind,
                version: meta.schema_version,
            })
        });
        if unknown && listed {
            let mut index = local.index();
            index.rejected = None;
            out.push((id, index));
        }
    }
    state.replica.park(None);
    Ok(out)
}
