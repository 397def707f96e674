//! Bulletins (README "Bulletins"): a month's, a quarter's or a year's figures for the district or
//! one township, as an office reads them out — satisfaction and safety rankings with the rank
//! rules applied, dispute handling, drug-control counts and the worries raised most — built from
//! `stats`, and frozen once published.

pub mod xlsx;

use gridsync_core::schema::{Problem, ProblemCode, Registry};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::scope::{Restricted, Scope};
use crate::stats::{
    self, CanvassUnit, Day, Days, DisputeStats, DrugStats, Group, PeriodBounds, Wilson, WorryCount,
};
use crate::store::{AuditEntry, Level, NewBulletin, OrgUnit, Store, StoreError, StoredBulletin};
use crate::tasks;

/// How many of the worries raised most a bulletin lists.
const WORRIES: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum BulletinError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Bulletins are made for the district and for townships and streets only.
    #[error("a bulletin is made for the district or a township or street, not for a {0}")]
    NotABulletinUnit(&'static str),
    #[error("{0} has not begun: nothing of it can be published")]
    NotBegun(String),
}

pub type Result<T, E = BulletinError> = std::result::Result<T, E>;

/// A bulletin's period: a month (`2026-11`), a quarter (`2026-Q4`) or a year (`2026`), with the
/// period of the same kind before it, which the changes are measured against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulletinPeriod {
    pub name: String,
    pub days: Days,
    pub previous_name: String,
    pub previous: Days,
}

/// Months counted from year 0, so that a period is a run of them.
#[derive(Debug, Clone, Copy)]
enum Span {
    Month,
    Quarter,
    Year,
}

impl Span {
    fn months(self) -> i64 {
        match self {
            Span::Month => 1,
            Span::Quarter => 3,
            Span::Year => 12,
        }
    }

    fn name(self, first: i64) -> String {
        let (year, month) = (first / 12, first % 12 + 1);
        match self {
            Span::Month => format!("{year:04}-{month:02}"),
            Span::Quarter => format!("{year:04}-Q{}", (month - 1) / 3 + 1),
            Span::Year => format!("{year:04}"),
        }
    }
}

/// The first day of month `m` (counted from year 0).
fn first_day(m: i64) -> Option<Day> {
    Day::parse(&format!("{:04}-{:02}-01", m / 12, m % 12 + 1))
}

fn days(first: i64, months: i64) -> Option<Days> {
    Some(Days {
        from: first_day(first)?,
        to: first_day(first + months)?.plus(-1),
    })
}

impl BulletinPeriod {
    /// `YYYY-MM`, `YYYY-Qn` or `YYYY`, for years 2000 to 2999.
    pub fn parse(s: &str) -> Option<BulletinPeriod> {
        let (year, rest) = match s.split_once('-') {
            Some((y, r)) => (y, Some(r)),
            None => (s, None),
        };
        if year.len() != 4 || !year.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let year: i64 = year.parse().ok().filter(|y| (2000..3000).contains(y))?;
        let (span, month) = match rest {
            None => (Span::Year, 1),
            Some(q) if q.len() == 2 && q.starts_with('Q') => {
                let n: i64 = q[1..].parse().ok().filter(|n| (1..=4).contains(n))?;
                (Span::Quarter, (n - 1) * 3 + 1)
            }
            Some(m) if m.len() == 2 && m.bytes().all(|b| b.is_ascii_digit()) => (
                Span::Month,
                m.parse().ok().filter(|m| (1..=12).contains(m))?,
            ),
            _ => return None,
        };
        let first = year * 12 + month - 1;
        let before = first - span.months();
        Some(BulletinPeriod {
            name: span.name(first),
            days: days(first, span.months())?,
            previous_name: span.name(before),
            previous: days(before, span.months())?,
        })
    }
}

