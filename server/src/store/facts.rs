//! The statistics and ledger queries over `report_facts` (migration 0008), written once for both
//! databases: the row types they answer with and their statements. Every query is filtered by a
//! scope in SQL (placeholders 1–4) and counts per org path (a grid), which the caller rolls up
//! into larger units: the counts are additive.

use super::db::{Dialect, Sql, sql};
use super::filters::{path_under, scope_filter};
use super::rows::DOC_COLUMNS;
use crate::scope::Scope;

/// The reports of one kind under an org path whose period lies within `from..=to`
/// (`YYYY-MM-DD`): the day the kind names (interviewed, found, programme start) or, for a kind
/// published at runtime, the day the server first stored the report (migration 0013).
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

/// Reports of one kind at one org path with one status: `None` when the kind has no status
/// field or the report has not set it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct KindCounts {
    pub org_path: String,
    pub status: Option<String>,
    pub count: i64,
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
/// `kind` is SQL: the built-in kinds' figures name theirs as a literal, since their partial
/// indexes (`report_facts_canvass`, `report_facts_disputes`) serve only a statement that names
/// the kind itself; any other kind is a placeholder.
fn in_period(d: Dialect, kind: &str) -> String {
    format!(
        "{scope} AND f.kind = {kind} AND {under} AND f.day >= $6 AND f.day <= $7",
        scope = scope_filter(d, "f", 1),
        under = path_under(d, "f.org_path", 5),
    )
}

/// `text`, a statement over [`in_period`], with the scope and the period bound.
fn over_period(text: String, scope: &Scope, p: &Period) -> Sql<'static> {
    sql(text)
        .bind_scope(scope)
        .bind(p.org_path.clone())
        .bind(p.from.clone())
        .bind(p.to.clone())
}

/// How a canvass period is read: its whole months from the roll-ups of migration 0014 (one
/// row per grid and month), the days before the first whole month and after the last from
/// `report_facts`. A year is twelve roll-up rows per grid instead of every interview.
struct MonthSplit {
    /// Facts are read for the period's days before this one...
    head_end: String,
    /// ...and for its days from this one.
    tail_start: String,
    /// Roll-ups are read for the months `first_month..=last_month` (`YYYY-MM`), none when
    /// `first_month` is the later.
    first_month: String,
    last_month: String,
}

impl MonthSplit {
    fn of(p: &Period) -> MonthSplit {
        let after_to = next_day(&p.to);
        let first = if p.from.ends_with("-01") {
            month_of(&p.from).to_owned()
        } else {
            month_after(month_of(&p.from))
        };
        let last = if after_to.as_deref().is_some_and(|d| d.ends_with("-01")) {
            month_of(&p.to).to_owned()
        } else {
            month_before(month_of(&p.to))
        };
        match after_to {
            Some(_) if first <= last => MonthSplit {
                head_end: format!("{first}-01"),
                tail_start: format!("{}-01", month_after(&last)),
                first_month: first,
                last_month: last,
            },
            // No whole month (or an end that is not a date, which the statistics never ask
            // for): every day from the facts.
            _ => MonthSplit {
                head_end: "9999-12-31".to_owned(),
                tail_start: "9999-12-31".to_owned(),
                first_month: "9999-12".to_owned(),
                last_month: "0000-01".to_owned(),
            },
        }
    }

