//! Published bulletins and the rank rules, as stored: their rows and their SQL.

use super::{Result, StoreError};

/// One published revision of a bulletin.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredBulletin {
    pub org_id: String,
    /// `2026-11`, `2026-Q4` or `2026`.
    pub period: String,
    pub revision: u32,
    /// The whole bulletin as JSON, as it was published.
    pub figures: String,
    /// Why it was re-issued; `None` for the first revision.
    pub reason: Option<String>,
    pub published_by: String,
    pub published_at: i64,
}

/// A bulletin to publish: the first revision when `reason` is `None`, else a re-issue.
#[derive(Debug, Clone, Copy)]
pub struct NewBulletin<'a> {
    pub org_id: &'a str,
    pub period: &'a str,
    pub figures: &'a str,
    pub reason: Option<&'a str>,
    pub by: &'a str,
    pub at: i64,
}

#[derive(sqlx::FromRow)]
pub(crate) struct BulletinRow {
    org_id: String,
    period: String,
    revision: i64,
    figures: String,
    reason: Option<String>,
    published_by: String,
    published_at: i64,
}

/// The columns of a [`BulletinRow`], from `bulletins b`.
pub(crate) const COLUMNS: &str = "b.org_id, b.period, CAST(b.revision AS BIGINT) AS revision, \
     b.figures, b.reason, b.published_by, b.published_at";

impl TryFrom<BulletinRow> for StoredBulletin {
    type Error = StoreError;

    fn try_from(r: BulletinRow) -> Result<Self> {
        Ok(StoredBulletin {
            revision: u32::try_from(r.revision)
                .map_err(|_| StoreError::Corrupt(format!("bulletin revision {}", r.revision)))?,
            org_id: r.org_id,
            period: r.period,
            figures: r.figures,
            reason: r.reason,
            published_by: r.published_by,
            published_at: r.published_at,
        })
    }
}

/// The last revision of one bulletin; 0 when it was never published.
pub(crate) const LAST_REVISION: &str = "SELECT CAST(COALESCE(MAX(revision), 0) AS BIGINT) \
     FROM bulletins WHERE org_id = $1 AND period = $2";

pub(crate) const INSERT: &str = "INSERT INTO bulletins \
     (org_id, period, revision, figures, reason, published_by, published_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7)";

pub(crate) const RULES: &str = "SELECT rules FROM bulletin_rules WHERE id = 1";

pub(crate) const SET_RULES: &str = "INSERT INTO bulletin_rules (id, rules, updated_by, updated_at) \
     VALUES (1, $1, $2, $3) ON CONFLICT (id) DO UPDATE SET rules = excluded.rules, \
     updated_by = excluded.updated_by, updated_at = excluded.updated_at";