/// The rank rules of one group of units: rural townships or urban streets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupRule {
    /// The last this many ranked units get a yellow card (黄牌警告).
    #[schema(minimum = 0)]
    pub yellow_cards: u32,
    /// Only units ranked this high or higher may be rated advanced (先进); `null`: no bar.
    #[schema(minimum = 1)]
    pub advanced_within: Option<u32>,
}

/// Which ranks get a yellow card and which bar a rating of advanced: configuration, set by an
/// admin (`PUT /api/v1/bulletin-rules`), rural townships and urban streets apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "rural": { "yellow_cards": 2, "advanced_within": 3 },
    "urban": { "yellow_cards": 1, "advanced_within": null },
}))]
pub struct RankRules {
    pub rural: GroupRule,
    pub urban: GroupRule,
}

impl Default for RankRules {
    /// The seed speech's rule: the last two rural townships and the last urban street get a
    /// yellow card.
    fn default() -> Self {
        RankRules {
            rural: GroupRule {
                yellow_cards: 2,
                advanced_within: None,
            },
            urban: GroupRule {
                yellow_cards: 1,
                advanced_within: None,
            },
        }
    }
}

impl RankRules {
    /// The rules in force: those an admin set, else the default.
    pub async fn current(store: &dyn Store) -> Result<RankRules> {
        match store.bulletin_rules().await? {
            Some(json) => Ok(serde_json::from_str(&json)
                .map_err(|e| StoreError::Corrupt(format!("the bulletin rules: {e}")))?),
            None => Ok(RankRules::default()),
        }
    }

    /// Why these rules cannot apply to a district of `townships` rural townships and `streets`
    /// urban streets: a yellow card for every unit, a bar beyond the last rank, or a rank that is
    /// at once carded and free to be rated advanced. Empty when they can.
    pub fn problems(&self, townships: u32, streets: u32) -> Vec<Problem> {
        let mut problems = Vec::new();
        for (name, rule, units, what) in [
            ("rural", self.rural, townships, "rural townships"),
            ("urban", self.urban, streets, "urban streets"),
        ] {
            if rule.yellow_cards > 0 && rule.yellow_cards >= units {
                problems.push(Problem::new(
                    format!("{name}.yellow_cards"),
                    ProblemCode::OutOfRange,
                    format!(
                        "{} yellow cards among {units} {what} would card every one of them",
                        rule.yellow_cards
                    ),
                ));
            }
            if let Some(within) = rule.advanced_within {
                if within == 0 || within > units {
                    problems.push(Problem::new(
                        format!("{name}.advanced_within"),
                        ProblemCode::OutOfRange,
                        format!("there are ranks 1 to {units} of {what}, not {within}"),
                    ));
                } else if u64::from(within) + u64::from(rule.yellow_cards) > u64::from(units) {
                    problems.push(Problem::new(
                        format!("{name}.advanced_within"),
                        ProblemCode::OutOfRange,
                        format!(
                            "rank {within} would both get a yellow card and be free to be rated \
                             advanced among {units} {what}"
                        ),
                    ));
                }
            }
        }
        problems
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BulletinState {
    /// Computed now from what the server holds; it changes as reports arrive.
    Draft,
    /// As published: later reports never change it.
    Published,
}

/// One unit of a ranking: its canvass figures, with `rank`, `rank_best` and `rank_worst` among
/// the ranked units of the ranking only (`null` when not ranked: no index, or `few_interviews`,
/// fewer than `min_interviews`, rather than a rank on noise), and the rules' marks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RankedUnit {
    #[serde(flatten)]
    pub unit: CanvassUnit,
    pub yellow_card: bool,
    /// Ranked below the rules' `advanced_within`, or not ranked while the rules set one.
    pub advanced_barred: bool,
}

/// The units of one group ranked on satisfaction: rural townships, urban streets, or the
/// villages and communities of a township.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Ranking {
    /// `township`, `street` or `village`.
    pub group: String,
    /// The rule applied; `null` for villages, which the rules do not card.
    pub rule: Option<GroupRule>,
    /// How many units have a rank.
    pub ranked: u32,
    /// How many yellow cards were given: the rule's, but never one to every ranked unit (when
    /// units with too few interviews leave as few ranked as the rule has cards).
    pub yellow_cards: u32,
    /// Ranked units by rank, then the unranked by org path.
    pub units: Vec<RankedUnit>,
}

