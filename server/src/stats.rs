//! The office statistics (README "Statistics"): satisfaction and safety indexes with Wilson
//! intervals and interval-aware ranks, dispute and drug-control figures, and the reports of any
//! kind by status. The store counts per
//! grid in SQL (`store::facts`); this module rolls the counts up into org units and derives the
//! figures, so it never loads a report. Plain functions over a store and a scope, so the HTTP
//! handlers and any command-line tool share them.

use std::collections::BTreeMap;

use gridsync_core::schema::{FieldDef, Label, Registry, Schema};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::scope::Scope;
use crate::store::facts::{
    CLOSED_DISPUTE, CanvassCounts, DisputeCounts, DrugCounts, DrugDue, KindCounts, Period,
};
use crate::store::{Level, OrgUnit, Result, Store};

/// Fewer interviews than this make an index too uncertain to rank on: the unit is marked
/// `few_interviews`.
pub const MIN_INTERVIEWS: i64 = 30;
/// Drug-control counts from 1 to this minus one are withheld from readers who may not see the
/// cases themselves (township and street staff): a count that small can point at a person.
pub const SMALL_CELL: i64 = 5;
/// An active drug-control case not visited for this many days is overdue.
pub const VISIT_INTERVAL_DAYS: i64 = 30;
/// An active drug-control case with no urine or hair test for this many days is due one.
pub const TEST_INTERVAL_DAYS: i64 = 90;
/// z for a two-sided 95% interval.
const Z95: f64 = 1.959_963_984_540_054;

/// A calendar day, as days since 1970-01-01.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Day(pub i64);

impl Day {
    /// `YYYY-MM-DD`, a real calendar date; `None` for anything else.
    pub fn parse(s: &str) -> Option<Day> {
        if s.len() != 10 {
            return None;
        }
        gridsync_core::time::parse_rfc3339(&format!("{s}T00:00:00Z")).map(|secs| Day(secs / 86_400))
    }

    /// The day (UTC) of a time in unix seconds.
    pub fn of_unix(secs: i64) -> Day {
        Day(secs.div_euclid(86_400))
    }

    pub fn plus(self, days: i64) -> Day {
        Day(self.0 + days)
    }
}

impl std::fmt::Display for Day {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&gridsync_core::time::rfc3339(self.0 * 86_400)[..10])
    }
}

/// A share with its 95% Wilson score interval, all as fractions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Wilson {
    pub share: f64,
    pub low: f64,
    pub high: f64,
}

/// The share `successes / n` and its 95% Wilson score interval; `None` when `n` is 0.
pub fn wilson(successes: i64, n: i64) -> Option<Wilson> {
    if n <= 0 {
        return None;
    }
    let n = n as f64;
    let p = successes as f64 / n;
    let z2 = Z95 * Z95;
    let denominator = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denominator;
    let half = Z95 / denominator * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    Some(Wilson {
        share: p,
        low: (centre - half).max(0.0),
        high: (centre + half).min(1.0),
    })
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

/// An index in percent with its 95% interval, rounded to 0.1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Estimate {
    pub index: f64,
    pub low: f64,
    pub high: f64,
}

impl From<Wilson> for Estimate {
    fn from(w: Wilson) -> Self {
        Estimate {
            index: round(w.share * 100.0, 1),
            low: round(w.low * 100.0, 1),
            high: round(w.high * 100.0, 1),
        }
    }
}

/// A share as a fraction with its 95% interval, rounded to 0.001.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Share {
    pub share: f64,
    pub low: f64,
    pub high: f64,
}

impl From<Wilson> for Share {
    fn from(w: Wilson) -> Self {
        Share {
            share: round(w.share, 3),
            low: round(w.low, 3),
            high: round(w.high, 3),
        }
    }
}

/// Ranks of one unit among others by an index with intervals (1 is best).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rank {
    /// 1 + the units with a higher index.
    pub rank: u32,
    /// 1 + the units whose interval lies wholly above this one's: the best rank the data allow.
    pub best: u32,
    /// The units whose interval does not lie wholly below this one's (itself included): the
    /// worst rank the data allow.
    pub worst: u32,
}

/// The ranks of each of `units` among all of them.
pub fn rank(units: &[Wilson]) -> Vec<Rank> {
    let count = |f: &dyn Fn(&Wilson) -> bool| units.iter().filter(|o| f(o)).count() as u32;
    units
        .iter()
        .map(|u| Rank {
            rank: 1 + count(&|o| o.share > u.share),
            best: 1 + count(&|o| o.low > u.high),
            worst: count(&|o| o.high >= u.low),
        })
        .collect()
}

