//! The schema registry: the versions of report kinds as stored, their rows, and their SQL.

use gridsync_core::schema::Schema;

use super::{Result, StoreError};

/// Where a version of a report kind stands.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum SchemaState {
    /// Being prepared: neither phones nor ingest see it, and it may be replaced or discarded.
    Draft,
    /// Reports are written against it; it never changes again.
    Published,
    /// No new reports; those written against it stay readable and editable.
    Retired,
}

impl SchemaState {
    pub fn as_str(self) -> &'static str {
        match self {
            SchemaState::Draft => "draft",
            SchemaState::Published => "published",
            SchemaState::Retired => "retired",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "draft" => SchemaState::Draft,
            "published" => SchemaState::Published,
            "retired" => SchemaState::Retired,
            other => return Err(StoreError::Corrupt(format!("a schema in state {other:?}"))),
        })
    }
}

/// One version of one report kind, as the registry keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSchema {
    pub kind: String,
    pub version: u32,
    pub state: SchemaState,
    /// The JSON definition, as `Schema::from_json` reads it.
    pub definition: String,
    /// `builtin`, `json` or `xlsx`.
    pub source: String,
    pub created_by: Option<String>,
    pub created_at: i64,
    pub published_by: Option<String>,
    pub published_at: Option<i64>,
    pub retired_by: Option<String>,
    pub retired_at: Option<i64>,
}

impl StoredSchema {
    /// The definition, checked again: a row that no longer loads is corrupt.
    pub fn schema(&self) -> Result<Schema> {
        Schema::from_json(&self.definition).map_err(|e| {
            StoreError::Corrupt(format!("schema {} v{}: {e}", self.kind, self.version))
        })
    }
}

/// A definition to keep as a draft of its kind and version.
#[derive(Debug, Clone, Copy)]
pub struct NewDraft<'a> {
    pub schema: &'a Schema,
    pub source: &'a str,
    /// The uploader; `None` from the command line.
    pub by: Option<&'a str>,
    pub at: i64,
}

/// A draft to publish, as judged against the catalogue at `seen_revision`.
#[derive(Debug, Clone, Copy)]
pub struct Publication<'a> {
    pub kind: &'a str,
    pub version: u32,
    pub by: Option<&'a str>,
    pub at: i64,
    /// The catalogue revision the version rules were checked against: a publish or retirement
    /// since then drew another, and this one fails with `Changed`, to be checked again.
    pub seen_revision: i64,
}

#[derive(sqlx::FromRow)]
pub(crate) struct SchemaRow {
    kind: String,
    version: i64,
    state: String,
    definition: String,
    source: String,
    created_by: Option<String>,
    created_at: i64,
    published_by: Option<String>,
    published_at: Option<i64>,
    retired_by: Option<String>,
    retired_at: Option<i64>,
}

pub(crate) const COLUMNS: &str = "kind, CAST(version AS BIGINT) AS version, state, definition, \
     source, created_by, created_at, published_by, published_at, retired_by, retired_at";

impl TryFrom<SchemaRow> for StoredSchema {
    type Error = StoreError;

    fn try_from(r: SchemaRow) -> Result<Self> {
        Ok(StoredSchema {
            version: u32::try_from(r.version)
                .map_err(|_| StoreError::Corrupt(format!("schema version {}", r.version)))?,
            state: SchemaState::parse(&r.state)?,
            kind: r.kind,
            definition: r.definition,
            source: r.source,
            created_by: r.created_by,
            created_at: r.created_at,
            published_by: r.published_by,
            published_at: r.published_at,
            retired_by: r.retired_by,
            retired_at: r.retired_at,
        })
    }
}

/// Keeps a draft, replacing a draft of the same version; a published or retired version is
/// left alone (no row changes).
pub(crate) const SAVE_DRAFT: &str = "INSERT INTO schemas \
     (kind, version, state, definition, source, created_by, created_at) \
     VALUES ($1, $2, 'draft', $3, $4, $5, $6) \
     ON CONFLICT (kind, version) DO UPDATE SET definition = excluded.definition, \
     source = excluded.source, created_by = excluded.created_by, \
     created_at = excluded.created_at WHERE schemas.state = 'draft'";

/// A built-in kind, published from the start.
pub(crate) const SEED: &str = "INSERT INTO schemas \
     (kind, version, state, definition, source, created_at, published_at) \
     VALUES ($1, $2, 'published', $3, 'builtin', $4, $4) ON CONFLICT (kind, version) DO NOTHING";

pub(crate) const INDEX_FIELD: &str = "INSERT INTO schema_index_fields (kind, version, field, idx) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (kind, version, field) DO NOTHING";

pub(crate) const PUBLISH: &str = "UPDATE schemas SET state = 'published', published_by = $3, \
     published_at = $4 WHERE kind = $1 AND version = $2 AND state = 'draft'";

pub(crate) const RETIRE: &str = "UPDATE schemas SET state = 'retired', retired_by = $3, \
     retired_at = $4 WHERE kind = $1 AND version = $2 AND state = 'published'";

pub(crate) const DISCARD: &str =
    "DELETE FROM schemas WHERE kind = $1 AND version = $2 AND state = 'draft'";

pub(crate) const REVISION: &str = "SELECT value FROM counters WHERE name = 'catalogue'";

/// Draws the revision anew. A random number rather than a count, so that two databases (a
/// restored copy, or two test databases in one process) never pass for the same catalogue.
pub(crate) const BUMP: &str = "UPDATE counters SET value = $1 WHERE name = 'catalogue'";

/// A new catalogue revision, positive and unlike the last with overwhelming odds.
pub(crate) fn new_revision() -> i64 {
    i64::from_be_bytes(rand::random::<[u8; 8]>()) & i64::MAX
}

/// The questions of `schema` that feed an index, as (field, index).
pub(crate) fn index_fields(schema: &Schema) -> impl Iterator<Item = (&str, &str)> {
    schema
        .fields
        .iter()
        .filter_map(|f| Some((f.id.as_str(), f.index.as_deref()?)))
}
