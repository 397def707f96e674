//! The statistics and ledger queries over `report_facts` (migration 0008), written once for both
//! databases: the row types they answer with and their SQL, with placeholders written with the
//! store's mark. Every query is filtered by a scope in SQL (placeholders 1–4) and counts per org
//! path (a grid), which the caller rolls up into larger units: the counts are additive.

use super::{Bind, path_under, scope_filter};

/// The reports of one kind under an org path whose period lies within `from..=to`
/// (`YYYY-MM-DD`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    pub org_path: String,
    pub from: String,
    pub to: String,
}

/// Counts of satisfaction canvass interviews at one org path.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct CanvassCounts {
    pub org_path: String,
    pub interviews: i64,
    /// Interviews that answered at least one satisfaction question 1–5.
    pub satisfaction_answered: i64,
    /// Of those, interviews whose mean satisfaction answer is at least [`SATISFIED_MEAN`].
    pub satisfied: i64,
    pub safety_answered: i64,
    pub safe: i64,
}

/// The mean answer (on 1–5) from which an interview counts as satisfied, or as feeling safe.
pub const SATISFIED_MEAN: i64 = 4;

/// Dispute checks at one org path with one status, risk and category.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DisputeCounts {
    pub org_path: String,
    pub status: Option<String>,
    pub risk: Option<String>,
    pub category: Option<String>,
    pub count: i64,
    /// Of those, open cases whose next follow-up is before today.
    pub overdue: i64,
}

/// How many resolved disputes at one org path took `days` from found to resolved.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ResolutionDays {
    pub org_path: String,
    pub days: i64,
    pub count: i64,
}

/// The dates that decide which drug-control cases are behind, all `YYYY-MM-DD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrugDue {
    pub org_path: String,
    pub today: String,
    /// A case last visited before this day (or, never visited, started before it) is overdue.
    pub visited_since: String,
    /// A case last tested before this day, or never, is due a test.
    pub tested_since: String,
}

/// Drug-control cases at one org path.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct DrugCounts {
    pub org_path: String,
    pub active: i64,
    pub relapsed: i64,
    pub visits_overdue: i64,
    pub tests_due: i64,
}

/// One page of a ledger: reports of `kind` under `org_path` whose period overlaps `from..=to`
/// (either end open when `None`; a report without a date then falls in no bounded period),
/// by id, after `after`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerQuery {
    pub kind: String,
    pub org_path: String,
    pub from: Option<String>,
    pub to: Option<String>,
    pub after: Option<String>,
    pub limit: i64,
}

/// A dispute that is not closed (resolved, referred or escalated) is open; so is one whose
/// status is not set yet.
pub const CLOSED_DISPUTE: [&str; 3] = ["resolved", "referred", "escalated"];

const OPEN_DISPUTE_SQL: &str =
    "COALESCE(f.status, '') NOT IN ('resolved', 'referred', 'escalated')";

/// The conditions every period query shares: scope (1–4), kind, org path (5), period (6, 7).
fn in_period(mark: char, kind: &str) -> String {
    format!(
        "{scope} AND f.kind = '{kind}' AND {under} AND f.day >= {mark}6 AND f.day <= {mark}7",
        scope = scope_filter("f", mark, 1),
        under = path_under("f.org_path", mark, 5),
    )
}

fn period_binds(p: &Period) -> Vec<Bind> {
    vec![
        Bind::Text(p.org_path.clone()),
        Bind::Text(p.from.clone()),
        Bind::Text(p.to.clone()),
    ]
}

/// Canvass counts per org path; placeholder 8 is [`SATISFIED_MEAN`].
pub(crate) fn canvass(mark: char, p: &Period) -> (String, Vec<Bind>) {
    let sql = format!(
        "SELECT f.org_path, COUNT(*) AS interviews, \
         CAST(SUM(CASE WHEN f.sat_n > 0 THEN 1 ELSE 0 END) AS BIGINT) AS satisfaction_answered, \
         CAST(SUM(CASE WHEN f.sat_n > 0 AND f.sat_sum >= {mark}8 * f.sat_n THEN 1 ELSE 0 END) \
              AS BIGINT) AS satisfied, \
         CAST(SUM(CASE WHEN f.safe_n > 0 THEN 1 ELSE 0 END) AS BIGINT) AS safety_answered, \
         CAST(SUM(CASE WHEN f.safe_n > 0 AND f.safe_sum >= {mark}8 * f.safe_n THEN 1 ELSE 0 END) \
              AS BIGINT) AS safe \
         FROM report_facts f WHERE {cond} GROUP BY f.org_path",
        cond = in_period(mark, "satisfaction_canvass"),
    );
    let mut binds = period_binds(p);
    binds.push(Bind::Int(SATISFIED_MEAN));
    (sql, binds)
}

