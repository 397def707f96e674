//! The report kinds this server accepts, as the schema registry holds them: loaded once, and
//! loaded again whenever the registry's revision has moved, so a publication by the command
//! line, the API or another node is in force at the next push or pull. And the changes to the
//! registry (draft, publish, retire, discard), judged by the version rules and audited, which
//! the command line and the API share.

use std::sync::{Arc, RwLock};

use gridsync_core::schema::{Registry, Schema};
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use utoipa::ToSchema;

use crate::clock;
use crate::forms::{self, FormError};
use crate::store::{
    AuditEntry, NewDraft, Publication, Result, SchemaState, Store, StoreError, StoredSchema,
};

/// The catalogue as one load saw it.
#[derive(Debug)]
pub struct Loaded {
    /// The registry revision this load read; -1 before the first load from a store (revisions
    /// are never negative).
    pub revision: i64,
    /// Published and retired versions (retired ones marked), which ingest and readers use.
    pub registry: Arc<Registry>,
    /// The published and retired versions, by kind and version.
    pub entries: Vec<Entry>,
    /// A digest of `entries` and their definitions, which a pull hands phones so they can tell
    /// that their forms are out of date. Never 0, which phones read as "no catalogue".
    pub digest: u64,
}

/// One version phones may use (published) or read (retired).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Entry {
    pub kind: String,
    pub version: u32,
    pub state: SchemaState,
}

/// The server's current catalogue; cheap to share.
#[derive(Debug)]
pub struct Catalogue {
    loaded: RwLock<Arc<Loaded>>,
}

impl Catalogue {
    /// The built-in kinds, until the first [`Catalogue::fresh`] reads the store.
    pub fn builtin() -> Catalogue {
        let registry = Registry::builtin();
        let entries: Vec<Entry> = registry
            .all()
            .map(|s| Entry {
                kind: s.kind.clone(),
                version: s.version,
                state: SchemaState::Published,
            })
            .collect();
        let digest = digest(registry.all().map(|s| (s, SchemaState::Published)));
        Catalogue {
            loaded: RwLock::new(Arc::new(Loaded {
                revision: -1,
                registry: Arc::new(registry),
                entries,
                digest,
            })),
        }
    }

    /// The catalogue as last loaded.
    pub fn current(&self) -> Arc<Loaded> {
        self.loaded
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The catalogue as the store holds it now: one read of the revision, and a load of the
    /// registry only when it moved.
    pub async fn fresh(&self, store: &dyn Store) -> Result<Arc<Loaded>> {
        let revision = store.catalogue_revision().await?;
        let current = self.current();
        if current.revision == revision {
            return Ok(current);
        }
        let loaded = Arc::new(load(&store.schemas().await?, revision));
        // Of two loads racing, the slower may leave the older catalogue here; the next call
        // sees its revision differ and loads again.
        *self
            .loaded
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = loaded.clone();
        Ok(loaded)
    }
}

/// The published and retired versions of `rows` as a catalogue. A stored definition that no
/// longer loads is left out and logged: the other kinds stay in service.
fn load(rows: &[StoredSchema], revision: i64) -> Loaded {
    let mut registry = Registry::new();
    let mut kept: Vec<(Schema, SchemaState)> = Vec::new();
    for row in rows.iter().filter(|r| r.state != SchemaState::Draft) {
        let added = row.schema().and_then(|schema| {
            registry
                .add(schema.clone())
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            Ok(schema)
        });
        match added {
            Ok(schema) => {
                if row.state == SchemaState::Retired {
                    registry.retire(&row.kind, row.version);
                }
                kept.push((schema, row.state));
            }
            Err(e) => tracing::error!(kind = %row.kind, version = row.version, error = %e,
                "a stored report kind does not load; it is out of service"),
        }
    }
    Loaded {
        revision,
        entries: kept
            .iter()
            .map(|(s, state)| Entry {
                kind: s.kind.clone(),
                version: s.version,
                state: *state,
            })
            .collect(),
        digest: digest(kept.iter().map(|(s, state)| (s, *state))),
        registry: Arc::new(registry),
    }
}

/// The first 8 bytes of sha256 over each version's kind, number, state and definition.
fn digest<'a>(versions: impl Iterator<Item = (&'a Schema, SchemaState)>) -> u64 {
    let mut hasher = Sha256::new();
    for (schema, state) in versions {
        let definition = serde_json::to_vec(schema).unwrap_or_default();
        hasher.update(schema.kind.as_bytes());
        hasher.update([0]);
        hasher.update(schema.version.to_be_bytes());
        hasher.update(state.as_str().as_bytes());
        hasher.update([0]);
        hasher.update(Sha256::digest(&definition));
    }
    let hash = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash[..8]);
    u64::from_be_bytes(first).max(1)
}

/// Why a change to the registry was refused. Nothing was stored.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The version rules refuse it ([`forms::FormError::Breaking`]).
    #[error(transparent)]
    Form(#[from] FormError),
    #[error("there is no {kind} version {version} in the registry")]
    Unknown { kind: String, version: u32 },
    /// The version is not in the state the change starts from.
    #[error("{kind} version {version} is {state}, not {wanted}")]
    WrongState {
        kind: String,
        version: u32,
        state: &'static str,
        wanted: &'static str,
    },
}

