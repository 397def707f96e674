//! The SQL conditions several statements share: who may see a row (the scope), where in the org
//! tree it lies, and the filters of the lists the API pages through. Placeholders are numbered
//! where each condition says; values are always bound, never spliced.

use gridsync_core::task;

use super::ReportQuery;
use super::db::{Dialect, Sql, Value};
use crate::scope::{Restricted, Scope};

/// The condition that the org path in `column` lies under the path bound to placeholder `n`: a
/// byte range, which an index on the column serves, so that a township's reports are found
/// without reading the district's. Org paths end with '/', so those under `/d/t1/` are exactly
/// the paths from `/d/t1/` up to, not including, `/d/t10` ('0' follows '/'); the empty path (a
/// district admin's) takes every path, and any other text none.
pub(crate) fn path_under(d: Dialect, column: &str, n: usize) -> String {
    let p = format!("${n}");
    let col = d.bytewise(column);
    format!(
        "({col} >= {p} AND {col} < (CASE WHEN {p} = '' THEN '0' \
         WHEN substr({p}, length({p}), 1) = '/' THEN substr({p}, 1, length({p}) - 1) || '0' \
         ELSE {p} END))"
    )
}

/// The column whose index (migration 0014) keeps the reports of the unit at `prefix` in
/// sequence order, for a township's, a village's or a grid's path: a pull pages through that
/// unit's reports instead of the district's. `None` for the district, whose pull walks the
/// sequence itself, and for anything that is not such a path (no empty part, as org paths
/// have none).
pub(crate) fn scope_feed(prefix: &str) -> Option<&'static str> {
    if !prefix.starts_with('/') || !prefix.ends_with('/') || prefix.contains("//") {
        return None;
    }
    match prefix.matches('/').count() {
        3 => Some("township_path"),
        4 => Some("village_path"),
        5 => Some("org_path"),
        _ => None,
    }
}

/// The condition that a user's org unit lies under the path bound to placeholder 1.
pub(crate) fn users_under(d: Dialect) -> String {
    format!(
        "org_unit_id IN (SELECT id FROM org_units WHERE {})",
        path_under(d, "path", 1)
    )
}

/// The condition that rows of `table` (with `org_path`, `restricted` and `assigned_to` columns)
/// are in a scope: the path prefix, whether ordinary kinds are open, whether every restricted
/// case is, and the user a restricted case must be assigned to, bound by [`Sql::bind_scope`] to
/// four placeholders from `first`. The same rule as [`Scope::allows`].
pub(crate) fn scope_filter(d: Dialect, table: &str, first: usize) -> String {
    let under = path_under(d, &format!("{table}.org_path"), first);
    format!("{under} AND {}", kinds_in_scope(table, first))
}

/// [`scope_filter`] for a pull that walks the feed of its scope's unit, whose column
/// ([`scope_feed`]) is bound to the same placeholder as the prefix: a report's township (village,
/// grid) path is the prefix exactly when its org path lies under the prefix, both being the
/// path's first parts, so the feed stands in for the path range. With both, Postgres guesses
/// them independent, gathers every remaining report of the unit through both indexes and sorts
/// them for each page (83 ms a page at a million reports) instead of walking the feed in
/// sequence order (2 ms).
pub(crate) fn scope_filter_in_feed(table: &str, feed: &str, first: usize) -> String {
    format!(
        "{table}.{feed} = ${first} AND {}",
        kinds_in_scope(table, first)
    )
}

/// The part of a scope test after the path: ordinary kinds if open, restricted cases if all or
/// assigned to the scope's user (placeholders `first + 1` to `first + 3`).
fn kinds_in_scope(table: &str, first: usize) -> String {
    let [open, all, user] = [1, 2, 3].map(|i| format!("${}", first + i));
    format!(
        "((NOT {table}.restricted AND {open}) \
         OR ({table}.restricted AND ({all} OR {table}.assigned_to = {user})))"
    )
}

impl<'q> Sql<'q> {
    /// Binds the four placeholders of a [`scope_filter`].
    pub fn bind_scope(self, scope: &Scope) -> Self {
        let assigned = if scope.restricted == Restricted::Assigned {
            scope.user_id.clone()
        } else {
            String::new()
        };
        self.bind(scope.prefix.clone())
            .bind(scope.open_kinds)
            .bind(scope.restricted == Restricted::All)
            .bind(assigned)
    }
}

impl<'q> Sql<'q> {
    /// Binds placeholders 1–12 of a [`report_list_where`]: the scope and the filters of `q`.
    pub fn bind_report_filters(self, scope: &Scope, q: &'q ReportQuery) -> Self {
        self.bind_scope(scope)
            .bind(&q.kind)
            .bind(&q.org_path)
            .bind(&q.status)
            .bind(&q.review_state)
            .bind(q.updated_since)
            .bind(q.q.as_deref().map(json_contains_pattern))
            .bind(q.q_redacted)
            .bind(q.has_conflicts)
    }
}