/// The tasks of one unit due in a bulletin's period (cancelled ones left out).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TaskCompletion {
    pub org_id: String,
    pub name: String,
    pub level: Level,
    pub due: i64,
    pub done: i64,
    /// Done of due; `null` when none was due.
    pub share: Option<f64>,
}

/// A bulletin: live while a draft, frozen once published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Bulletin {
    /// `2026-11`, `2026-Q4` or `2026`.
    pub period: String,
    pub from: String,
    pub to: String,
    pub previous_period: String,
    pub previous: PeriodBounds,
    pub org_id: String,
    pub org_name: String,
    pub org_level: Level,
    pub state: BulletinState,
    /// 1 for the first publication, one more for each re-issue; `null` for a draft.
    pub revision: Option<u32>,
    pub published_by: Option<String>,
    /// Unix seconds.
    pub published_at: Option<i64>,
    /// Why this revision was re-issued.
    pub reason: Option<String>,
    /// When the figures were read, in unix seconds.
    pub computed_at: i64,
    pub rules: RankRules,
    /// Fewer interviews than this leave a unit unranked.
    pub min_interviews: i64,
    pub rankings: Vec<Ranking>,
    /// The worries raised most in the period, most frequent first.
    pub worries: Vec<WorryCount>,
    pub disputes: DisputeStats,
    /// The same dispute figures for the previous period, to read the changes against.
    pub disputes_previous: DisputeStats,
    /// Tasks due in the period per child unit and in total, and how many of them were done.
    pub tasks: Vec<TaskCompletion>,
    /// Drug-control counts as of the day computed, with the small-cell rule always applied:
    /// a bulletin is read out beyond those who may see the cases.
    pub drug: DrugStats,
}

impl Bulletin {
    /// A published revision as stored: the figures as frozen, with the row's publication.
    pub fn from_stored(stored: &StoredBulletin) -> Result<Bulletin> {
        let mut b: Bulletin = serde_json::from_str(&stored.figures).map_err(|e| {
            StoreError::Corrupt(format!(
                "bulletin {} {} revision {}: {e}",
                stored.org_id, stored.period, stored.revision
            ))
        })?;
        b.state = BulletinState::Published;
        b.revision = Some(stored.revision);
        b.published_by = Some(stored.published_by.clone());
        b.published_at = Some(stored.published_at);
        b.reason = stored.reason.clone();
        Ok(b)
    }
}

/// What a bulletin is drawn up for.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub org: &'a OrgUnit,
    pub period: &'a BulletinPeriod,
    pub rules: &'a RankRules,
    pub today: Day,
    pub now: i64,
}