/// The median of values given as (value, how many), sorted by value or not; `None` when empty.
pub fn median(histogram: &[(i64, i64)]) -> Option<f64> {
    let mut sorted = histogram.to_vec();
    sorted.sort_unstable();
    let n: i64 = sorted.iter().map(|(_, c)| c).sum();
    if n == 0 {
        return None;
    }
    let nth = |k: i64| {
        let mut seen = 0;
        for (v, c) in &sorted {
            seen += c;
            if seen > k {
                return *v as f64;
            }
        }
        unreachable!("k < n")
    };
    Some(if n % 2 == 1 {
        nth(n / 2)
    } else {
        (nth(n / 2 - 1) + nth(n / 2)) / 2.0
    })
}

/// The units a canvass statistic compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    Township,
    Street,
    /// Villages and communities.
    Village,
    Grid,
}

impl Group {
    pub const NAMES: [&str; 4] = ["township", "street", "village", "grid"];

    pub fn parse(s: &str) -> Option<Group> {
        Some(match s {
            "township" => Group::Township,
            "street" => Group::Street,
            "village" => Group::Village,
            "grid" => Group::Grid,
            _ => return None,
        })
    }

    /// The level below `level`: townships under a district (streets on request), villages and
    /// communities under a township or street, grids below that.
    pub fn below(level: Level) -> Group {
        match level {
            Level::District => Group::Township,
            Level::Township | Level::Street => Group::Village,
            Level::Village | Level::Community | Level::Grid => Group::Grid,
        }
    }

    pub fn as_str(self) -> &'static str {
        Group::NAMES[self as usize]
    }

    fn holds(self, level: Level) -> bool {
        match self {
            Group::Township => level == Level::Township,
            Group::Street => level == Level::Street,
            Group::Village => matches!(level, Level::Village | Level::Community),
            Group::Grid => level == Level::Grid,
        }
    }
}

/// A period of whole days, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Days {
    pub from: Day,
    pub to: Day,
}

impl Days {
    /// The period of the same length that ends the day before this one starts.
    pub fn previous(self) -> Days {
        let length = self.to.0 - self.from.0 + 1;
        Days {
            from: self.from.plus(-length),
            to: self.from.plus(-1),
        }
    }