    /// Binds the split's four values, in the order of its fields.
    fn bind(self, q: Sql<'static>) -> Sql<'static> {
        q.bind(self.head_end)
            .bind(self.tail_start)
            .bind(self.first_month)
            .bind(self.last_month)
    }
}

/// `YYYY-MM` of a `YYYY-MM-DD` day.
fn month_of(day: &str) -> &str {
    day.get(..7).unwrap_or(day)
}

/// The day after `day` (`YYYY-MM-DD`); `None` when `day` is not a date.
fn next_day(day: &str) -> Option<String> {
    let secs = gridsync_core::time::parse_rfc3339(&format!("{day}T00:00:00Z"))?;
    Some(gridsync_core::time::rfc3339(secs + 86_400)[..10].to_owned())
}

/// The month after `month` (`YYYY-MM`).
fn month_after(month: &str) -> String {
    shift_month(month, 1)
}

/// The month before `month` (`YYYY-MM`).
fn month_before(month: &str) -> String {
    shift_month(month, -1)
}

fn shift_month(month: &str, by: i64) -> String {
    let (Some(y), Some(m)) = (
        month.get(..4).and_then(|y| y.parse::<i64>().ok()),
        month.get(5..7).and_then(|m| m.parse::<i64>().ok()),
    ) else {
        return month.to_owned();
    };
    let n = y * 12 + (m - 1) + by;
    format!("{:04}-{:02}", n.div_euclid(12), n.rem_euclid(12) + 1)
}

/// The condition on roll-up rows `m` of the months bound to placeholders `first` and
/// `first + 1`, under the org path bound to 5 and in the scope (1–4): only ordinary interviews
/// are rolled up, so the scope must see ordinary kinds, and its prefix is 1.
fn in_months(d: Dialect, first: usize) -> String {
    format!(
        "$2 AND {in_scope} AND {under} AND m.month >= ${first} AND m.month <= ${second}",
        in_scope = path_under(d, "m.org_path", 1),
        under = path_under(d, "m.org_path", 5),
        second = first + 1,
    )
}

/// Canvass counts per org path; placeholder 8 is [`SATISFIED_MEAN`] (which the roll-ups of
/// migration 0014 hold as 4), 9–12 the [`MonthSplit`].
pub(crate) fn canvass(d: Dialect, scope: &Scope, p: &Period) -> Sql<'static> {
    const PER_INTERVIEW: &str = "f.org_path, 1 AS interviews, \
         CASE WHEN f.sat_n > 0 THEN 1 ELSE 0 END AS satisfaction_answered, \
         CASE WHEN f.sat_n > 0 AND f.sat_sum >= $8 * f.sat_n THEN 1 ELSE 0 END AS satisfied, \
         CASE WHEN f.safe_n > 0 THEN 1 ELSE 0 END AS safety_answered, \
         CASE WHEN f.safe_n > 0 AND f.safe_sum >= $8 * f.safe_n THEN 1 ELSE 0 END AS safe";
    let text = format!(
        "SELECT org_path, CAST(SUM(interviews) AS BIGINT) AS interviews, \
         CAST(SUM(satisfaction_answered) AS BIGINT) AS satisfaction_answered, \
         CAST(SUM(satisfied) AS BIGINT) AS satisfied, \
         CAST(SUM(safety_answered) AS BIGINT) AS safety_answered, \
         CAST(SUM(safe) AS BIGINT) AS safe FROM (\
             SELECT {PER_INTERVIEW} FROM report_facts f WHERE {cond} AND f.day < $9 \
             UNION ALL SELECT {PER_INTERVIEW} FROM report_facts f WHERE {cond} AND f.day >= $10 \
             UNION ALL SELECT m.org_path, m.interviews, m.satisfaction_answered, m.satisfied, \
                 m.safety_answered, m.safe FROM canvass_months m WHERE {months}\
         ) x GROUP BY org_path HAVING SUM(interviews) > 0",
        cond = in_period(d, "'satisfaction_canvass'"),
        months = in_months(d, 11),
    );
    MonthSplit::of(p).bind(over_period(text, scope, p).bind(SATISFIED_MEAN))
}

/// How many canvass interviews raised each worry; placeholders 8–11 are the [`MonthSplit`].
pub(crate) fn worries(d: Dialect, scope: &Scope, p: &Period) -> Sql<'static> {
    const PER_WORRY: &str =
        "w.worry, 1 AS raised FROM report_worries w JOIN report_facts f ON f.doc_id = w.doc_id";
    let text = format!(
        "SELECT worry, CAST(SUM(raised) AS BIGINT) AS raised FROM (\
             SELECT {PER_WORRY} WHERE {cond} AND f.day < $8 \
             UNION ALL SELECT {PER_WORRY} WHERE {cond} AND f.day >= $9 \
             UNION ALL SELECT m.worry, m.raised FROM canvass_worry_months m WHERE {months}\
         ) x GROUP BY worry HAVING SUM(raised) > 0",
        cond = in_period(d, "'satisfaction_canvass'"),
        months = in_months(d, 10),
    );
    MonthSplit::of(p).bind(over_period(text, scope, p))
}

/// Dispute counts per org path, status, risk and category; placeholder 8 is today.
pub(crate) fn disputes(d: Dialect, scope: &Scope, p: &Period, today: &str) -> Sql<'static> {
    let text = format!(
        "SELECT f.org_path, f.status, f.risk, f.category, COUNT(*) AS count, \
         CAST(SUM(CASE WHEN {OPEN_DISPUTE_SQL} AND f.next_follow_up < $8 THEN 1 ELSE 0 END) \
              AS BIGINT) AS overdue \
         FROM report_facts f WHERE {cond} \
         GROUP BY f.org_path, f.status, f.risk, f.category",
        cond = in_period(d, "'dispute_check'"),
    );
    over_period(text, scope, p).bind(today.to_owned())
}

/// Reports of any kind per org path and status; placeholder 8 is the kind.
pub(crate) fn kind(d: Dialect, scope: &Scope, kind: &str, p: &Period) -> Sql<'static> {
    let text = format!(
        "SELECT f.org_path, f.status, COUNT(*) AS count FROM report_facts f WHERE {cond} \
         GROUP BY f.org_path, f.status",
        cond = in_period(d, "$8"),
    );
    over_period(text, scope, p).bind(kind.to_owned())
}