/// Who changes the registry, for the rows and the audit log.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    /// `None` from the command line, which has no account.
    pub user: Option<&'a str>,
    pub device: Option<&'a str>,
    /// `api` or `command line`.
    pub via: &'static str,
}

impl Actor<'_> {
    fn audit(
        &self,
        action: &str,
        kind: &str,
        version: u32,
        extra: serde_json::Value,
    ) -> AuditEntry {
        let mut detail = serde_json::json!({ "kind": kind, "version": version, "via": self.via });
        if let (Some(detail), serde_json::Value::Object(extra)) = (detail.as_object_mut(), extra) {
            detail.extend(extra);
        }
        AuditEntry {
            at: clock::now(),
            user_id: self.user.map(str::to_owned),
            device_id: self.device.map(str::to_owned),
            action: action.to_owned(),
            doc_id: None,
            detail,
        }
    }
}

/// How often a publication is judged again when another one committed in between.
const ATTEMPTS: usize = 3;

/// The published and retired versions of `kind`, for the version rules.
async fn in_force(store: &dyn Store, kind: &str) -> Result<(Registry, i64), RegistryError> {
    let revision = store.catalogue_revision().await?;
    let mut registry = Registry::new();
    for row in store.schemas().await? {
        if row.kind == kind && row.state != SchemaState::Draft {
            registry
                .add(row.schema()?)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        }
    }
    Ok((registry, revision))
}

/// Keeps `schema` as a draft, after checking it against the versions of its kind in force, so
/// an office learns of a breaking change when it uploads rather than when it publishes.
pub async fn save_draft(
    store: &dyn Store,
    schema: &Schema,
    source: &str,
    actor: Actor<'_>,
) -> Result<(), RegistryError> {
    let (registry, _) = in_force(store, &schema.kind).await?;
    if registry.get(&schema.kind, schema.version).is_some() {
        return Err(StoreError::Duplicate(format!(
            "{} version {} (published or retired, so it cannot change)",
            schema.kind, schema.version
        ))
        .into());
    }
    forms::check_versions(schema, &registry)?;
    let audit = actor.audit(
        "schema_draft",
        &schema.kind,
        schema.version,
        serde_json::json!({ "source": source }),
    );
    let draft = NewDraft {
        schema,
        source,
        by: actor.user,
        at: audit.at,
    };
    store.save_draft(&draft, &audit).await?;
    Ok(())
}

/// Publishes a draft once the version rules pass against every version of its kind in force.
pub async fn publish(
    store: &dyn Store,
    kind: &str,
    version: u32,
    actor: Actor<'_>,
) -> Result<(), RegistryError> {
    for attempt in 1..=ATTEMPTS {
        let row =
            store
                .stored_schema(kind, version)
                .await?
                .ok_or_else(|| RegistryError::Unknown {
                    kind: kind.to_owned(),
                    version,
                })?;
        if row.state != SchemaState::Draft {
            return Err(wrong_state(&row, "a draft"));
        }
        let (registry, revision) = in_force(store, kind).await?;
        forms::check_versions(&row.schema()?, &registry)?;
        let audit = actor.audit("schema_publish", kind, version, serde_json::json!({}));
        let publication = Publication {
            kind,
            version,
            by: actor.user,
            at: audit.at,
            seen_revision: revision,
        };
        match store.publish_schema(&publication, &audit).await {
            Ok(true) => return Ok(()),
            // Discarded or published by someone else meanwhile: say how it stands now.
            Ok(false) => continue,
            Err(StoreError::Changed(_)) if attempt < ATTEMPTS => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Changed("the schema catalogue".into()).into())
}

/// Retires a published version: phones stop offering it for new reports.
pub async fn retire(
    store: &dyn Store,
    kind: &str,
    version: u32,
    actor: Actor<'_>,
) -> Result<(), RegistryError> {
    let audit = actor.audit("schema_retire", kind, version, serde_json::json!({}));
    if store.retire_schema(kind, version, &audit).await? {
        return Ok(());
    }
    Err(match store.stored_schema(kind, version).await? {
        Some(row) => wrong_state(&row, "published"),
        None => RegistryError::Unknown {
            kind: kind.to_owned(),
            version,
        },
    })
}

/// Deletes a draft nobody published.
pub async fn discard(
    store: &dyn Store,
    kind: &str,
    version: u32,
    actor: Actor<'_>,
) -> Result<(), RegistryError> {
    let audit = actor.audit("schema_discard", kind, version, serde_json::json!({}));
    if store.discard_draft(kind, version, &audit).await? {
        return Ok(());
    }
    Err(match store.stored_schema(kind, version).await? {
        Some(row) => wrong_state(&row, "a draft"),
        None => RegistryError::Unknown {
            kind: kind.to_owned(),
            version,
        },
    })
}

fn wrong_state(row: &StoredSchema, wanted: &'static str) -> RegistryError {
    RegistryError::WrongState {
        kind: row.kind.clone(),
        version: row.version,
        state: row.state.as_str(),
        wanted,
    }
}
