//! Bulletins against figures computed by hand, on SQLite and Postgres: townships and streets
//! ranked apart, too few interviews left unranked, yellow cards and the bar to a rating of
//! advanced from the rank rules, the change from the previous month; publishing freezes the
//! figures against later syncs, a re-issue takes a reason, both audited; the workbook read back
//! cell by cell; and bad input refused with nothing stored.

mod support;

use std::io::Cursor;

use axum::http::StatusCode;
use calamine::{Data, Reader, Xlsx};
use gridsync_fixtures::fixture::Fixture;
use gridsync_fixtures::org::OrgTree;
use gridsync_server::scope::Role;
use gridsync_server::store::{Level, Store};
use gridsync_server::tasks;
use serde_json::{Value, json};
use support::http::{Api, add_users_with_devices, api_over, authed};
use support::{TestStore, file_report};

on_both_test_stores!(
    a_district_bulletin_ranks_townships_and_streets_apart_with_cards_and_changes,
    configured_rank_rules_move_the_cards_and_bar_a_rating_of_advanced,
    publishing_freezes_the_figures_against_later_syncs_and_a_reissue_takes_a_reason,
    a_township_bulletin_ranks_its_villages_without_cards,
    the_bulletin_workbook_reads_back_cell_by_cell,
    bad_bulletin_input_is_refused_and_nothing_is_stored,
);

/// The standard tree with rural townships t2, t3 and t4 and a second street s3.
async fn seed_tree(store: &dyn Store) {
    let tree = OrgTree::standard()
        .clone()
        .unit("t2", "d", Level::Township, "西河镇")
        .unit("v2", "t2", Level::Village, "下庄村")
        .unit("g4", "v2", Level::Grid, "四网格")
        .unit("t3", "d", Level::Township, "南山乡")
        .unit("v3", "t3", Level::Village, "石门村")
        .unit("g5", "v3", Level::Grid, "五网格")
        .unit("t4", "d", Level::Township, "北坡乡")
        .unit("v4", "t4", Level::Village, "杨家村")
        .unit("g6", "v4", Level::Grid, "六网格")
        .unit("s3", "d", Level::Street, "新城街道")
        .unit("c3", "s3", Level::Community, "南门社区")
        .unit("g7", "c3", Level::Grid, "七网格");
    Fixture::new(tree).seed(store).await.expect("seed");
}

async fn api(t: &TestStore) -> Api {
    seed_tree(t.store.as_ref()).await;
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
    api_over(t).await
}

/// Files `n` canvass interviews in `grid` on `day`, the first `satisfied` of them satisfied
/// (every answer 5) and the rest not (every answer 2); ids from `*next`.
async fn interviews(
    store: &dyn Store,
    next: &mut u128,
    grid: &str,
    day: &str,
    n: usize,
    satisfied: usize,
) {
    for i in 0..n {
        let answer = if i < satisfied { "5" } else { "2" };
        let fields = json!({
            "household_type": "local_resident",
            "canvasser": "admin",
            "interviewed_at": format!("{day}T10:00:00+08:00"),
            "satisfaction_police": answer,
            "satisfaction_courts": answer,
            "safety_overall": answer,
            "worries": if i % 3 == 0 { json!(["fraud"]) } else { json!([]) },
        });
        *next += 1;
        file_report(store, *next, "satisfaction_canvass", grid, fields, &[]).await;
    }
}

/// October 2026: t1 27 of 30 satisfied (September 24 of 30), t2 24 of 30, t3 15 of 30, t4 10 of
/// 10 (too few to rank); streets s2 21 of 30 and s3 30 of 30.
async fn seed_canvass(store: &dyn Store) -> u128 {
    let mut next = 10_000;
    let oct = "2026-10-15";
    interviews(store, &mut next, "g1", oct, 30, 27).await;
    interviews(store, &mut next, "g1", "2026-09-20", 30, 24).await;
    interviews(store, &mut next, "g4", oct, 30, 24).await;
    interviews(store, &mut next, "g5", oct, 30, 15).await;
    interviews(store, &mut next, "g6", oct, 10, 10).await;
    interviews(store, &mut next, "g3", oct, 30, 21).await;
    interviews(store, &mut next, "g7", oct, 30, 30).await;
    next
}