/// A condition whose placeholders are numbered as values are added to it, from `$1`.
#[derive(Default)]
pub(crate) struct Conditions<'q> {
    conditions: Vec<String>,
    values: Vec<Box<dyn Value<'q> + 'q>>,
}

impl<'q> Conditions<'q> {
    /// Adds `condition` compared with the next placeholder, `value` (`"at >="` becomes
    /// `at >= $n`).
    pub fn add(&mut self, condition: &str, value: impl Value<'q>) {
        self.values.push(Box::new(value));
        self.conditions
            .push(format!("{condition} ${}", self.values.len()));
    }

    /// The `WHERE` condition (`TRUE` when nothing was added) and its values.
    pub fn finish(self) -> (String, Vec<Box<dyn Value<'q> + 'q>>) {
        let condition = if self.conditions.is_empty() {
            "TRUE".to_owned()
        } else {
            self.conditions.join(" AND ")
        };
        (condition, self.values)
    }
}

/// `s` as a SQL LIKE pattern matching itself, with LIKE's wildcards escaped by `\`.
pub(crate) fn like_escape(s: &str) -> String {
    let mut pattern = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern
}

/// The LIKE pattern that finds `text` inside a JSON document's text: `text` as JSON writes it
/// inside a string (so a quote or a backslash matches the escaped form stored), escaped for
/// LIKE, between two `%`.
pub(crate) fn json_contains_pattern(text: &str) -> String {
    let json = serde_json::Value::String(text.to_owned()).to_string();
    let inner = &json[1..json.len() - 1];
    format!("%{}%", like_escape(inner))
}

/// The WHERE condition of a report list on `documents d`: 1–4 the scope, 5 kind, 6 org path
/// pattern, 7 status, 8 review state, 9 updated since, 10 text pattern, 11 whether to search the
/// redacted text, 12 has_conflicts, 13–14 the (updated_at, id) to start after.
///
/// A search text in which no character has case (Chinese, digits, punctuation) is compared with
/// LIKE even on Postgres: the matches are the same, and ILIKE, folding the case of every
/// character it reads, takes twice as long.
pub(crate) fn report_list_where(d: Dialect, search: Option<&str>) -> String {
    let cased = search.is_some_and(|s| s.chars().any(|c| c.to_lowercase().ne(c.to_uppercase())));
    // Tasks are documents too, but a report list holds them only when asked for by kind.
    format!(
        "{scope} AND (($5 IS NULL AND d.kind NOT IN ('{task}', '{visit}')) OR d.kind = $5) \
         AND ($6 IS NULL OR {o_under}) \
         AND ($7 IS NULL OR d.status = $7) AND ($8 IS NULL OR d.review_state = $8) \
         AND ($9 IS NULL OR d.updated_at >= $9) \
         AND ($10 IS NULL OR (CASE WHEN $11 THEN d.public_text \
              ELSE CAST(d.projection AS TEXT) END) {like} $10 ESCAPE '\\') \
         AND ($12 IS NULL OR d.has_conflicts = $12) \
         AND ($13 IS NULL OR d.updated_at < $13 OR (d.updated_at = $13 AND d.id < $14))",
        scope = scope_filter(d, "d", 1),
        o_under = path_under(d, "d.org_path", 6),
        like = if cased { d.ilike() } else { "LIKE" },
        task = task::TASK,
        visit = task::DRUG_VISIT_TASK,
    )
}

/// The WHERE condition of a list of open conflicts on `conflicts c JOIN documents d`: 1–4 the
/// scope, 5 kind, 6 org path pattern, 7 the conflict id to start after.
pub(crate) fn conflict_list_where(d: Dialect) -> String {
    format!(
        "c.resolved_at IS NULL AND {scope} AND ($5 IS NULL OR d.kind = $5) \
         AND ($6 IS NULL OR {o_under}) AND ($7 IS NULL OR c.id > $7)",
        scope = scope_filter(d, "d", 1),
        o_under = path_under(d, "d.org_path", 6),
    )
}

#[cfg(test)]
mod tests {
    use super::scope_feed;

    #[test]
    fn a_township_a_village_and_a_grid_each_have_a_feed_and_the_district_walks_the_sequence() {
        assert_eq!(scope_feed("/d/t1/"), Some("township_path"));
        assert_eq!(scope_feed("/d/t1/v1/"), Some("village_path"));
        assert_eq!(scope_feed("/d/t1/v1/g1/"), Some("org_path"));
        for none in ["", "/d/", "/d/t1", "d/t1/", "/d//", "/d/t1/v1/g1/x/"] {
            assert_eq!(scope_feed(none), None, "{none:?}");
        }
    }
}
