//! Statistics against figures computed by hand, on SQLite and Postgres: satisfaction and safety
//! indexes with their Wilson intervals, ranks where intervals overlap, the previous period,
//! worries, dispute and drug-control figures; and the HTTP answers: scope, roles, bad input.

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use gridsync_core::DocId;
use gridsync_core::report::{Editor, ReportDoc};
use gridsync_fixtures::fixture::Fixture;
use gridsync_fixtures::org::OrgTree;
use gridsync_server::config::Config;
use gridsync_server::http::{AppState, app};
use gridsync_server::scope::{Role, Scope};
use gridsync_server::stats::{self, Day, Days, Group};
use gridsync_server::store::{Level, OrgUnit, Store, Writer};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use support::http::add_users_with_devices;
use support::{
    TestStore, admin, admin_report, file_report, home_visit, ingest, ingest_published, is_acked,
    object, path_of, publish_schema, push_all, registry, street_patrol, versioned_report,
};
use tower::ServiceExt;

on_both_backends!(
    canvass_indexes_intervals_ranks_and_worries_match_hand_computed_values,
    streets_are_ranked_apart_from_townships,
    reports_pushed_together_are_each_counted,
    dispute_figures_match_hand_computed_values,
    drug_figures_count_overdue_visits_and_due_tests,
    small_drug_counts_are_withheld_when_asked_and_zero_stays_zero,
    figures_follow_edits_and_count_only_the_scope,
    an_edited_interview_is_counted_by_its_new_answers_and_worries_whatever_the_edit_touched,
);
on_both_test_stores!(
    stats_endpoints_answer_within_the_callers_scope,
    drug_stats_are_refused_to_grid_workers_and_cadres,
    township_staff_get_drug_counts_per_township_only_with_small_cells_withheld,
    bad_stats_parameters_are_answered_400_or_404,
    any_kind_is_counted_per_unit_and_status_including_one_published_at_runtime,
    a_restricted_published_kinds_reports_are_counted_only_for_who_may_see_them,
);

/// Adds townships t2 (v2, g4) and t3 (v3, g5) to the support tree.
async fn seed_more(store: &dyn Store) {
    let tree = OrgTree::standard()
        .clone()
        .unit("t2", "d", Level::Township, "西河镇")
        .unit("v2", "t2", Level::Village, "下庄村")
        .unit("g4", "v2", Level::Grid, "四网格")
        .unit("t3", "d", Level::Township, "南山乡")
        .unit("v3", "t3", Level::Village, "石门村")
        .unit("g5", "v3", Level::Grid, "五网格");
    Fixture::new(tree).seed(store).await.expect("seed");
}

fn unit(id: &str, level: Level, path: &str) -> OrgUnit {
    OrgUnit {
        id: id.into(),
        parent_id: None,
        level,
        name: id.into(),
        path: path.into(),
    }
}

fn district() -> OrgUnit {
    unit("d", Level::District, "/d/")
}

fn days(from: &str, to: &str) -> Days {
    Days {
        from: Day::parse(from).unwrap(),
        to: Day::parse(to).unwrap(),
    }
}

fn everything() -> Scope {
    Scope::for_role("admin", Role::DistrictAdmin, "/d/")
}

/// A canvass interview: satisfaction answers (police, courts, mediation, services), safety
/// answers (overall, night), worries, date.
async fn interview(
    store: &dyn Store,
    id: u128,
    grid: &str,
    sat: [&str; 4],
    safe: [&str; 2],
    worries: &[&str],
    on: &str,
) {
    let fields = interview_fields(sat, safe, worries, on);
    file_report(store, id, "satisfaction_canvass", grid, fields, &[]).await;
}

/// The fields of a canvass interview on day `on` with these answers and worries.
fn interview_fields(sat: [&str; 4], safe: [&str; 2], worries: &[&str], on: &str) -> Value {
    let mut fields = json!({
        "household_type": "local_resident",
        "canvasser": "admin",
        "interviewed_at": format!("{on}T10:00:00+08:00"),
    });
    let names = [
        "satisfaction_police",
        "satisfaction_courts",
        "satisfaction_mediation",
        "satisfaction_services",
        "safety_overall",
        "safety_night",
    ];
    for (name, answer) in names.iter().zip(sat.iter().chain(safe.iter())) {
        if !answer.is_empty() {
            fields[*name] = json!(answer);
        }
    }
    if !worries.is_empty() {
        fields["worries"] = json!(worries);
    }
    fields
}