/// The units of the ranking of `group` as (id, rank, yellow card, advanced barred, too few).
fn ranking(b: &Value, group: &str) -> Vec<(String, Option<u64>, bool, bool, bool)> {
    let r = b["rankings"]
        .as_array()
        .expect("rankings")
        .iter()
        .find(|r| r["group"] == group)
        .unwrap_or_else(|| panic!("no {group} ranking in {b}"));
    r["units"]
        .as_array()
        .expect("units")
        .iter()
        .map(|u| {
            (
                u["org_id"].as_str().expect("id").to_owned(),
                u["rank"].as_u64(),
                u["yellow_card"] == true,
                u["advanced_barred"] == true,
                u["few_interviews"] == true,
            )
        })
        .collect()
}

fn unit<'a>(b: &'a Value, id: &str) -> &'a Value {
    b["rankings"]
        .as_array()
        .expect("rankings")
        .iter()
        .flat_map(|r| r["units"].as_array().expect("units"))
        .find(|u| u["org_id"] == id)
        .unwrap_or_else(|| panic!("no unit {id}"))
}

fn row(
    id: &str,
    rank: Option<u64>,
    card: bool,
    barred: bool,
    few: bool,
) -> (String, Option<u64>, bool, bool, bool) {
    (id.to_owned(), rank, card, barred, few)
}