/// The draft bulletin of `request`, with the figures `scope` may count.
pub async fn draft(
    store: &dyn Store,
    registry: &Registry,
    scope: &Scope,
    request: &Request<'_>,
) -> Result<Bulletin> {
    let Request {
        org,
        period,
        rules,
        today,
        now,
    } = *request;
    let groups: Vec<(Group, Option<GroupRule>)> = match org.level {
        Level::District => vec![
            (Group::Township, Some(rules.rural)),
            (Group::Street, Some(rules.urban)),
        ],
        Level::Township | Level::Street => vec![(Group::Village, None)],
        other => return Err(BulletinError::NotABulletinUnit(other.as_str())),
    };
    let mut rankings = Vec::with_capacity(groups.len());
    let mut worries = Vec::new();
    for (group, rule) in groups {
        let canvass = stats::canvass_against(
            store,
            registry,
            scope,
            org,
            group,
            period.days,
            period.previous,
        )
        .await?;
        worries = canvass.worries;
        rankings.push(ranking(group, canvass.units, rule));
    }
    worries.truncate(WORRIES);
    let disputes = stats::disputes(store, registry, scope, org, period.days, today).await?;
    let disputes_previous =
        stats::disputes(store, registry, scope, org, period.previous, today).await?;
    // Counts only, every case of the scope's unit counted and small counts withheld, as for
    // township staff: the bulletin is read out at meetings.
    let all_cases = Scope {
        restricted: Restricted::All,
        ..scope.clone()
    };
    let drug = stats::drug(store, &all_cases, org, today, Some(stats::SMALL_CELL)).await?;
    let tasks = task_completion(store, scope, org, period.days).await?;
    Ok(Bulletin {
        period: period.name.clone(),
        from: period.days.from.to_string(),
        to: period.days.to.to_string(),
        previous_period: period.previous_name.clone(),
        previous: period.previous.into(),
        org_id: org.id.clone(),
        org_name: org.name.clone(),
        org_level: org.level,
        state: BulletinState::Draft,
        revision: None,
        published_by: None,
        published_at: None,
        reason: None,
        computed_at: now,
        rules: *rules,
        min_interviews: stats::MIN_INTERVIEWS,
        rankings,
        worries,
        disputes,
        disputes_previous,
        tasks,
        drug,
    })
}

/// Per child of `org` and then `org` itself: the tasks due in `days` and those done.
async fn task_completion(
    store: &dyn Store,
    scope: &Scope,
    org: &OrgUnit,
    days: Days,
) -> Result<Vec<TaskCompletion>> {
    let held = tasks::in_scope(store, scope, org)
        .await
        .map_err(|e| match e {
            tasks::TaskError::Store(e) => BulletinError::Store(e),
            other => BulletinError::Store(StoreError::Corrupt(other.to_string())),
        })?;
    let mut units: Vec<OrgUnit> = store
        .org_units()
        .await?
        .into_iter()
        .filter(|u| u.parent_id.as_deref() == Some(org.id.as_str()))
        .collect();
    units.sort_by(|a, b| a.path.cmp(&b.path));
    units.push(org.clone());
    Ok(units
        .into_iter()
        .map(|unit| {
            let due: Vec<&tasks::Placed> = held
                .iter()
                .filter(|p| p.org_path.starts_with(&unit.path))
                .filter(|p| p.task.status != gridsync_core::task::Status::Cancelled)
                .filter(|p| Day::parse(&p.task.due).is_some_and(|d| d >= days.from && d <= days.to))
                .collect();
            let done = due.iter().filter(|p| p.task.is_done()).count() as i64;
            let due = due.len() as i64;
            TaskCompletion {
                org_id: unit.id,
                name: unit.name,
                level: unit.level,
                due,
                done,
                share: (due > 0).then(|| (done as f64 / due as f64 * 1000.0).round() / 1000.0),
            }
        })
        .collect())
}

/// Who publishes a bulletin, for its row and the audit log.
#[derive(Debug, Clone, Copy)]
pub struct Publisher<'a> {
    pub user: &'a str,
    pub device: Option<&'a str>,
    /// `api` or `demo`.
    pub via: &'static str,
}

/// Draws up the bulletin of `request` now and keeps it, audited, as its first revision, or
/// with a `reason` as the next one: the figures are frozen as counted here.
pub async fn publish(
    store: &dyn Store,
    registry: &Registry,
    scope: &Scope,
    request: &Request<'_>,
    by: Publisher<'_>,
    reason: Option<&str>,
) -> Result<Bulletin> {
    if request.period.days.from > request.today {
        return Err(BulletinError::NotBegun(request.period.name.clone()));
    }
    let bulletin = draft(store, registry, scope, request).await?;
    let figures = serde_json::to_string(&bulletin)
        .map_err(|e| StoreError::Corrupt(format!("bulletin figures that do not serialise: {e}")))?;
    let (org, period) = (&request.org.id, &request.period.name);
    store
        .publish_bulletin(
            &NewBulletin {
                org_id: org,
                period,
                figures: &figures,
                reason,
                by: by.user,
                at: request.now,
            },
            &AuditEntry {
                at: request.now,
                user_id: Some(by.user.to_owned()),
                device_id: by.device.map(str::to_owned),
                action: if reason.is_some() {
                    "reissue_bulletin"
                } else {
                    "publish_bulletin"
                }
                .to_owned(),
                doc_id: None,
                detail: json!({
                    "org_id": org, "period": period, "reason": reason, "via": by.via,
                }),
            },
        )
        .await?;
    let stored = store
        .bulletin(org, period)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("the bulletin of {org} for {period}")))?;
    Bulletin::from_stored(&stored)
}