/// How many canvass interviews raised each worry.
pub(crate) fn worries(mark: char, p: &Period) -> (String, Vec<Bind>) {
    let sql = format!(
        "SELECT w.worry, COUNT(*) FROM report_worries w \
         JOIN report_facts f ON f.doc_id = w.doc_id WHERE {cond} GROUP BY w.worry",
        cond = in_period(mark, "satisfaction_canvass"),
    );
    (sql, period_binds(p))
}

/// Dispute counts per org path, status, risk and category; placeholder 8 is today.
pub(crate) fn disputes(mark: char, p: &Period, today: &str) -> (String, Vec<Bind>) {
    let sql = format!(
        "SELECT f.org_path, f.status, f.risk, f.category, COUNT(*) AS count, \
         CAST(SUM(CASE WHEN {OPEN_DISPUTE_SQL} AND f.next_follow_up < {mark}8 THEN 1 ELSE 0 END) \
              AS BIGINT) AS overdue \
         FROM report_facts f WHERE {cond} \
         GROUP BY f.org_path, f.status, f.risk, f.category",
        cond = in_period(mark, "dispute_check"),
    );
    let mut binds = period_binds(p);
    binds.push(Bind::Text(today.to_owned()));
    (sql, binds)
}

/// Resolved disputes per org path and days from found to resolved.
pub(crate) fn resolution_days(mark: char, p: &Period) -> (String, Vec<Bind>) {
    let sql = format!(
        "SELECT f.org_path, CAST(f.days_to_resolution AS BIGINT) AS days, COUNT(*) AS count \
         FROM report_facts f WHERE {cond} AND f.status = 'resolved' \
         AND f.days_to_resolution >= 0 \
         GROUP BY f.org_path, f.days_to_resolution",
        cond = in_period(mark, "dispute_check"),
    );
    (sql, period_binds(p))
}

/// Drug-control case counts per org path as of `due.today`.
pub(crate) fn drug(mark: char, due: &DrugDue) -> (String, Vec<Bind>) {
    let sql = format!(
        "SELECT f.org_path, \
         CAST(SUM(CASE WHEN f.status = 'active' THEN 1 ELSE 0 END) AS BIGINT) AS active, \
         CAST(SUM(CASE WHEN f.status = 'relapsed' THEN 1 ELSE 0 END) AS BIGINT) AS relapsed, \
         CAST(SUM(CASE WHEN f.status = 'active' AND (f.next_visit_due < {mark}6 \
              OR COALESCE(f.last_visit_on, f.day, '') < {mark}7) THEN 1 ELSE 0 END) AS BIGINT) \
              AS visits_overdue, \
         CAST(SUM(CASE WHEN f.status = 'active' AND COALESCE(f.last_test_on, '') < {mark}8 \
              THEN 1 ELSE 0 END) AS BIGINT) AS tests_due \
         FROM report_facts f WHERE {scope} AND f.kind = 'drug_control_case' AND {under} \
         GROUP BY f.org_path",
        scope = scope_filter("f", mark, 1),
        under = path_under("f.org_path", mark, 5),
    );
    let binds = vec![
        Bind::Text(due.org_path.clone()),
        Bind::Text(due.today.clone()),
        Bind::Text(due.visited_since.clone()),
        Bind::Text(due.tested_since.clone()),
    ];
    (sql, binds)
}

/// A page of a ledger: the reports' rows (as [`super::DOC_COLUMNS`] selects them), by id.
pub(crate) fn ledger(mark: char, q: &LedgerQuery) -> (String, Vec<Bind>) {
    let p = |i: usize| format!("{mark}{i}");
    let sql = format!(
        "SELECT {columns} FROM documents WHERE id IN (\
             SELECT f.doc_id FROM report_facts f WHERE {scope} AND f.kind = {kind} AND {under} \
             AND ({from} IS NULL OR COALESCE(f.day_end, '9999-12-31') >= {from}) \
             AND ({to} IS NULL OR f.day <= {to}) \
             AND ({after} IS NULL OR f.doc_id > {after})) \
         ORDER BY id LIMIT {limit}",
        columns = super::DOC_COLUMNS,
        scope = scope_filter("f", mark, 1),
        kind = p(5),
        under = path_under("f.org_path", mark, 6),
        from = p(7),
        to = p(8),
        after = p(9),
        limit = p(10),
    );
    let binds = vec![
        Bind::Text(q.kind.clone()),
        Bind::Text(q.org_path.clone()),
        Bind::MaybeText(q.from.clone()),
        Bind::MaybeText(q.to.clone()),
        Bind::MaybeText(q.after.clone()),
        Bind::Int(q.limit),
    ];
    (sql, binds)
}