/// Resolved disputes per org path and days from found to resolved.
pub(crate) fn resolution_days(d: Dialect, scope: &Scope, p: &Period) -> Sql<'static> {
    let text = format!(
        "SELECT f.org_path, CAST(f.days_to_resolution AS BIGINT) AS days, COUNT(*) AS count \
         FROM report_facts f WHERE {cond} AND f.status = 'resolved' \
         AND f.days_to_resolution >= 0 \
         GROUP BY f.org_path, f.days_to_resolution",
        cond = in_period(d, "'dispute_check'"),
    );
    over_period(text, scope, p)
}

/// Drug-control case counts per org path as of `due.today`.
pub(crate) fn drug(d: Dialect, scope: &Scope, due: &DrugDue) -> Sql<'static> {
    let text = format!(
        "SELECT f.org_path, \
         CAST(SUM(CASE WHEN f.status = 'active' THEN 1 ELSE 0 END) AS BIGINT) AS active, \
         CAST(SUM(CASE WHEN f.status = 'relapsed' THEN 1 ELSE 0 END) AS BIGINT) AS relapsed, \
         CAST(SUM(CASE WHEN f.status = 'active' AND (f.next_visit_due < $6 \
              OR COALESCE(f.last_visit_on, f.day, '') < $7) THEN 1 ELSE 0 END) AS BIGINT) \
              AS visits_overdue, \
         CAST(SUM(CASE WHEN f.status = 'active' AND COALESCE(f.last_test_on, '') < $8 \
              THEN 1 ELSE 0 END) AS BIGINT) AS tests_due \
         FROM report_facts f WHERE {scope} AND f.kind = 'drug_control_case' AND {under} \
         GROUP BY f.org_path",
        scope = scope_filter(d, "f", 1),
        under = path_under(d, "f.org_path", 5),
    );
    sql(text)
        .bind_scope(scope)
        .bind(due.org_path.clone())
        .bind(due.today.clone())
        .bind(due.visited_since.clone())
        .bind(due.tested_since.clone())
}

/// A page of a ledger: the reports' rows (as [`super::DOC_COLUMNS`] selects them), by id.
pub(crate) fn ledger(d: Dialect, scope: &Scope, q: &LedgerQuery) -> Sql<'static> {
    let text = format!(
        "SELECT {DOC_COLUMNS} FROM documents WHERE id IN (\
             SELECT f.doc_id FROM report_facts f WHERE {scope} AND f.kind = $5 AND {under} \
             AND ($7 IS NULL OR COALESCE(f.day_end, '9999-12-31') >= $7) \
             AND ($8 IS NULL OR f.day <= $8) \
             AND ($9 IS NULL OR f.doc_id > $9)) \
         ORDER BY id LIMIT $10",
        scope = scope_filter(d, "f", 1),
        under = path_under(d, "f.org_path", 6),
    );
    sql(text)
        .bind_scope(scope)
        .bind(q.kind.clone())
        .bind(q.org_path.clone())
        .bind(q.from.clone())
        .bind(q.to.clone())
        .bind(q.after.clone())
        .bind(q.limit)
}

#[cfg(test)]
mod tests {
    use super::{MonthSplit, Period};

    fn split(from: &str, to: &str) -> [String; 4] {
        let s = MonthSplit::of(&Period {
            org_path: String::new(),
            from: from.into(),
            to: to.into(),
        });
        [s.head_end, s.tail_start, s.first_month, s.last_month]
    }

    #[test]
    fn a_period_reads_its_whole_months_from_roll_ups_and_the_days_around_them_from_facts() {
        // A year: twelve whole months, no day read alone.
        assert_eq!(
            split("2026-01-01", "2026-12-31"),
            ["2026-01-01", "2027-01-01", "2026-01", "2026-12"]
        );
        // The 15th of one month to the 10th of another, over a year's end.
        assert_eq!(
            split("2026-11-15", "2027-02-10"),
            ["2026-12-01", "2027-02-01", "2026-12", "2027-01"]
        );
        // February ends on the 28th, or in a leap year on the 29th.
        assert_eq!(
            split("2027-02-01", "2027-02-28"),
            ["2027-02-01", "2027-03-01", "2027-02", "2027-02"]
        );
        assert_eq!(
            split("2028-02-01", "2028-02-28"),
            ["9999-12-31", "9999-12-31", "9999-12", "0000-01"]
        );
        assert_eq!(
            split("2028-02-01", "2028-02-29"),
            ["2028-02-01", "2028-03-01", "2028-02", "2028-02"]
        );
        // No whole month: every day from the facts.
        assert_eq!(
            split("2026-10-02", "2026-10-31"),
            ["9999-12-31", "9999-12-31", "9999-12", "0000-01"]
        );
    }
}