/// t1: 11 interviews in October 2026, 10 with a satisfaction answer, 8 of them satisfied (two
/// exactly at a mean of 4, one after leaving out "don't know"), 4 in September (2 satisfied);
/// t2: 5 of 5 satisfied; t3: 2 of 10; s2 (a street): 3 of 3; one November interview.
async fn seed_canvass(store: &dyn Store) {
    seed_more(store).await;
    let oct = "2026-10-15";
    let mut id = 1_000;
    let mut next = || {
        id += 1;
        id
    };
    // t1, satisfied: 5 plain, mean exactly 4 twice, one with "don't know" left out.
    for _ in 0..5 {
        interview(store, next(), "g1", ["5", "4", "", ""], ["5", ""], &[], oct).await;
    }
    interview(
        store,
        next(),
        "g1",
        ["5", "3", "", ""],
        ["4", ""],
        &["fraud"],
        oct,
    )
    .await;
    interview(
        store,
        next(),
        "g2",
        ["4", "4", "4", "4"],
        ["5", "5"],
        &["fraud", "traffic"],
        oct,
    )
    .await;
    interview(
        store,
        next(),
        "g2",
        ["4", "dont_know", "", ""],
        ["4", ""],
        &["fraud"],
        oct,
    )
    .await;
    // t1, not satisfied: means 3.67 and 2.
    interview(
        store,
        next(),
        "g2",
        ["4", "3", "4", ""],
        ["2", "2"],
        &[],
        oct,
    )
    .await;
    interview(store, next(), "g2", ["2", "", "", ""], ["5", ""], &[], oct).await;
    // t1, no answer to any satisfaction question: an interview, but not in the index.
    interview(
        store,
        next(),
        "g1",
        ["dont_know", "dont_know", "", ""],
        ["dont_know", ""],
        &[],
        oct,
    )
    .await;
    // t1 in September: 2 of 4 satisfied.
    for answer in ["5", "5", "1", "2"] {
        interview(
            store,
            next(),
            "g1",
            [answer, "", "", ""],
            [answer, ""],
            &[],
            "2026-09-15",
        )
        .await;
    }
    // t1 in November: outside the period.
    interview(
        store,
        next(),
        "g1",
        ["1", "", "", ""],
        ["1", ""],
        &["fraud"],
        "2026-11-01",
    )
    .await;
    // t2: 5 of 5.
    for _ in 0..5 {
        interview(store, next(), "g4", ["5", "", "", ""], ["5", ""], &[], oct).await;
    }
    // t3: 2 of 10.
    for i in 0..10 {
        let answer = if i < 2 { "4" } else { "3" };
        let worries: &[&str] = match i {
            0 => &["fraud"],
            1 | 2 => &["public_order"],
            _ => &[],
        };
        interview(
            store,
            next(),
            "g5",
            [answer, "", "", ""],
            [answer, ""],
            worries,
            oct,
        )
        .await;
    }
    // s2, a street: 3 of 3.
    for _ in 0..3 {
        interview(store, next(), "g3", ["5", "", "", ""], ["5", ""], &[], oct).await;
    }
}

fn estimate(v: &Value) -> (f64, f64, f64) {
    (
        v["index"].as_f64().expect("index"),
        v["low"].as_f64().expect("low"),
        v["high"].as_f64().expect("high"),
    )
}

fn by_id<'a>(units: &'a [Value], id: &str) -> &'a Value {
    units
        .iter()
        .find(|u| u["org_id"] == id)
        .unwrap_or_else(|| panic!("no unit {id} in {units:?}"))
}