/// Ranks `units` on satisfaction as printed (to 0.1), leaving out those with too few
/// interviews, and applies `rule` to the ranks.
fn ranking(group: Group, units: Vec<CanvassUnit>, rule: Option<GroupRule>) -> Ranking {
    let mut units: Vec<RankedUnit> = units
        .into_iter()
        .map(|mut unit| {
            // Ranked again below, among the units with enough interviews only.
            (unit.rank, unit.rank_best, unit.rank_worst) = (None, None, None);
            RankedUnit {
                unit,
                yellow_card: false,
                advanced_barred: false,
            }
        })
        .collect();
    let ranked: Vec<usize> = (0..units.len())
        .filter(|&i| !units[i].unit.few_interviews && units[i].unit.satisfaction.is_some())
        .collect();
    let estimates: Vec<Wilson> = ranked
        .iter()
        .filter_map(|&i| units[i].unit.satisfaction)
        .map(|e| Wilson {
            share: e.index / 100.0,
            low: e.low / 100.0,
            high: e.high / 100.0,
        })
        .collect();
    let n = ranked.len() as u32;
    for (&i, r) in ranked.iter().zip(stats::rank(&estimates)) {
        let u = &mut units[i].unit;
        u.rank = Some(r.rank);
        u.rank_best = Some(r.best);
        u.rank_worst = Some(r.worst);
    }
    let cards = rule.map_or(0, |r| r.yellow_cards.min(n.saturating_sub(1)));
    if let Some(rule) = rule {
        for u in &mut units {
            match u.unit.rank {
                Some(rank) => {
                    // Ranks n - cards + 1 to n: ties at the line share the card.
                    u.yellow_card = rank + cards > n;
                    u.advanced_barred = rule.advanced_within.is_some_and(|a| rank > a);
                }
                // No rank, no card; and nothing to show it may be rated advanced.
                None => u.advanced_barred = rule.advanced_within.is_some(),
            }
        }
    }
    units.sort_by_key(|u| u.unit.rank.unwrap_or(u32::MAX));
    Ranking {
        group: group.as_str().to_owned(),
        rule,
        ranked: n,
        yellow_cards: cards,
        units,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{Estimate, PreviousFigures};

    fn period(s: &str) -> (String, String, String, String, String) {
        let p = BulletinPeriod::parse(s).expect(s);
        (
            p.name,
            p.days.from.to_string(),
            p.days.to.to_string(),
            p.previous_name,
            p.previous.from.to_string(),
        )
    }

    #[test]
    fn a_period_is_a_month_a_quarter_or_a_year_with_the_one_before_it() {
        assert_eq!(
            period("2026-11"),
            (
                "2026-11".into(),
                "2026-11-01".into(),
                "2026-11-30".into(),
                "2026-10".into(),
                "2026-10-01".into()
            )
        );
        assert_eq!(period("2028-02").2, "2028-02-29");
        assert_eq!(period("2027-01").3, "2026-12");
        assert_eq!(
            period("2026-Q1"),
            (
                "2026-Q1".into(),
                "2026-01-01".into(),
                "2026-03-31".into(),
                "2025-Q4".into(),
                "2025-10-01".into()
            )
        );
        assert_eq!(
            period("2026"),
            (
                "2026".into(),
                "2026-01-01".into(),
                "2026-12-31".into(),
                "2025".into(),
                "2025-01-01".into()
            )
        );
        for bad in [
            "",
            "2026-13",
            "2026-00",
            "2026-Q5",
            "2026-Q0",
            "26-11",
            "2026-1",
            "2026-11-01",
            "1999",
            "２０２６",
            "2026-q1",
            "+2026",
            "2026-",
        ] {
            assert_eq!(BulletinPeriod::parse(bad), None, "{bad:?}");
        }
    }

    fn canvass_unit(id: &str, interviews: i64, index: f64) -> CanvassUnit {
        CanvassUnit {
            org_id: id.into(),
            name: id.into(),
            level: Level::Township,
            interviews,
            satisfaction: Some(Estimate {
                index,
                low: index - 5.0,
                high: index + 5.0,
            }),
            safety: None,
            previous: PreviousFigures {
                interviews: 0,
                satisfaction: None,
                safety: None,
            },
            change: None,
            rank: None,
            rank_best: None,
            rank_worst: None,
            few_interviews: interviews < stats::MIN_INTERVIEWS,
        }
    }

    #[test]
    fn cards_never_reach_every_ranked_unit_when_too_few_interviews_leave_few_ranked() {
        let units = vec![
            canvass_unit("a", 100, 99.0),
            canvass_unit("b", 100, 80.0),
            canvass_unit("c", 9, 40.0),
        ];
        let rule = GroupRule {
            yellow_cards: 2,
            advanced_within: None,
        };
        let r = ranking(Group::Township, units, Some(rule));
        assert_eq!((r.ranked, r.yellow_cards), (2, 1));
        let cards: Vec<(&str, bool)> = r
            .units
            .iter()
            .map(|u| (u.unit.org_id.as_str(), u.yellow_card))
            .collect();
        assert_eq!(cards, [("a", false), ("b", true), ("c", false)]);
    }

    #[test]
    fn rules_that_cannot_apply_to_the_district_are_refused_with_their_place() {
        assert!(RankRules::default().problems(3, 2).is_empty());
        let paths = |rules: RankRules, t, s| -> Vec<String> {
            rules.problems(t, s).into_iter().map(|p| p.path).collect()
        };
        // Two yellow cards among two rural townships, one among one street.
        assert_eq!(
            paths(RankRules::default(), 2, 1),
            ["rural.yellow_cards", "urban.yellow_cards"]
        );
        let rule = |yellow_cards, advanced_within| GroupRule {
            yellow_cards,
            advanced_within,
        };
        let rules = |rural, urban| RankRules { rural, urban };
        assert_eq!(
            paths(rules(rule(1, Some(0)), rule(0, None)), 4, 2),
            ["rural.advanced_within"]
        );
        assert_eq!(
            paths(rules(rule(1, Some(5)), rule(0, None)), 4, 2),
            ["rural.advanced_within"]
        );
        // Rank 4 of 4 both carded and free to be advanced.
        assert_eq!(
            paths(rules(rule(1, Some(4)), rule(0, None)), 4, 2),
            ["rural.advanced_within"]
        );
        assert!(paths(rules(rule(1, Some(3)), rule(0, Some(2))), 4, 2).is_empty());
        // Numbers near u32::MAX are refused, not added into an overflow.
        assert_eq!(
            paths(rules(rule(0, Some(4)), rule(u32::MAX, None)), 4, 2),
            ["urban.yellow_cards"]
        );
        let huge = rules(rule(u32::MAX, Some(u32::MAX)), rule(0, None));
        assert_eq!(
            paths(huge, 4, 2),
            ["rural.yellow_cards", "rural.advanced_within"]
        );
        // No streets: no yellow card for them can apply, and none is asked for.
        assert!(paths(rules(rule(2, None), rule(0, None)), 4, 0).is_empty());
    }
}