    fn under(self, org: &OrgUnit) -> Period {
        Period {
            org_path: org.path.clone(),
            from: self.from.to_string(),
            to: self.to.to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PeriodBounds {
    pub from: String,
    pub to: String,
}

impl From<Days> for PeriodBounds {
    fn from(d: Days) -> Self {
        PeriodBounds {
            from: d.from.to_string(),
            to: d.to.to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PreviousFigures {
    pub interviews: i64,
    pub satisfaction: Option<Estimate>,
    pub safety: Option<Estimate>,
}

/// Index points gained since the previous period; `None` where either period has no index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Change {
    pub satisfaction: Option<f64>,
    pub safety: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CanvassUnit {
    pub org_id: String,
    pub name: String,
    pub level: Level,
    pub interviews: i64,
    /// Percent of satisfied interviews, with its 95% interval; `None` without answers.
    pub satisfaction: Option<Estimate>,
    pub safety: Option<Estimate>,
    pub previous: PreviousFigures,
    /// `None` when neither index can be compared with the previous period.
    pub change: Option<Change>,
    /// By satisfaction, among the units of the same level; `None` without an index.
    pub rank: Option<u32>,
    pub rank_best: Option<u32>,
    pub rank_worst: Option<u32>,
    /// Fewer than [`MIN_INTERVIEWS`] interviews: do not read its rank.
    pub few_interviews: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WorryCount {
    pub worry: String,
    #[schema(value_type = Object)]
    pub label: Label,
    pub count: i64,
    /// Of the interviews of the period.
    pub share: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct CanvassStats {
    pub from: String,
    pub to: String,
    pub previous: PeriodBounds,
    pub group: String,
    pub units: Vec<CanvassUnit>,
    /// Most frequent first.
    pub worries: Vec<WorryCount>,
}

impl CanvassCounts {
    fn add(&mut self, o: &CanvassCounts) {
        self.interviews += o.interviews;
        self.satisfaction_answered += o.satisfaction_answered;
        self.satisfied += o.satisfied;
        self.safety_answered += o.safety_answered;
        self.safe += o.safe;
    }
}

/// Sum of the `cells` whose org path lies under `unit`.
fn roll_up<C, T: Default>(
    unit: &OrgUnit,
    cells: &[C],
    path: impl Fn(&C) -> &str,
    add: impl Fn(&mut T, &C),
) -> T {
    let mut total = T::default();
    for c in cells.iter().filter(|c| path(c).starts_with(&unit.path)) {
        add(&mut total, c);
    }
    total
}

/// The units of `group` at or under `org`, ordered by path.
async fn group_units(store: &dyn Store, org: &OrgUnit, group: Group) -> Result<Vec<OrgUnit>> {
    let mut units: Vec<OrgUnit> = store
        .org_units()
        .await?
        .into_iter()
        .filter(|u| u.path.starts_with(&org.path) && group.holds(u.level))
        .collect();
    units.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(units)
}

/// The satisfaction canvass of `period` under `org`, per unit of `group`, in `scope`, against
/// the period of the same length before it.
pub async fn canvass(
    store: &dyn Store,
    registry: &Registry,
    scope: &Scope,
    org: &OrgUnit,
    group: Group,
    period: Days,
) -> Result<CanvassStats> {
    canvass_against(
        store,
        registry,
        scope,
        org,
        group,
        period,
        period.previous(),
    )
    .await
}

/// [`canvass`] against a `previous` period of the caller's choosing: a bulletin compares a
/// month with the month before, whatever their lengths.
pub async fn canvass_against(
    store: &dyn Store,
    registry: &Registry,
    scope: &Scope,
    org: &OrgUnit,
    group: Group,
    period: Days,
    previous: Days,
) -> Result<CanvassStats> {
    let now = store.canvass_counts(scope, &period.under(org)).await?;
    let before = store.canvass_counts(scope, &previous.under(org)).await?;
    let units = group_units(store, org, group).await?;
    let sum = |unit: &OrgUnit, cells: &[CanvassCounts]| {
        roll_up(unit, cells, |c| c.org_path.as_str(), CanvassCounts::add)
    };
    let mut out: Vec<CanvassUnit> = Vec::with_capacity(units.len());
    let mut satisfaction: Vec<Option<Wilson>> = Vec::with_capacity(units.len());
    for unit in &units {
        let c = sum(unit, &now);
        let p = sum(unit, &before);
        let sat = wilson(c.satisfied, c.satisfaction_answered);
        let safe = wilson(c.safe, c.safety_answered);
        let prev_sat = wilson(p.satisfied, p.satisfaction_answered);
        let prev_safe = wilson(p.safe, p.safety_answered);
        let delta =
            |a: Option<Wilson>, b: Option<Wilson>| Some(round((a?.share - b?.share) * 100.0, 1));
        let change = Change {
            satisfaction: delta(sat, prev_sat),
            safety: delta(safe, prev_safe),
        };
        satisfaction.push(sat);
        out.push(CanvassUnit {
            org_id: unit.id.clone(),
            name: unit.name.clone(),
            level: unit.level,
            interviews: c.interviews,
            satisfaction: sat.map(Estimate::from),
            safety: safe.map(Estimate::from),
            previous: PreviousFigures {
                interviews: p.interviews,
                satisfaction: prev_sat.map(Estimate::from),
                safety: prev_safe.map(Estimate::from),
            },
            change: (change.satisfaction.is_some() || change.safety.is_some()).then_some(change),
            rank: None,
            rank_best: None,
            rank_worst: None,
            few_interviews: c.interviews < MIN_INTERVIEWS,
        });
    }
    // Townships and streets (villages and communities) are ranked each among their own level.
    for level in [
        Level::Township,
        Level::Street,
        Level::Village,
        Level::Community,
        Level::Grid,
    ] {
        let ranked: Vec<usize> = (0..out.len())
            .filter(|&i| out[i].level == level && satisfaction[i].is_some())
            .collect();
        let estimates: Vec<Wilson> = ranked.iter().filter_map(|&i| satisfaction[i]).collect();
        for (&i, r) in ranked.iter().zip(rank(&estimates)) {
            out[i].rank = Some(r.rank);
            out[i].rank_best = Some(r.best);
            out[i].rank_worst = Some(r.worst);
        }
    }
    let interviews: i64 = now.iter().map(|c| c.interviews).sum();
    let worries = worries(store, registry, scope, &period.under(org), interviews).await?;
    Ok(CanvassStats {
        from: period.from.to_string(),
        to: period.to.to_string(),
        previous: previous.into(),
        group: group.as_str().to_owned(),
        units: out,
        worries,
    })
}

async fn worries(
    store: &dyn Store,
    registry: &Registry,
    scope: &Scope,
    period: &Period,
    interviews: i64,
) -> Result<Vec<WorryCount>> {
    let field = registry
        .latest("satisfaction_canvass")
        .and_then(|s| s.field("worries"));
    let mut counts = store.worry_counts(scope, period).await?;
    // Most frequent first; ties in the order the form lists them.
    let position = |w: &str| {
        field
            .and_then(|f| f.choices.iter().position(|c| c.id == w))
            .unwrap_or(usize::MAX)
    };
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(position(&a.0).cmp(&position(&b.0))));
    Ok(counts
        .into_iter()
        .map(|(worry, count)| WorryCount {
            label: field
                .and_then(|f| f.choice(&worry))
                .map(|c| c.label.clone())
                .unwrap_or_else(|| Label {
                    zh: worry.clone(),
                    en: worry.clone(),
                }),
            share: if interviews > 0 {
                round(count as f64 / interviews as f64, 3)
            } else {
                0.0
            },
            worry,
            count,
        })
        .collect())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DisputeUnit {
    pub org_id: String,
    pub name: String,
    pub level: Level,
    /// Disputes found in the period.
    pub found: i64,
    /// Of those, not resolved, referred or escalated.
    pub open: i64,
    pub open_by_risk: BTreeMap<String, i64>,
    pub open_by_category: BTreeMap<String, i64>,
    pub by_status: BTreeMap<String, i64>,
    /// Resolved, of the closed (resolved, referred or escalated) cases; `None` when none closed.
    pub resolved_in_village: Option<Share>,
    /// From found_on to resolved_on, over the resolved cases with both dates.
    pub median_days_to_resolution: Option<f64>,
    /// Open cases whose next follow-up is before today.
    pub overdue_follow_ups: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DisputeStats {
    pub from: String,
    pub to: String,
    pub units: Vec<DisputeUnit>,
    pub total: DisputeUnit,
}

/// The choice ids of a field, each counted 0, so that every key is always present.
fn zeros(field: Option<&FieldDef>) -> BTreeMap<String, i64> {
    field
        .map(|f| f.choices.iter().map(|c| (c.id.clone(), 0)).collect())
        .unwrap_or_default()
}

/// The disputes found in `period` under `org`, per child of `org` and in total, in `scope`;
/// follow-ups before `today` are overdue.
pub async fn disputes(
    store: &dyn Store,
    registry: &Registry,
    scope: &Scope,
    org: &OrgUnit,
    period: Days,
    today: Day,
) -> Result<DisputeStats> {
    let p = period.under(org);
    let cells = store.dispute_counts(scope, &p, &today.to_string()).await?;
    let days = store.resolution_days(scope, &p).await?;
    // Every version's choices: a retired version's reports are counted too.
    let span = registry.span("dispute_check");
    let [risks, categories, statuses] = ["risk_level", "category", "status"]
        .map(|field| zeros(span.as_ref().and_then(|s| s.field(field))));
    let figures = |unit: &OrgUnit| {
        let mut u = DisputeUnit {
            org_id: unit.id.clone(),
            name: unit.name.clone(),
            level: unit.level,
            found: 0,
            open: 0,
            open_by_risk: risks.clone(),
            open_by_category: categories.clone(),
            by_status: statuses.clone(),
            resolved_in_village: None,
            median_days_to_resolution: None,
            overdue_follow_ups: 0,
        };
        let mut resolved = 0;
        let mut closed = 0;
        for c in cells.iter().filter(|c| c.org_path.starts_with(&unit.path)) {
            add_dispute(&mut u, c, &mut resolved, &mut closed);
        }
        u.resolved_in_village = wilson(resolved, closed).map(Share::from);
        let histogram: Vec<(i64, i64)> = days
            .iter()
            .filter(|d| d.org_path.starts_with(&unit.path))
            .map(|d| (d.days, d.count))
            .collect();
        u.median_days_to_resolution = median(&histogram);
        u
    };
    let mut children: Vec<OrgUnit> = store
        .org_units()
        .await?
        .into_iter()
        .filter(|u| u.parent_id.as_deref() == Some(org.id.as_str()))
        .collect();
    children.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(DisputeStats {
        from: period.from.to_string(),
        to: period.to.to_string(),
        units: children.iter().map(figures).collect(),
        total: figures(org),
    })
}

fn add_dispute(u: &mut DisputeUnit, c: &DisputeCounts, resolved: &mut i64, closed: &mut i64) {
    u.found += c.count;
    u.overdue_follow_ups += c.overdue;
    let status = c.status.as_deref().unwrap_or("");
    if let Some(s) = c.status.as_ref() {
        *u.by_status.entry(s.clone()).or_default() += c.count;
    }
    if CLOSED_DISPUTE.contains(&status) {
        *closed += c.count;
        if status == "resolved" {
            *resolved += c.count;
        }
        return;
    }
    u.open += c.count;
    if let Some(r) = &c.risk {
        *u.open_by_risk.entry(r.clone()).or_default() += c.count;
    }
    if let Some(k) = &c.category {
        *u.open_by_category.entry(k.clone()).or_default() += c.count;
    }
}

/// One choice of a kind's status field.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct StatusChoice {
    pub status: String,
    #[schema(value_type = Object)]
    pub label: Label,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct KindUnit {
    pub org_id: String,
    pub name: String,
    pub level: Level,
    /// Reports of the period.
    pub total: i64,
    /// Per choice of the status field, every choice present (0 when none); a report without a
    /// status counts in `total` only.
    pub by_status: BTreeMap<String, i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct KindStats {
    pub kind: String,
    pub from: String,
    pub to: String,
    pub group: String,
    /// The field whose choices `by_status` counts; `None` when the kind has none.
    pub status_field: Option<String>,
    /// The choices of the status field in the order of the form, those only earlier versions
    /// have last, with their labels.
    pub statuses: Vec<StatusChoice>,
    pub units: Vec<KindUnit>,
    pub total: KindUnit,
}

/// Reports counted in total and by status, as a [`KindUnit`] shows them.
#[derive(Debug, Default)]
struct StatusTally {
    total: i64,
    by_status: BTreeMap<String, i64>,
}

impl StatusTally {
    fn add(&mut self, c: &KindCounts) {
        self.total += c.count;
        if let Some(status) = &c.status {
            *self.by_status.entry(status.clone()).or_default() += c.count;
        }
    }
}

/// The reports of the kind `span` describes (`Registry::span`: every version) in `period`
/// under `org`, per unit of `group` and in total, in `scope`: how many, and how many with each
/// status.
pub async fn kind(
    store: &dyn Store,
    span: &Schema,
    scope: &Scope,
    org: &OrgUnit,
    group: Group,
    period: Days,
) -> Result<KindStats> {
    let cells = store
        .kind_counts(scope, &span.kind, &period.under(org))
        .await?;
    let status = span.status_field.as_deref().and_then(|f| span.field(f));
    let statuses = zeros(status);
    let figures = |unit: &OrgUnit| {
        let tally: StatusTally = roll_up(unit, &cells, |c| c.org_path.as_str(), StatusTally::add);
        let mut by_status = statuses.clone();
        by_status.extend(tally.by_status);
        KindUnit {
            org_id: unit.id.clone(),
            name: unit.name.clone(),
            level: unit.level,
            total: tally.total,
            by_status,
        }
    };
    let units = group_units(store, org, group).await?;
    Ok(KindStats {
        kind: span.kind.clone(),
        from: period.from.to_string(),
        to: period.to.to_string(),
        group: group.as_str().to_owned(),
        status_field: status.map(|f| f.id.clone()),
        statuses: status
            .map(|f| {
                f.choices
                    .iter()
                    .map(|c| StatusChoice {
                        status: c.id.clone(),
                        label: c.label.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        units: units.iter().map(figures).collect(),
        total: figures(org),
    })
}

/// Each count is `null` when withheld by the small-cell rule (see `DrugStats::suppressed_below`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DrugUnit {
    pub org_id: String,
    pub name: String,
    pub level: Level,
    #[schema(minimum = 0)]
    pub active: Option<i64>,
    #[schema(minimum = 0)]
    pub relapsed: Option<i64>,
    #[schema(minimum = 0)]
    pub visits_overdue: Option<i64>,
    #[schema(minimum = 0)]
    pub tests_due: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DrugStats {
    pub as_of: String,
    /// The small-cell rule, for readers who may not see the cases (township and street staff):
    /// every count from 1 to this value minus one is `null` (shown as "<5"); 0 and larger counts
    /// are exact. `null` when every count is exact (drug-control officers, admins).
    pub suppressed_below: Option<i64>,
    pub units: Vec<DrugUnit>,
    pub total: DrugUnit,
}

impl DrugCounts {
    fn add(&mut self, o: &DrugCounts) {
        self.active += o.active;
        self.relapsed += o.relapsed;
        self.visits_overdue += o.visits_overdue;
        self.tests_due += o.tests_due;
    }
}

/// Drug-control cases under `org` as of `today`, per township or street at or under `org` and
/// in total, in `scope`. Counts only: no case is named. With `suppress_below`, every count from
/// 1 to it minus one is withheld.
pub async fn drug(
    store: &dyn Store,
    scope: &Scope,
    org: &OrgUnit,
    today: Day,
    suppress_below: Option<i64>,
) -> Result<DrugStats> {
    let cells = store
        .drug_counts(
            scope,
            &DrugDue {
                org_path: org.path.clone(),
                today: today.to_string(),
                visited_since: today.plus(-VISIT_INTERVAL_DAYS).to_string(),
                tested_since: today.plus(-TEST_INTERVAL_DAYS).to_string(),
            },
        )
        .await?;
    let figures = |unit: &OrgUnit| {
        let c = roll_up(unit, &cells, |c| c.org_path.as_str(), DrugCounts::add);
        let shown = |n: i64| match suppress_below {
            Some(below) if (1..below).contains(&n) => None,
            _ => Some(n),
        };
        DrugUnit {
            org_id: unit.id.clone(),
            name: unit.name.clone(),
            level: unit.level,
            active: shown(c.active),
            relapsed: shown(c.relapsed),
            visits_overdue: shown(c.visits_overdue),
            tests_due: shown(c.tests_due),
        }
    };
    let mut units: Vec<OrgUnit> = store
        .org_units()
        .await?
        .into_iter()
        .filter(|u| {
            u.path.starts_with(&org.path) && matches!(u.level, Level::Township | Level::Street)
        })
        .collect();
    units.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(DrugStats {
        as_of: today.to_string(),
        suppressed_below: suppress_below,
        units: units.iter().map(figures).collect(),
        total: figures(org),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_matches_the_interval_computed_by_hand() {
        // 8 of 10: centre (0.8 + 1.92073/20) / 1.384146 = 0.64733,
        // half 1.95996 / 1.384146 * sqrt(0.016 + 0.0096037) = 0.22665.
        let w = wilson(8, 10).unwrap();
        assert!((w.low - 0.49016).abs() < 1e-4, "{w:?}");
        assert!((w.high - 0.94332).abs() < 1e-4, "{w:?}");
        let all = wilson(5, 5).unwrap();
        assert_eq!(all.high, 1.0);
        assert!((all.low - 0.56551).abs() < 1e-4, "{all:?}");
        assert_eq!(wilson(0, 0), None);
    }

    #[test]
    fn overlapping_intervals_widen_the_rank_to_what_the_data_allow() {
        let w = |share, low, high| Wilson { share, low, high };
        // a and b overlap; c lies wholly below both.
        let ranks = rank(&[w(0.9, 0.8, 0.95), w(0.85, 0.75, 0.92), w(0.5, 0.4, 0.6)]);
        assert_eq!(
            ranks[0],
            Rank {
                rank: 1,
                best: 1,
                worst: 2
            }
        );
        assert_eq!(
            ranks[1],
            Rank {
                rank: 2,
                best: 1,
                worst: 2
            }
        );
        assert_eq!(
            ranks[2],
            Rank {
                rank: 3,
                best: 3,
                worst: 3
            }
        );
    }

    #[test]
    fn median_of_a_histogram_averages_the_middle_pair() {
        assert_eq!(median(&[(3, 1), (10, 1), (5, 2)]), Some(5.0));
        assert_eq!(median(&[(2, 1), (9, 1)]), Some(5.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn the_previous_period_has_the_same_length_and_ends_the_day_before() {
        let october = Days {
            from: Day::parse("2026-10-01").unwrap(),
            to: Day::parse("2026-10-31").unwrap(),
        };
        let p = october.previous();
        assert_eq!(
            (p.from.to_string(), p.to.to_string()),
            ("2026-08-31".into(), "2026-09-30".into())
        );
        assert_eq!(Day::parse("2026-02-29"), None);
        assert_eq!(Day::parse("2026-1-01"), None);
    }
}