async fn a_district_bulletin_ranks_townships_and_streets_apart_with_cards_and_changes(
    t: &TestStore,
) {
    let api = api(t).await;
    seed_canvass(t.store.as_ref()).await;
    // Two tasks due in October in t1's grid, one done; one due in November.
    let task = |due: &str, done: bool| {
        let day = gridsync_server::stats::Day::parse(due).expect("day");
        let mut fields = tasks::fields("民调", day, &gridsync_core::task::Goal::Free, None, None);
        if done {
            fields.insert("status".into(), json!("done"));
        }
        tasks::NewTask {
            kind: "task",
            grid: "g1".into(),
            fields,
        }
    };
    let written = vec![
        task("2026-10-20", true),
        task("2026-10-25", false),
        task("2026-11-03", true),
    ];
    let today = gridsync_server::stats::Day::parse("2026-10-01").expect("day");
    tasks::create(
        t.store.as_ref(),
        &Default::default(),
        &support::admin(),
        written,
        today,
    )
    .await
    .expect("tasks");
    let admin = api.device_token("admin").await;
    let b = api.get("/api/v1/bulletins/2026-10", &admin).await.ok();
    let t1 = b["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .find(|u| u["org_id"] == "t1")
        .expect("t1");
    assert_eq!(
        (
            t1["due"].as_i64(),
            t1["done"].as_i64(),
            t1["share"].as_f64()
        ),
        (Some(2), Some(1), Some(0.5))
    );
    assert_eq!(b["state"], "draft");
    assert_eq!(b["revision"], Value::Null);
    assert_eq!(
        (b["from"].as_str(), b["to"].as_str()),
        (Some("2026-10-01"), Some("2026-10-31"))
    );
    assert_eq!(b["previous_period"], "2026-09");
    // The seed speech's rule: the last two rural townships and the last street are carded. t4's
    // 10 interviews are too few to rank on, so it is neither ranked nor carded.
    assert_eq!(
        ranking(&b, "township"),
        [
            row("t1", Some(1), false, false, false),
            row("t2", Some(2), true, false, false),
            row("t3", Some(3), true, false, false),
            row("t4", None, false, false, true),
        ]
    );
    assert_eq!(
        ranking(&b, "street"),
        [
            row("s3", Some(1), false, false, false),
            row("s2", Some(2), true, false, false),
        ]
    );
    // 27/30 = 90.0 against 24/30 = 80.0 in September: +10.0.
    let t1 = unit(&b, "t1");
    assert_eq!(t1["satisfaction"]["index"], 90.0);
    assert_eq!(t1["safety"]["index"], 90.0);
    assert_eq!(t1["interviews"], 30);
    assert_eq!(t1["previous"]["satisfaction"]["index"], 80.0);
    assert_eq!(t1["change"]["satisfaction"], 10.0);
    assert_eq!(unit(&b, "t3")["satisfaction"]["index"], 50.0);
    // t2 (80.0, interval 62.7–90.5) and t1 (90.0, 74.4–96.5) overlap: either may be first.
    assert_eq!(
        (t1["rank_best"].as_u64(), t1["rank_worst"].as_u64()),
        (Some(1), Some(2))
    );
    // Worries: every third interview raised fraud, 54 of the 160 in October.
    assert_eq!(b["worries"][0]["worry"], "fraud");
    assert_eq!(b["worries"][0]["count"], 54);
    assert_eq!(b["worries"][0]["share"], 0.338);
    assert_eq!(b["rules"]["rural"]["yellow_cards"], 2);
    assert_eq!(b["drug"]["suppressed_below"], 5);
    assert_eq!(b["disputes"]["total"]["org_id"], "d");
    assert_eq!(b["disputes_previous"]["from"], "2026-09-01");
    // Every township and street, then the district; s3 had none due.
    let due = b["tasks"].as_array().expect("tasks");
    assert_eq!(due.len(), 7, "six townships and streets, then the district");
    assert_eq!(
        (due[6]["org_id"].as_str(), due[6]["due"].as_i64()),
        (Some("d"), Some(2))
    );
    let s3 = due.iter().find(|u| u["org_id"] == "s3").expect("s3");
    assert_eq!(
        (s3["due"].as_i64(), s3["share"].clone()),
        (Some(0), Value::Null)
    );
}

async fn configured_rank_rules_move_the_cards_and_bar_a_rating_of_advanced(t: &TestStore) {
    let api = api(t).await;
    seed_canvass(t.store.as_ref()).await;
    let admin = api.device_token("admin").await;
    let rules = json!({
        "rural": { "yellow_cards": 1, "advanced_within": 1 },
        "urban": { "yellow_cards": 0, "advanced_within": 2 },
    });
    let set = api
        .call("PUT", "/api/v1/bulletin-rules", &admin, rules.clone())
        .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    assert_eq!(api.get("/api/v1/bulletin-rules", &admin).await.ok(), rules);
    let b = api.get("/api/v1/bulletins/2026-10", &admin).await.ok();
    assert_eq!(
        ranking(&b, "township"),
        [
            row("t1", Some(1), false, false, false),
            row("t2", Some(2), false, true, false),
            row("t3", Some(3), true, true, false),
            // No rank shows it may be rated advanced.
            row("t4", None, false, true, true),
        ]
    );
    assert_eq!(
        ranking(&b, "street"),
        [
            row("s3", Some(1), false, false, false),
            row("s2", Some(2), false, false, false),
        ]
    );
    let audit = t.store.audit_log(5).await.expect("audit");
    assert!(
        audit
            .iter()
            .any(|a| a.action == "set_bulletin_rules" && a.user_id.as_deref() == Some("admin")),
        "{audit:?}"
    );
}

async fn publishing_freezes_the_figures_against_later_syncs_and_a_reissue_takes_a_reason(
    t: &TestStore,
) {
    let api = api(t).await;
    let mut next = seed_canvass(t.store.as_ref()).await;
    let admin = api.device_token("admin").await;
    let published = api
        .call(
            "POST",
            "/api/v1/bulletins/2026-10/publish",
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(published.status, StatusCode::CREATED, "{}", published.body);
    assert_eq!(published.body["state"], "published");
    assert_eq!(published.body["revision"], 1);
    assert_eq!(published.body["published_by"], "admin");
    // A second publication of the same bulletin is refused: it needs a re-issue and a reason.
    let again = api
        .call(
            "POST",
            "/api/v1/bulletins/2026-10/publish",
            &admin,
            json!({}),
        )
        .await;
    again.assert_problem(StatusCode::CONFLICT, "conflict");
    // A phone syncs October interviews late: t3 now 45 of 60.
    interviews(t.store.as_ref(), &mut next, "g5", "2026-10-20", 30, 30).await;
    let read = api.get("/api/v1/bulletins/2026-10", &admin).await.ok();
    assert_eq!(read["revision"], 1);
    assert_eq!(unit(&read, "t3")["satisfaction"]["index"], 50.0, "frozen");
    assert_eq!(unit(&read, "t3")["interviews"], 30);
    assert_eq!(read["rankings"], published.body["rankings"]);
    // The statistics move; the bulletin does not.
    let stats = api
        .get(
            "/api/v1/stats/canvass?from=2026-10-01&to=2026-10-31",
            &admin,
        )
        .await
        .ok();
    let t3 = stats["units"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["org_id"] == "t3")
        .unwrap();
    assert_eq!(t3["interviews"], 60);
    let reissued = api
        .call(
            "POST",
            "/api/v1/bulletins/2026-10/reissue",
            &admin,
            json!({ "reason": "南山乡补报10月民调30户" }),
        )
        .await;
    assert_eq!(reissued.status, StatusCode::CREATED, "{}", reissued.body);
    assert_eq!(reissued.body["revision"], 2);
    assert_eq!(reissued.body["reason"], "南山乡补报10月民调30户");
    assert_eq!(unit(&reissued.body, "t3")["satisfaction"]["index"], 75.0);
    let list = api.get("/api/v1/bulletins", &admin).await.ok();
    let revisions: Vec<u64> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["revision"].as_u64().unwrap())
        .collect();
    assert_eq!(revisions, [2, 1]);
    let audit = t.store.audit_log(10).await.expect("audit");
    let actions: Vec<&str> = audit
        .iter()
        .filter(|a| a.action.ends_with("_bulletin"))
        .map(|a| a.action.as_str())
        .collect();
    assert_eq!(actions, ["reissue_bulletin", "publish_bulletin"]);
}

async fn a_township_bulletin_ranks_its_villages_without_cards(t: &TestStore) {
    let api = api(t).await;
    seed_canvass(t.store.as_ref()).await;
    // Township staff publish their own township's bulletin, not the district's.
    let ts = api.device_token("ts").await;
    let b = api.get("/api/v1/bulletins/2026-10", &ts).await.ok();
    assert_eq!(b["org_id"], "t1");
    assert_eq!(
        ranking(&b, "village"),
        [row("v1", Some(1), false, false, false)]
    );
    assert_eq!(b["rankings"][0]["rule"], Value::Null);
    let published = api
        .call("POST", "/api/v1/bulletins/2026-Q4/publish", &ts, json!({}))
        .await;
    assert_eq!(published.status, StatusCode::CREATED, "{}", published.body);
    assert_eq!(published.body["period"], "2026-Q4");
    assert_eq!(published.body["previous_period"], "2026-Q3");
    let district = api
        .call(
            "POST",
            "/api/v1/bulletins/2026-10/publish",
            &ts,
            json!({ "org": "d" }),
        )
        .await;
    district.assert_problem(StatusCode::NOT_FOUND, "not_found");
    // Drug-control officers and village cadres read, but do not publish.
    let o1 = api.device_token("o1").await;
    let refused = api
        .call("POST", "/api/v1/bulletins/2026-10/publish", &o1, json!({}))
        .await;
    refused.assert_problem(StatusCode::FORBIDDEN, "forbidden");
}

async fn the_bulletin_workbook_reads_back_cell_by_cell(t: &TestStore) {
    let api = api(t).await;
    seed_canvass(t.store.as_ref()).await;
    let admin = api.device_token("admin").await;
    api.call(
        "POST",
        "/api/v1/bulletins/2026-10/publish",
        &admin,
        json!({}),
    )
    .await
    .assert_status(StatusCode::CREATED);
    let reply = api
        .send_raw(authed(
            "GET",
            "/api/v1/bulletins/2026-10?format=xlsx",
            &admin,
        ))
        .await;
    reply.assert_status(StatusCode::OK);
    assert_eq!(
        reply.content_type(),
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    );
    let mut book: Xlsx<_> = Xlsx::new(Cursor::new(reply.bytes.clone())).expect("a workbook");
    assert_eq!(
        book.sheet_names(),
        [
            "概况",
            "乡镇排名",
            "街道排名",
            "矛盾纠纷",
            "任务完成",
            "禁毒",
            "操心事"
        ]
    );
    let summary = book.worksheet_range("概况").expect("summary");
    assert_eq!(
        summary.get_value((1, 1)),
        Some(&Data::String("示范区".into()))
    );
    assert_eq!(
        summary.get_value((2, 1)),
        Some(&Data::String("2026-10".into()))
    );
    assert_eq!(
        summary.get_value((5, 0)),
        Some(&Data::String("状态".into()))
    );
    assert_eq!(
        summary.get_value((5, 1)),
        Some(&Data::String("已发布".into()))
    );
    assert_eq!(summary.get_value((6, 1)), Some(&Data::String("1".into())));
    let towns = book.worksheet_range("乡镇排名").expect("townships");
    assert_eq!(towns.get_value((0, 0)), Some(&Data::String("排名".into())));
    // Row 1: t1, rank 1, 30 interviews, 90.0, September 80.0, +10.0, no marks.
    assert_eq!(towns.get_value((1, 0)), Some(&Data::Float(1.0)));
    assert_eq!(
        towns.get_value((1, 1)),
        Some(&Data::String("东岭镇".into()))
    );
    assert_eq!(towns.get_value((1, 2)), Some(&Data::Float(30.0)));
    assert_eq!(towns.get_value((1, 3)), Some(&Data::Float(90.0)));
    assert_eq!(towns.get_value((1, 7)), Some(&Data::Float(80.0)));
    assert_eq!(towns.get_value((1, 8)), Some(&Data::Float(10.0)));
    assert_eq!(towns.get_value((1, 11)), Some(&Data::Empty));
    // Row 3: t3, carded. Row 4: t4, unranked for too few interviews.
    assert_eq!(
        towns.get_value((3, 1)),
        Some(&Data::String("南山乡".into()))
    );
    assert_eq!(towns.get_value((3, 11)), Some(&Data::String("是".into())));
    assert_eq!(towns.get_value((4, 0)), Some(&Data::Empty));
    assert_eq!(towns.get_value((4, 10)), Some(&Data::String("是".into())));
    let streets = book.worksheet_range("街道排名").expect("streets");
    assert_eq!(
        streets.get_value((2, 1)),
        Some(&Data::String("城关街道".into()))
    );
    assert_eq!(streets.get_value((2, 11)), Some(&Data::String("是".into())));
    let disputes = book.worksheet_range("矛盾纠纷").expect("disputes");
    assert_eq!(
        disputes.get_value((0, 6)),
        Some(&Data::String("上期排查发现".into()))
    );
    // Four townships and two streets, then the district's total.
    assert_eq!(
        disputes.get_value((7, 0)),
        Some(&Data::String("示范区（合计）".into()))
    );
    assert_eq!(disputes.get_value((7, 1)), Some(&Data::Float(0.0)));
    let worries = book.worksheet_range("操心事").expect("worries");
    assert_eq!(worries.get_value((1, 1)), Some(&Data::Float(54.0)));
    // No drug-control case: zero is shown as zero, never withheld.
    let drug = book.worksheet_range("禁毒").expect("drug");
    assert_eq!(drug.get_value((1, 1)), Some(&Data::Float(0.0)));
}

async fn bad_bulletin_input_is_refused_and_nothing_is_stored(t: &TestStore) {
    let api = api(t).await;
    seed_canvass(t.store.as_ref()).await;
    let admin = api.device_token("admin").await;
    for period in ["2026-13", "2026-Q5", "26-10", "2026-10-01", "november"] {
        api.get(&format!("/api/v1/bulletins/{period}"), &admin)
            .await
            .assert_problem(StatusCode::BAD_REQUEST, "bad_request");
        api.call(
            "POST",
            &format!("/api/v1/bulletins/{period}/publish"),
            &admin,
            json!({}),
        )
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "bad_request");
    }
    // A village or a grid has no bulletin; a unit outside the scope is not found.
    for (token, org) in [(&admin, "v1"), (&admin, "g1")] {
        api.get(&format!("/api/v1/bulletins/2026-10?org={org}"), token)
            .await
            .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
    }
    let w1 = api.device_token("w1").await;
    api.get("/api/v1/bulletins/2026-10", &w1)
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
    let ts = api.device_token("ts").await;
    api.get("/api/v1/bulletins/2026-10?org=t2", &ts)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    // A period not begun cannot be published; a re-issue needs a reason and a publication.
    api.call(
        "POST",
        "/api/v1/bulletins/2099-01/publish",
        &admin,
        json!({}),
    )
    .await
    .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
    api.call(
        "POST",
        "/api/v1/bulletins/2026-10/reissue",
        &admin,
        json!({ "reason": "  " }),
    )
    .await
    .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
    api.call(
        "POST",
        "/api/v1/bulletins/2026-10/reissue",
        &admin,
        json!({ "reason": "改" }),
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not_found");
    api.call(
        "POST",
        "/api/v1/bulletins/2026-10/publish",
        &admin,
        json!({ "org": "d", "extra": 1 }),
    )
    .await
    .assert_status(StatusCode::BAD_REQUEST);
    // Rules that cannot apply: four yellow cards among four rural townships, a bar past the
    // last street; from anyone but an admin, refused before they are read.
    let impossible = json!({
        "rural": { "yellow_cards": 4, "advanced_within": null },
        "urban": { "yellow_cards": 0, "advanced_within": 3 },
    });
    let refused = api
        .call("PUT", "/api/v1/bulletin-rules", &admin, impossible.clone())
        .await;
    refused.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
    let paths: Vec<&str> = refused.body["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .map(|p| p["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["rural.yellow_cards", "urban.advanced_within"]);
    api.call(
        "PUT",
        "/api/v1/bulletin-rules",
        &admin,
        json!({ "rural": { "yellow_cards": -1 } }),
    )
    .await
    .assert_status(StatusCode::BAD_REQUEST);
    api.call(
        "PUT",
        "/api/v1/bulletin-rules",
        &ts,
        json!({
            "rural": { "yellow_cards": 1, "advanced_within": null },
            "urban": { "yellow_cards": 0, "advanced_within": null },
        }),
    )
    .await
    .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(t.store.bulletin_rules().await.expect("rules"), None);
    assert!(
        t.store
            .bulletins("", 10)
            .await
            .expect("bulletins")
            .is_empty()
    );
}