async fn canvass_indexes_intervals_ranks_and_worries_match_hand_computed_values(store: &dyn Store) {
    seed_canvass(store).await;
    let v = october_in_district(store, Group::Township).await;
    assert_eq!(
        v["previous"],
        json!({"from": "2026-08-31", "to": "2026-09-30"})
    );
    assert_eq!(v["group"], "township");
    let units = v["units"].as_array().unwrap();
    let ids: Vec<&str> = units
        .iter()
        .map(|u| u["org_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["t1", "t2", "t3"], "townships only, by path");

    // t1: 8 satisfied of 10 answering. Wilson (z = 1.96): centre (0.8 + 1.92073/20) / 1.384146
    // = 0.64733, half 1.95996 / 1.384146 * sqrt(0.016 + 0.0096037) = 0.22665.
    let t1 = by_id(units, "t1");
    assert_eq!(t1["interviews"], 11);
    assert_eq!(estimate(&t1["satisfaction"]), (80.0, 49.0, 94.3));
    // Safety: 10 answering (one "don't know" only), 9 with a mean of at least 4 (one answered
    // 2, 2): Wilson 59.6–98.2.
    assert_eq!(estimate(&t1["safety"]), (90.0, 59.6, 98.2));
    // September: 2 of 4 (Wilson 15.0–85.0); the change is 80 - 50 = 30 points.
    assert_eq!(t1["previous"]["interviews"], 4);
    assert_eq!(
        estimate(&t1["previous"]["satisfaction"]),
        (50.0, 15.0, 85.0)
    );
    assert_eq!(t1["change"]["satisfaction"], 30.0);
    assert_eq!(t1["change"]["safety"], 40.0);
    assert_eq!(t1["few_interviews"], true);

    // t2: 5 of 5, Wilson 56.6–100; t3: 2 of 10, Wilson 5.7–51.0. The intervals overlap:
    // t2 (56.6–100) with t1 (49.0–94.3); t1 with t3 (5.7–51.0); t2 lies wholly above t3.
    let t2 = by_id(units, "t2");
    let t3 = by_id(units, "t3");
    assert_eq!(estimate(&t2["satisfaction"]), (100.0, 56.6, 100.0));
    assert_eq!(estimate(&t3["satisfaction"]), (20.0, 5.7, 51.0));
    assert_eq!(t2["change"], Value::Null, "no September interviews in t2");
    let ranks = |u: &Value| {
        (
            u["rank"].clone(),
            u["rank_best"].clone(),
            u["rank_worst"].clone(),
        )
    };
    // best = 1 + units whose low is above its high; worst = units whose high is not below its low.
    assert_eq!(ranks(t2), (json!(1), json!(1), json!(2)));
    assert_eq!(ranks(t1), (json!(2), json!(1), json!(3)));
    assert_eq!(ranks(t3), (json!(3), json!(2), json!(3)));

    // Worries of the 29 October interviews under the district (the street's included).
    assert_eq!(
        v["worries"],
        json!([
            {"worry": "fraud", "label": {"zh": "电信网络诈骗", "en": "Telecom and online fraud"},
             "count": 4, "share": 0.138},
            {"worry": "public_order", "label": {"zh": "社会治安", "en": "Public order"},
             "count": 2, "share": 0.069},
            {"worry": "traffic", "label": {"zh": "交通安全", "en": "Traffic"},
             "count": 1, "share": 0.034},
        ])
    );
}

async fn streets_are_ranked_apart_from_townships(store: &dyn Store) {
    seed_canvass(store).await;
    let v = october_in_district(store, Group::Street).await;
    let units = v["units"].as_array().unwrap();
    assert_eq!(units.len(), 1);
    // 3 of 3: Wilson 43.9–100; ranked first among streets, whatever the townships score.
    assert_eq!(estimate(&units[0]["satisfaction"]), (100.0, 43.9, 100.0));
    assert_eq!(units[0]["rank"], 1);
    assert_eq!(units[0]["rank_worst"], 1);
    // The villages of t1 by default below a township: v1 alone.
    let t1 = unit("t1", Level::Township, "/d/t1/");
    let villages = stats::canvass(
        store,
        &registry(),
        &everything(),
        &t1,
        Group::below(Level::Township),
        days("2026-10-01", "2026-10-31"),
    )
    .await
    .expect("canvass");
    assert_eq!(villages.group, "village");
    assert_eq!(villages.units.len(), 1);
    assert_eq!(villages.units[0].interviews, 11);
}

/// New reports in one push are written many to a statement (on Postgres their statistics rows
/// too, from the statement's new rows): each is counted once, with its own answers and worries.
async fn reports_pushed_together_are_each_counted(store: &dyn Store) {
    seed_more(store).await;
    let oct = "2026-10-15";
    let answers: [([&str; 4], &[&str]); 6] = [
        (["5", "5", "", ""], &["fraud"]),
        (["4", "4", "", ""], &["fraud", "traffic"]),
        (["5", "4", "", ""], &[]),
        (["4", "5", "", ""], &["fraud"]),
        (["2", "3", "", ""], &[]),
        (["1", "2", "", ""], &["public_order"]),
    ];
    let mut docs: Vec<ReportDoc> = answers
        .iter()
        .enumerate()
        .map(|(i, (sat, worries))| {
            let fields = interview_fields(*sat, ["", ""], worries, oct);
            admin_report(
                7_000 + i as u128,
                "satisfaction_canvass",
                "g1",
                fields,
                vec![],
            )
        })
        .collect();
    let fields = json!({"parties": "张三、李四", "description": "纠纷", "status": "mediating",
        "found_on": oct, "risk_level": "high", "category": "neighbour"});
    docs.push(admin_report(7_100, "dispute_check", "g1", fields, vec![]));
    let mut all: Vec<&mut ReportDoc> = docs.iter_mut().collect();
    let result = ingest(store, &admin(), &push_all(&mut all))
        .await
        .expect("ingest");
    assert!(
        result.docs.iter().all(|d| is_acked(&d.outcome)),
        "{result:?}"
    );

    let october = days("2026-10-01", "2026-10-31");
    let v = october_in_district(store, Group::Township).await;
    let t1 = by_id(v["units"].as_array().unwrap(), "t1");
    assert_eq!(t1["interviews"], 6);
    assert_eq!(estimate(&t1["satisfaction"]).0, 66.7, "4 of 6 satisfied");
    let worries: Vec<(&str, i64)> = v["worries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["worry"].as_str().unwrap(), w["count"].as_i64().unwrap()))
        .collect();
    assert_eq!(worries, [("fraud", 3), ("public_order", 1), ("traffic", 1)]);

    let t1 = unit("t1", Level::Township, "/d/t1/");
    let disputes = stats::disputes(
        store,
        &registry(),
        &everything(),
        &t1,
        october,
        Day::parse("2026-11-28").unwrap(),
    )
    .await
    .expect("disputes");
    let v = serde_json::to_value(&disputes).unwrap();
    assert_eq!(v["total"]["found"], 1);
    assert_eq!(
        v["total"]["open_by_risk"],
        json!({"low": 0, "medium": 0, "high": 1})
    );
}

async fn dispute(store: &dyn Store, id: u128, grid: &str, fields: Value) {
    let mut all = json!({"parties": "张三、李四", "description": "纠纷"});
    for (k, v) in object(fields) {
        all[k] = v;
    }
    file_report(store, id, "dispute_check", grid, all, &[]).await;
}

async fn dispute_figures_match_hand_computed_values(store: &dyn Store) {
    seed_more(store).await;
    let resolved = |found: &str, on: &str, risk: &str, category: &str| {
        json!({"status": "resolved", "found_on": found, "resolved_on": on, "risk_level": risk,
               "category": category, "agreement": "和解"})
    };
    // Four resolved in 3, 10, 5 and 2 days: median (3 + 5) / 2 = 4.
    dispute(
        store,
        1,
        "g1",
        resolved("2026-10-01", "2026-10-04", "low", "neighbour"),
    )
    .await;
    dispute(
        store,
        2,
        "g1",
        resolved("2026-10-02", "2026-10-12", "medium", "family_marriage"),
    )
    .await;
    dispute(
        store,
        3,
        "g2",
        resolved("2026-10-05", "2026-10-10", "low", "neighbour"),
    )
    .await;
    dispute(
        store,
        4,
        "g2",
        resolved("2026-10-06", "2026-10-08", "high", "other"),
    )
    .await;
    dispute(
        store,
        5,
        "g1",
        json!({"status": "referred", "found_on": "2026-10-07",
        "risk_level": "high", "category": "labour_wages"}),
    )
    .await;
    dispute(
        store,
        6,
        "g1",
        json!({"status": "escalated", "found_on": "2026-10-08",
        "risk_level": "high", "category": "other"}),
    )
    .await;
    // Open: one follow-up overdue (before 2026-11-28), one not.
    dispute(
        store,
        7,
        "g1",
        json!({"status": "mediating", "found_on": "2026-10-09",
        "risk_level": "high", "category": "neighbour", "next_follow_up": "2026-11-20"}),
    )
    .await;
    dispute(
        store,
        8,
        "g2",
        json!({"status": "reported", "found_on": "2026-10-10",
        "risk_level": "medium", "category": "land_property", "next_follow_up": "2026-12-01"}),
    )
    .await;
    // Outside the period, and outside t1.
    dispute(
        store,
        9,
        "g1",
        json!({"status": "reported", "found_on": "2026-09-30",
        "risk_level": "high", "category": "neighbour"}),
    )
    .await;
    dispute(
        store,
        10,
        "g3",
        json!({"status": "reported", "found_on": "2026-10-10",
        "risk_level": "high", "category": "neighbour"}),
    )
    .await;

    let t1 = unit("t1", Level::Township, "/d/t1/");
    let stats = stats::disputes(
        store,
        &registry(),
        &everything(),
        &t1,
        days("2026-10-01", "2026-10-31"),
        Day::parse("2026-11-28").unwrap(),
    )
    .await
    .expect("disputes");
    let v = serde_json::to_value(&stats).unwrap();
    let total = &v["total"];
    assert_eq!(total["org_id"], "t1");
    assert_eq!(total["found"], 8);
    assert_eq!(total["open"], 2);
    assert_eq!(
        total["open_by_risk"],
        json!({"low": 0, "medium": 1, "high": 1})
    );
    assert_eq!(total["open_by_category"]["neighbour"], 1);
    assert_eq!(total["open_by_category"]["land_property"], 1);
    assert_eq!(total["open_by_category"]["other"], 0);
    assert_eq!(
        total["by_status"],
        json!({"reported": 1, "mediating": 1, "resolved": 4, "referred": 1, "escalated": 1})
    );
    // 4 resolved of 6 closed: Wilson centre (0.6667 + 0.3201) / 1.6403 = 0.6016, half
    // 1.95996 / 1.6403 * sqrt(0.037037 + 0.026677) = 0.3016.
    assert_eq!(
        total["resolved_in_village"],
        json!({"share": 0.667, "low": 0.3, "high": 0.903})
    );
    assert_eq!(total["median_days_to_resolution"], 4.0);
    assert_eq!(total["overdue_follow_ups"], 1);
    // The one child of t1 holds every case.
    let units = v["units"].as_array().unwrap();
    assert_eq!(units.len(), 1);
    assert_eq!(units[0]["org_id"], "v1");
    assert_eq!(units[0]["found"], 8);
}

async fn drug_case(
    store: &dyn Store,
    id: u128,
    grid: &str,
    status: &str,
    start: &str,
    visits: &[Value],
) {
    let fields = json!({"subject_name": "王五", "subject_id_number": "110101199001011234",
        "programme": "community_rehabilitation", "programme_start": start,
        "assigned_worker": "w1", "status": status});
    file_report(store, id, "drug_control_case", grid, fields, visits).await;
}

fn visit(date: &str, test: &str, next: Option<&str>) -> Value {
    let mut v = json!({"date": date, "visitor": "w1", "test": test});
    if test != "none" {
        v["test_result"] = json!("negative");
    }
    if let Some(next) = next {
        v["next_visit_due"] = json!(next);
    }
    v
}

async fn seed_drug(store: &dyn Store) {
    seed_more(store).await;
    // Today is 2026-11-28: visits overdue before 2026-10-29 or past their due date, tests due
    // when none since 2026-08-30.
    // A: visited and tested 11-01, but the next visit was due 11-20: overdue, no test due.
    drug_case(
        store,
        1,
        "g1",
        "active",
        "2026-01-01",
        &[visit("2026-11-01", "urine", Some("2026-11-20"))],
    )
    .await;
    // B: visited 11-15 (next 12-15), last tested 07-01: test due.
    drug_case(
        store,
        2,
        "g1",
        "active",
        "2026-01-01",
        &[
            visit("2026-07-01", "hair", Some("2026-08-01")),
            visit("2026-11-15", "none", Some("2026-12-15")),
        ],
    )
    .await;
    // C: started 11-20, never visited (not yet 30 days) nor tested: test due.
    drug_case(store, 3, "g2", "active", "2026-11-20", &[]).await;
    // D: started in June, never visited: overdue and test due.
    drug_case(store, 4, "g2", "active", "2026-06-01", &[]).await;
    // E: relapsed; F: completed, long unvisited, counts for nothing.
    drug_case(store, 5, "g1", "relapsed", "2026-01-01", &[]).await;
    drug_case(
        store,
        6,
        "g1",
        "completed",
        "2025-01-01",
        &[visit("2025-06-01", "none", None)],
    )
    .await;
    // G, in the street s2: never visited since January.
    drug_case(store, 7, "g3", "active", "2026-01-01", &[]).await;
}

async fn drug_figures_count_overdue_visits_and_due_tests(store: &dyn Store) {
    seed_drug(store).await;
    let today = Day::parse("2026-11-28").unwrap();
    let stats = stats::drug(store, &everything(), &district(), today, None)
        .await
        .expect("drug");
    let v = serde_json::to_value(&stats).unwrap();
    assert_eq!(v["as_of"], "2026-11-28");
    assert_eq!(v["suppressed_below"], Value::Null, "exact counts");
    let figures = |u: &Value| {
        (
            u["org_id"].as_str().unwrap().to_owned(),
            u["active"].as_i64().unwrap(),
            u["relapsed"].as_i64().unwrap(),
            u["visits_overdue"].as_i64().unwrap(),
            u["tests_due"].as_i64().unwrap(),
        )
    };
    let units: Vec<_> = v["units"].as_array().unwrap().iter().map(figures).collect();
    assert_eq!(
        units,
        [
            ("s2".to_owned(), 1, 0, 1, 1),
            ("t1".to_owned(), 4, 1, 2, 3),
            ("t2".to_owned(), 0, 0, 0, 0),
            ("t3".to_owned(), 0, 0, 0, 0),
        ]
    );
    assert_eq!(figures(&v["total"]), ("d".to_owned(), 5, 1, 3, 4));
    // A drug-control officer of t1 counts the cases of t1 only.
    let officer = Scope::for_role("o1", Role::DrugControlOfficer, path_of("t1"));
    let own = stats::drug(store, &officer, &district(), today, None)
        .await
        .expect("drug");
    assert_eq!(
        (own.total.active, own.total.visits_overdue),
        (Some(4), Some(2))
    );
}

async fn small_drug_counts_are_withheld_when_asked_and_zero_stays_zero(store: &dyn Store) {
    seed_drug(store).await;
    let today = Day::parse("2026-11-28").unwrap();
    let t1 = unit("t1", Level::Township, path_of("t1"));
    let counts = |u: &stats::DrugUnit| (u.active, u.relapsed, u.visits_overdue, u.tests_due);
    // t1: 4 active, 1 relapsed, 2 overdue, 3 tests due: every count between 1 and 4.
    let shown = stats::drug(store, &everything(), &t1, today, Some(stats::SMALL_CELL))
        .await
        .expect("drug");
    assert_eq!(shown.suppressed_below, Some(5));
    assert_eq!(counts(&shown.total), (None, None, None, None));
    assert_eq!(counts(&shown.units[0]), (None, None, None, None));
    // A fifth active case, not yet due anything: 5 is shown, and a township without cases
    // shows its zeros.
    drug_case(store, 8, "g2", "active", "2026-11-25", &[]).await;
    let shown = stats::drug(store, &everything(), &t1, today, Some(stats::SMALL_CELL))
        .await
        .expect("drug");
    assert_eq!(counts(&shown.total), (Some(5), None, None, None));
    let t2 = unit("t2", Level::Township, "/d/t2/");
    let empty = stats::drug(store, &everything(), &t2, today, Some(stats::SMALL_CELL))
        .await
        .expect("drug");
    assert_eq!(counts(&empty.total), (Some(0), Some(0), Some(0), Some(0)));
    // As JSON: a withheld count is null, beside `suppressed_below`.
    let v = serde_json::to_value(&shown).unwrap();
    assert_eq!(v["suppressed_below"], 5);
    assert_eq!(v["total"]["active"], 5);
    assert_eq!(v["total"]["relapsed"], Value::Null);
}

async fn figures_follow_edits_and_count_only_the_scope(store: &dyn Store) {
    seed_more(store).await;
    dispute(
        store,
        1,
        "g1",
        json!({"status": "mediating", "found_on": "2026-10-09",
        "risk_level": "high", "category": "neighbour"}),
    )
    .await;
    dispute(
        store,
        2,
        "g3",
        json!({"status": "mediating", "found_on": "2026-10-09",
        "risk_level": "high", "category": "neighbour"}),
    )
    .await;
    let today = Day::parse("2026-11-28").unwrap();
    let october = days("2026-10-01", "2026-10-31");
    let count = |scope: Scope| async move {
        stats::disputes(store, &registry(), &scope, &district(), october, today)
            .await
            .expect("disputes")
            .total
    };
    assert_eq!(count(everything()).await.open, 2);
    // A cadre of v1 sees only g1's case; the officer sees no dispute at all.
    assert_eq!(
        count(Scope::for_role("c1", Role::VillageCadre, path_of("v1")))
            .await
            .open,
        1
    );
    assert_eq!(
        count(Scope::for_role(
            "o1",
            Role::DrugControlOfficer,
            path_of("t1")
        ))
        .await
        .found,
        0
    );

    // An edit that resolves the case moves it from open to resolved at once.
    edit(
        store,
        1,
        json!({"status": "resolved", "resolved_on": "2026-10-19", "agreement": "和解"}),
    )
    .await;
    let total = count(everything()).await;
    assert_eq!((total.open, total.by_status["resolved"]), (1, 1));
    assert_eq!(total.median_days_to_resolution, Some(10.0));
}

/// The district's canvass figures for October 2026 by `group`, as the endpoint answers them.
async fn october_in_district(store: &dyn Store, group: Group) -> Value {
    let stats = stats::canvass(
        store,
        &registry(),
        &everything(),
        &district(),
        group,
        days("2026-10-01", "2026-10-31"),
    )
    .await
    .expect("canvass");
    serde_json::to_value(&stats).unwrap()
}

/// Edits report `id` to hold `fields` as the district admin, acknowledged.
async fn edit(store: &dyn Store, id: u128, fields: Value) {
    let mut doc = store
        .load_doc(&DocId::from_u128(id))
        .await
        .unwrap()
        .unwrap();
    let heads = doc.heads();
    doc.set_fields(&object(fields), &Editor::new("admin", 2_000))
        .unwrap();
    let push = gridsync_core::protocol::Push {
        docs: vec![gridsync_core::protocol::PushDoc {
            doc: doc.id(),
            changes: doc.changes_since(&heads),
        }],
    };
    let result = ingest(store, &admin(), &push).await.unwrap();
    assert!(is_acked(&result.docs[0].outcome));
}

/// An edit that no statistic reads leaves the figures as they were (Postgres keeps the report's
/// statistics row then); one of the worries alone, or of an answer, shows at once.
async fn an_edited_interview_is_counted_by_its_new_answers_and_worries_whatever_the_edit_touched(
    store: &dyn Store,
) {
    seed_more(store).await;
    let fields = interview_fields(["5", "5", "5", "5"], ["5", "5"], &["fraud"], "2026-10-15");
    file_report(store, 1, "satisfaction_canvass", "g1", fields, &[]).await;
    let figures = || async move {
        let v = october_in_district(store, Group::Township).await;
        let t1 = by_id(v["units"].as_array().unwrap(), "t1").clone();
        let worries: Vec<(String, i64)> = v["worries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| {
                (
                    w["worry"].as_str().unwrap().to_owned(),
                    w["count"].as_i64().unwrap(),
                )
            })
            .collect();
        (
            t1["interviews"].as_i64().unwrap(),
            t1["satisfaction"]["index"].as_f64().unwrap(),
            worries,
        )
    };
    let fraud = vec![("fraud".to_owned(), 1)];
    assert_eq!(figures().await, (1, 100.0, fraud.clone()));

    edit(store, 1, json!({"household_type": "migrant"})).await;
    assert_eq!(figures().await, (1, 100.0, fraud), "nothing counted moved");

    edit(store, 1, json!({"worries": ["traffic"]})).await;
    let traffic = vec![("traffic".to_owned(), 1)];
    assert_eq!(
        figures().await,
        (1, 100.0, traffic.clone()),
        "the worries alone"
    );

    edit(
        store,
        1,
        json!({"satisfaction_police": "1", "satisfaction_courts": "1",
            "satisfaction_mediation": "1", "satisfaction_services": "1"}),
    )
    .await;
    assert_eq!(
        figures().await,
        (1, 0.0, traffic),
        "the answers, worries kept"
    );
}

/// The app over a store with the extended tree and these users (id, role, unit).
async fn api(t: &TestStore) -> (axum::Router, AppState) {
    seed_more(t.store.as_ref()).await;
    add_users_with_devices(
        t.store.as_ref(),
        &[
            ("admin", Role::DistrictAdmin, "d"),
            ("w1", Role::GridWorker, "g1"),
            ("c1", Role::VillageCadre, "v1"),
            ("ts", Role::TownshipStaff, "t1"),
            ("o1", Role::DrugControlOfficer, "t1"),
        ],
    )
    .await;
    let state = AppState::new(t.store.clone(), Config::default())
        .await
        .expect("state");
    (app(state.clone()), state)
}

async fn get(app: &axum::Router, state: &AppState, user: &str, path: &str) -> (StatusCode, Value) {
    let token = state
        .keys
        .issue(user, &format!("dev-{user}"), "session")
        .await
        .expect("token");
    let req = Request::builder()
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn stats_endpoints_answer_within_the_callers_scope(t: &TestStore) {
    let (app, state) = api(t).await;
    seed_canvass(t.store.as_ref()).await;
    let october = "from=2026-10-01&to=2026-10-31";
    let (status, body) = get(
        &app,
        &state,
        "admin",
        &format!("/api/v1/stats/canvass?{october}"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["group"], "township");
    assert_eq!(body["units"].as_array().unwrap().len(), 3);
    // Township staff of t1: their township by default, its villages as units.
    let (status, body) = get(
        &app,
        &state,
        "ts",
        &format!("/api/v1/stats/canvass?{october}"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["group"], "village");
    assert_eq!(body["units"][0]["org_id"], "v1");
    assert_eq!(body["units"][0]["interviews"], 11);
    assert_eq!(body["worries"][0]["count"], 3, "t1's worries only");
    // Asking for the district, or another township, is a unit outside the scope: 404.
    let (status, body) = get(&app, &state, "ts", "/api/v1/stats/canvass?org=d").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (status, _) = get(&app, &state, "ts", "/api/v1/stats/disputes?org=t2").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = get(
        &app,
        &state,
        "ts",
        &format!("/api/v1/stats/disputes?{october}"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["total"]["org_id"], "t1");
    // Township staff count the drug cases of their township (counts only, no names).
    let (status, body) = get(&app, &state, "ts", "/api/v1/stats/drug").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["units"].as_array().unwrap().len(), 1);
    assert_eq!(body["total"]["org_id"], "t1");
}

async fn drug_stats_are_refused_to_grid_workers_and_cadres(t: &TestStore) {
    let (app, state) = api(t).await;
    for user in ["w1", "c1"] {
        let (status, body) = get(&app, &state, user, "/api/v1/stats/drug").await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("forbidden")),
            "{user}"
        );
    }
    for user in ["o1", "admin"] {
        let (status, _) = get(&app, &state, user, "/api/v1/stats/drug").await;
        assert_eq!(status, StatusCode::OK, "{user}");
    }
}

async fn bad_stats_parameters_are_answered_400_or_404(t: &TestStore) {
    let (app, state) = api(t).await;
    for path in [
        "/api/v1/stats/canvass?from=2026-13-01",
        "/api/v1/stats/canvass?to=yesterday",
        "/api/v1/stats/canvass?from=2026-10-31&to=2026-10-01",
        "/api/v1/stats/canvass?group=county",
        "/api/v1/stats/canvass?color=red",
        "/api/v1/stats/disputes?from=2026-02-29",
        "/api/v1/stats/drug?from=2026-10-01",
    ] {
        let (status, body) = get(&app, &state, "admin", path).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("bad_request")),
            "{path}: {body}"
        );
    }
    let (status, _) = get(&app, &state, "admin", "/api/v1/stats/drug?org=nowhere").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// What `/api/v1/stats/drug` answers a caller for a unit.
enum Answer {
    /// 200: `suppressed_below`, and the total's active and relapsed counts (`None` for null).
    Counts(Option<i64>, Option<i64>, Option<i64>),
    /// A problem with this status and code.
    Refused(StatusCode, &'static str),
}

/// Issue 17, finding 4. DOMAIN.md: only the assigned worker, drug-control officers and admins
/// see drug-control cases; township and street staff oversee coverage per township. Each role
/// against each unit: exact counts for those who may read the cases, the own township only and
/// small cells withheld for the staff, 403 for everyone else.
async fn township_staff_get_drug_counts_per_township_only_with_small_cells_withheld(t: &TestStore) {
    let (app, state) = api(t).await;
    seed_drug(t.store.as_ref()).await;
    add_users_with_devices(
        t.store.as_ref(),
        &[
            ("ss", Role::TownshipStaff, "s2"),
            ("ts2", Role::TownshipStaff, "t2"),
        ],
    )
    .await;
    let ask = |user: &'static str, org: &'static str| {
        let (app, state) = (app.clone(), state.clone());
        async move { get(&app, &state, user, &format!("/api/v1/stats/drug?org={org}")).await }
    };
    use Answer::{Counts, Refused};
    let table = [
        // Township staff: their township, small cells withheld (4 active, 1 relapsed).
        ("ts", "t1", Counts(Some(5), None, None)),
        ("ts", "v1", Refused(StatusCode::FORBIDDEN, "unit_too_fine")),
        ("ts", "g1", Refused(StatusCode::FORBIDDEN, "unit_too_fine")),
        ("ts", "g2", Refused(StatusCode::FORBIDDEN, "unit_too_fine")),
        ("ts", "s2", Refused(StatusCode::NOT_FOUND, "not_found")),
        ("ts", "d", Refused(StatusCode::NOT_FOUND, "not_found")),
        // Street staff alike: one active case is withheld, zero relapses are not.
        ("ss", "s2", Counts(Some(5), None, Some(0))),
        ("ss", "c2", Refused(StatusCode::FORBIDDEN, "unit_too_fine")),
        ("ss", "g3", Refused(StatusCode::FORBIDDEN, "unit_too_fine")),
        // A township without cases: zeros are exact.
        ("ts2", "t2", Counts(Some(5), Some(0), Some(0))),
        ("ts2", "v2", Refused(StatusCode::FORBIDDEN, "unit_too_fine")),
        ("ts2", "g4", Refused(StatusCode::FORBIDDEN, "unit_too_fine")),
        // The drug-control officer and the admin read the cases: exact counts at any level.
        ("o1", "t1", Counts(None, Some(4), Some(1))),
        ("o1", "v1", Counts(None, Some(4), Some(1))),
        ("o1", "g1", Counts(None, Some(2), Some(1))),
        ("o1", "g2", Counts(None, Some(2), Some(0))),
        ("admin", "d", Counts(None, Some(5), Some(1))),
        ("admin", "g3", Counts(None, Some(1), Some(0))),
        ("admin", "g1", Counts(None, Some(2), Some(1))),
        // Grid workers and cadres get no drug counts at all.
        ("w1", "g1", Refused(StatusCode::FORBIDDEN, "forbidden")),
        ("c1", "v1", Refused(StatusCode::FORBIDDEN, "forbidden")),
        ("c1", "g1", Refused(StatusCode::FORBIDDEN, "forbidden")),
    ];
    for (user, org, want) in table {
        let (status, body) = ask(user, org).await;
        let (below, active, relapsed) = match want {
            Refused(want, code) => {
                assert_eq!(
                    (status, &body["code"]),
                    (want, &json!(code)),
                    "{user} {org}"
                );
                continue;
            }
            Counts(below, active, relapsed) => (below, active, relapsed),
        };
        assert_eq!(status, StatusCode::OK, "{user} {org}: {body}");
        assert_eq!(body["suppressed_below"], json!(below), "{user} {org}");
        assert_eq!(
            (&body["total"]["active"], &body["total"]["relapsed"]),
            (&json!(active), &json!(relapsed)),
            "{user} {org}: {body}"
        );
        // Every count shown to staff, per unit and in total, is 0 or at least 5.
        if below.is_some() {
            for u in body["units"]
                .as_array()
                .unwrap()
                .iter()
                .chain([&body["total"]])
            {
                for key in ["active", "relapsed", "visits_overdue", "tests_due"] {
                    let n = &u[key];
                    assert!(
                        n.is_null() || n == 0 || n.as_i64().is_some_and(|n| n >= 5),
                        "{user} {org} {key}: {n}"
                    );
                }
            }
        }
    }
    // Nothing else the staff can reach counts the cases: the report list of the kind is empty
    // (and so is its ledger: `export::a_ledger_holds_only_its_period_and_the_callers_scope`).
    let (status, list) = get(&app, &state, "ts", "/api/v1/reports?kind=drug_control_case").await;
    assert_eq!((status, &list["total"]), (StatusCode::OK, &json!(0)));
}

/// 15 October 2026 in China, as the server's clock: the day a published kind's report falls on.
const OCTOBER_15: i64 = 1_791_995_400;

/// Reports `(id, kind, grid, fields)` of version 1, stored on [`OCTOBER_15`].
async fn file_published(store: &dyn Store, reports: &[(u128, &str, &str, Value)]) {
    for (id, kind, grid, fields) in reports {
        let mut doc = versioned_report(*id, kind, 1, grid, fields.clone());
        let writer = Writer {
            now: OCTOBER_15,
            ..admin()
        };
        ingest_published(store, &writer, &push_all(&mut [&mut doc])).await;
    }
}

/// A unit's total and its counts by status, as the kind statistics answer them.
fn tally(unit: &Value) -> (String, i64, Value) {
    (
        unit["org_id"].as_str().expect("org_id").to_owned(),
        unit["total"].as_i64().expect("total"),
        unit["by_status"].clone(),
    )
}

async fn any_kind_is_counted_per_unit_and_status_including_one_published_at_runtime(t: &TestStore) {
    let (app, state) = api(t).await;
    let store = t.store.as_ref();
    publish_schema(store, street_patrol()).await;
    file_published(
        store,
        &[
            (
                1,
                "street_patrol",
                "g1",
                json!({"place": "桥头", "outcome": "handled"}),
            ),
            (
                2,
                "street_patrol",
                "g1",
                json!({"place": "桥头", "outcome": "handled"}),
            ),
            (
                3,
                "street_patrol",
                "g2",
                json!({"place": "菜场", "outcome": "fine"}),
            ),
            // No outcome yet: counted, under no status.
            (4, "street_patrol", "g2", json!({"place": "学校"})),
            (
                5,
                "street_patrol",
                "g4",
                json!({"place": "车站", "outcome": "reported"}),
            ),
            // In the street s2, which no township holds.
            (
                6,
                "street_patrol",
                "g3",
                json!({"place": "广场", "outcome": "fine"}),
            ),
        ],
    )
    .await;
    let october = "from=2026-10-01&to=2026-10-31";
    let (status, body) = get(
        &app,
        &state,
        "admin",
        &format!("/api/v1/stats/kinds/street_patrol?{october}"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (&body["kind"], &body["group"], &body["status_field"]),
        (
            &json!("street_patrol"),
            &json!("township"),
            &json!("outcome")
        )
    );
    assert_eq!(
        body["statuses"],
        json!([
            {"status": "fine", "label": {"zh": "正常", "en": "Fine"}},
            {"status": "handled", "label": {"zh": "已处置", "en": "Handled"}},
            {"status": "reported", "label": {"zh": "已上报", "en": "Reported"}},
        ])
    );
    let units: Vec<_> = body["units"]
        .as_array()
        .unwrap()
        .iter()
        .map(tally)
        .collect();
    let counts = |fine: i64, handled: i64, reported: i64| json!({"fine": fine, "handled": handled, "reported": reported});
    assert_eq!(
        units,
        [
            ("t1".to_owned(), 4, counts(1, 2, 0)),
            ("t2".to_owned(), 1, counts(0, 0, 1)),
            ("t3".to_owned(), 0, counts(0, 0, 0)),
        ]
    );
    assert_eq!(tally(&body["total"]), ("d".to_owned(), 6, counts(2, 2, 1)));

    // The grids of t1; and another period holds nothing.
    let (_, body) = get(
        &app,
        &state,
        "admin",
        &format!("/api/v1/stats/kinds/street_patrol?{october}&org=t1&group=grid"),
    )
    .await;
    let units: Vec<_> = body["units"]
        .as_array()
        .unwrap()
        .iter()
        .map(tally)
        .collect();
    assert_eq!(
        units,
        [
            ("g1".to_owned(), 2, counts(0, 2, 0)),
            ("g2".to_owned(), 2, counts(1, 0, 0)),
        ]
    );
    let (_, body) = get(
        &app,
        &state,
        "admin",
        "/api/v1/stats/kinds/street_patrol?from=2026-11-01&to=2026-11-30",
    )
    .await;
    assert_eq!(tally(&body["total"]), ("d".to_owned(), 0, counts(0, 0, 0)));

    // Version 2 adds an outcome: it is counted from then on, at 0 until a report has it.
    let mut v2 = street_patrol();
    v2["version"] = json!(2);
    v2["fields"][1]["choices"]
        .as_array_mut()
        .unwrap()
        .push(json!({"id": "escalated", "label": {"zh": "已移交", "en": "Escalated"}}));
    publish_schema(store, v2).await;
    let (_, body) = get(
        &app,
        &state,
        "ts",
        &format!("/api/v1/stats/kinds/street_patrol?{october}"),
    )
    .await;
    assert_eq!(body["group"], "village", "below the staff's township");
    assert_eq!(
        tally(&body["total"]),
        (
            "t1".to_owned(),
            4,
            json!({"fine": 1, "handled": 2, "reported": 0, "escalated": 0})
        )
    );

    // A built-in kind through the same endpoint, by its own date.
    let (status, body) = get(
        &app,
        &state,
        "admin",
        &format!("/api/v1/stats/kinds/dispute_check?{october}"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status_field"], "status");
    assert_eq!(body["total"]["total"], 0);
    assert_eq!(body["total"]["by_status"]["mediating"], 0);

    // An unknown kind, a unit outside the scope, bad parameters.
    let (status, body) = get(&app, &state, "admin", "/api/v1/stats/kinds/street_patrols").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (status, _) = get(
        &app,
        &state,
        "ts",
        "/api/v1/stats/kinds/street_patrol?org=t2",
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for query in ["group=county", "from=2026-02-30", "colour=red"] {
        let (status, body) = get(
            &app,
            &state,
            "admin",
            &format!("/api/v1/stats/kinds/street_patrol?{query}"),
        )
        .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("bad_request")),
            "{query}: {body}"
        );
    }
}

async fn a_restricted_published_kinds_reports_are_counted_only_for_who_may_see_them(t: &TestStore) {
    let (app, state) = api(t).await;
    let store = t.store.as_ref();
    publish_schema(store, home_visit()).await;
    file_published(
        store,
        &[
            (
                1,
                "home_visit",
                "g1",
                json!({"caseworker": "w1", "stage": "done"}),
            ),
            (
                2,
                "home_visit",
                "g2",
                json!({"caseworker": "w2", "stage": "planned"}),
            ),
            (
                3,
                "home_visit",
                "g3",
                json!({"caseworker": "w3", "stage": "done"}),
            ),
        ],
    )
    .await;
    let october = "from=2026-10-01&to=2026-10-31";
    // (user, org, total): the worker counts the visit assigned to them, cadres and township
    // staff none, the officer those of the township, the admin every one.
    for (user, org, total) in [
        ("w1", "g1", 1),
        ("c1", "v1", 0),
        ("ts", "t1", 0),
        ("o1", "t1", 2),
        ("admin", "t1", 2),
        ("admin", "d", 3),
    ] {
        let (status, body) = get(
            &app,
            &state,
            user,
            &format!("/api/v1/stats/kinds/home_visit?{october}&org={org}"),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{user}: {body}");
        assert_eq!(body["total"]["total"], total, "{user} {org}: {body}");
        let by_status = &body["total"]["by_status"];
        assert_eq!(
            by_status["done"].as_i64().unwrap() + by_status["planned"].as_i64().unwrap(),
            total,
            "{user} {org}: {body}"
        );
    }
}
