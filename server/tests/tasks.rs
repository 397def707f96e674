//! Tasks and the weekly dispatch board on SQLite and Postgres: created in and out of scope, in
//! bulk for every grid of a unit and recurring; a follow-up goes to its dispute's grid and a
//! visit is restricted like its case; what a worker's phone may change of a task; concurrent
//! office and phone edits merging; the board's counts; and bad input refused with nothing
//! stored.

mod support;

use axum::http::StatusCode;
use gridsync_core::DocId;
use gridsync_core::protocol::{Push, PushDoc, PushOutcome};
use gridsync_core::report::{Editor, ReportDoc};
use gridsync_core::task::Task;
use gridsync_server::scope::Role;
use gridsync_server::stats::Day;
use gridsync_server::store::Store;
use gridsync_server::tasks::{self as server_tasks, NewTask};
use serde_json::{Value, json};
use support::http::{Api, Reply, add_users_with_devices, api_over};
use support::*;

on_both_test_stores!(
    office_users_create_tasks_within_their_scope_only,
    a_unit_gets_one_task_per_grid_and_a_recurring_task_one_per_occurrence,
    a_follow_up_goes_to_its_disputes_grid_and_a_visit_is_restricted_like_its_case,
    a_workers_phone_links_reports_and_finishes_free_tasks_but_rewrites_nothing,
    office_and_phone_edits_of_one_task_merge,
    the_dispatch_board_counts_tasks_due_done_and_overdue_per_unit,
    bad_task_input_is_refused_and_nothing_is_stored,
);

const WORKER: &str = "w1";

async fn api(t: &TestStore) -> Api {
    seed_org(t.store.as_ref()).await;
    add_users_with_devices(
        t.store.as_ref(),
        &[
            ("admin", Role::DistrictAdmin, "d"),
            (WORKER, Role::GridWorker, G1),
            ("c1", Role::VillageCadre, "v1"),
            ("ts", Role::TownshipStaff, "t1"),
            ("o1", Role::DrugControlOfficer, "t1"),
        ],
    )
    .await;
    api_over(t).await
}

fn today() -> Day {
    Day::of_unix(gridsync_server::clock::now())
}

fn in_days(n: i64) -> String {
    today().plus(n).to_string()
}

fn ids(answer: &Value) -> Vec<String> {
    answer["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|t| t["id"].as_str().expect("id").to_owned())
        .collect()
}

fn grids(answer: &Value) -> Vec<&str> {
    answer["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|t| t["grid_id"].as_str().expect("grid"))
        .collect()
}

async fn post_task(api: &Api, user: &str, body: Value) -> Reply {
    let token = api.device_token(user).await;
    api.call("POST", "/api/v1/tasks", &token, body).await
}

fn quota(grid_or_org: (&str, &str), due: &str) -> Value {
    let mut body =
        json!({ "title": "完成30户民调", "due": due, "goal": "canvass_quota", "quota": 2 });
    body[grid_or_org.0] = json!(grid_or_org.1);
    body
}

async fn office_users_create_tasks_within_their_scope_only(t: &TestStore) {
    let api = api(t).await;
    let created = post_task(&api, "c1", quota(("grid", G1), &in_days(3))).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let task = &created.body["items"][0];
    assert_eq!(task["kind"], "task");
    assert_eq!(
        (task["progress"].as_u64(), task["needed"].as_u64()),
        (Some(0), Some(2))
    );
    assert_eq!(task["status"], "open");
    // Another street's grid is no unit of the cadre's: 404, as if it did not exist.
    post_task(&api, "c1", quota(("grid", G3), &in_days(3)))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    // A grid worker sets no tasks; a drug-control officer none outside drug-control cases.
    post_task(&api, WORKER, quota(("grid", G1), &in_days(3)))
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    post_task(&api, "o1", quota(("grid", G1), &in_days(3)))
        .await
        .assert_problem(StatusCode::FORBIDDEN, "out_of_scope");
    // The worker of g1 sees the task; the street's people do not.
    let worker = api.device_token(WORKER).await;
    let listed = api.get("/api/v1/tasks", &worker).await.ok();
    assert_eq!(ids(&listed).len(), 1);
    let admin = api.device_token("admin").await;
    let s2 = api.get("/api/v1/tasks?org=s2", &admin).await.ok();
    assert!(ids(&s2).is_empty());
}

async fn a_unit_gets_one_task_per_grid_and_a_recurring_task_one_per_occurrence(t: &TestStore) {
    let api = api(t).await;
    let due = in_days(2);
    let bulk = post_task(&api, "ts", quota(("org", "t1"), &due)).await;
    assert_eq!(bulk.status, StatusCode::CREATED, "{}", bulk.body);
    assert_eq!(grids(&bulk.body), [G1, G2]);
    let mut monthly = quota(("grid", G2), &due);
    monthly["repeat"] = json!({ "every": "month", "until": in_days(2 + 95) });
    let series = post_task(&api, "ts", monthly).await;
    assert_eq!(series.status, StatusCode::CREATED, "{}", series.body);
    let items = series.body["items"].as_array().expect("items");
    assert_eq!(
        items.len(),
        4,
        "due and three monthly occurrences: {}",
        series.body
    );
    let first = items[0]["series"].as_str().expect("a series");
    assert!(items.iter().all(|i| i["series"] == first));
    assert_eq!(items[0]["due"], json!(due));
    assert_ne!(items[1]["due"], items[0]["due"]);
    let ts = api.device_token("ts").await;
    let all = api.get("/api/v1/tasks?state=all", &ts).await.ok();
    assert_eq!(ids(&all).len(), 6);
}

async fn a_follow_up_goes_to_its_disputes_grid_and_a_visit_is_restricted_like_its_case(
    t: &TestStore,
) {
    let api = api(t).await;
    let store = t.store.as_ref();
    let mut d = dispute(1, G2, "c1");
    let mut case = drug_case(2, G1, "o1", WORKER);
    assert!(is_acked(
        &ingest(
            store,
            &writer("c1", Role::VillageCadre, "v1", "pc"),
            &push_all(&mut [&mut d])
        )
        .await
        .expect("ingest")
        .docs[0]
            .outcome
    ));
    assert!(is_acked(
        &ingest(
            store,
            &writer("o1", Role::DrugControlOfficer, "t1", "pc"),
            &push_all(&mut [&mut case])
        )
        .await
        .expect("ingest")
        .docs[0]
            .outcome
    ));
    let follow_up = post_task(
        &api,
        "c1",
        json!({ "title": "回访纠纷", "due": in_days(5), "goal": "dispute_follow_up", "report": d.id().to_string() }),
    )
    .await;
    assert_eq!(follow_up.status, StatusCode::CREATED, "{}", follow_up.body);
    assert_eq!(grids(&follow_up.body), [G2]);
    assert_eq!(
        follow_up.body["items"][0]["target"],
        json!(d.id().to_string())
    );
    // Township staff may not see the case, so cannot send anyone to it.
    let visit = json!({ "title": "本月走访", "due": in_days(5), "goal": "drug_visit", "report": case.id().to_string() });
    post_task(&api, "ts", visit.clone())
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    let sent = post_task(&api, "o1", visit).await;
    assert_eq!(sent.status, StatusCode::CREATED, "{}", sent.body);
    assert_eq!(sent.body["items"][0]["kind"], "drug_visit_task");
    assert_eq!(sent.body["items"][0]["assignee"], WORKER);
    // The visit is as restricted as the case: its worker and the officer see it, the cadre not.
    for (user, sees) in [(WORKER, true), ("o1", true), ("c1", false), ("ts", false)] {
        let token = api.device_token(user).await;
        let listed = api.get("/api/v1/tasks?state=all", &token).await.ok();
        let kinds: Vec<&str> = listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["kind"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds.contains(&"drug_visit_task"),
            sees,
            "{user}: {kinds:?}"
        );
    }
    // A dispute named as a case is refused.
    let wrong = json!({ "title": "走访", "due": in_days(5), "goal": "drug_visit", "report": d.id().to_string() });
    post_task(&api, "admin", wrong)
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
}

/// The task document of `id` as stored.
async fn stored_task(store: &dyn Store, id: &str) -> ReportDoc {
    let id: DocId = id.parse().expect("an id");
    store.load_doc(&id).await.expect("load").expect("stored")
}

/// Pushes the changes `edit` makes to `doc` as the grid worker's phone would.
async fn worker_pushes(
    store: &dyn Store,
    doc: &mut ReportDoc,
    edit: impl FnOnce(&mut ReportDoc, &Editor),
) -> PushOutcome {
    let before = doc.heads();
    edit(doc, &Editor::new(WORKER, 1_800_000_000));
    let push = Push {
        docs: vec![PushDoc {
            doc: doc.id(),
            changes: doc.changes_since(&before),
        }],
    };
    let phone = writer(WORKER, Role::GridWorker, G1, "w1-phone");
    ingest(store, &phone, &push)
        .await
        .expect("ingest")
        .docs
        .remove(0)
        .outcome
}

async fn a_workers_phone_links_reports_and_finishes_free_tasks_but_rewrites_nothing(t: &TestStore) {
    let api = api(t).await;
    let store = t.store.as_ref();
    let created = post_task(&api, "c1", quota(("grid", G1), &in_days(3)))
        .await
        .ok();
    let quota_id = ids(&created)[0].clone();
    let free = post_task(
        &api,
        "c1",
        json!({ "title": "张贴反诈海报", "due": in_days(3), "goal": "free", "grid": G1 }),
    )
    .await
    .ok();
    let free_id = ids(&free)[0].clone();

    let mut doc = stored_task(store, &quota_id).await;
    let link = |report: u128| {
        move |d: &mut ReportDoc, by: &Editor| {
            d.append_log(
                &object(json!({ "report": DocId::from_u128(report).to_string() })),
                by,
            )
            .expect("link");
        }
    };
    assert!(is_acked(&worker_pushes(store, &mut doc, link(7)).await));
    let rewrite =
        |d: &mut ReportDoc, by: &Editor| d.set_field("quota", &json!(1), by).expect("edit");
    let refused = worker_pushes(store, &mut doc.clone(), rewrite).await;
    assert!(
        matches!(&refused, PushOutcome::Rejected { code, .. } if code == "task_not_yours"),
        "{refused:?}"
    );
    let finish =
        |d: &mut ReportDoc, by: &Editor| d.set_field("status", &json!("done"), by).expect("edit");
    let refused = worker_pushes(store, &mut doc.clone(), finish).await;
    assert!(
        matches!(&refused, PushOutcome::Rejected { code, .. } if code == "task_not_yours"),
        "a quota is done by its interviews: {refused:?}"
    );
    assert!(is_acked(&worker_pushes(store, &mut doc, link(8)).await));
    let c1 = api.device_token("c1").await;
    let listed = api.get("/api/v1/tasks?state=done", &c1).await.ok();
    assert_eq!(
        ids(&listed),
        [quota_id],
        "two interviews fill the quota of 2"
    );

    let mut free_doc = stored_task(store, &free_id).await;
    let done = |d: &mut ReportDoc, by: &Editor| {
        d.set_fields(
            &object(json!({ "status": "done", "done_note": "已张贴5处" })),
            by,
        )
        .expect("edit");
    };
    assert!(is_acked(&worker_pushes(store, &mut free_doc, done).await));
    let task = Task::from_projection(&stored_task(store, &free_id).await.to_json().expect("json"))
        .expect("a task");
    assert!(task.is_done());
    assert_eq!(task.done_note.as_deref(), Some("已张贴5处"));
    // A worker's phone creates no task.
    let mut own = ReportDoc::create(
        DocId::from_u128(99),
        "task",
        1,
        G1,
        &Editor::new(WORKER, 1_800_000_000),
    )
    .expect("doc");
    own.set_fields(
        &gridsync_server::tasks::fields(
            "自己的任务",
            today(),
            &gridsync_core::task::Goal::Free,
            None,
            None,
        ),
        &Editor::new(WORKER, 1_800_000_000),
    )
    .expect("fields");
    let outcome = ingest(
        store,
        &writer(WORKER, Role::GridWorker, G1, "w1-phone"),
        &push_all(&mut [&mut own]),
    )
    .await
    .expect("ingest")
    .docs
    .remove(0)
    .outcome;
    assert!(
        matches!(&outcome, PushOutcome::Rejected { code, .. } if code == "task_office_only"),
        "{outcome:?}"
    );
    assert!(
        store
            .document(&DocId::from_u128(99))
            .await
            .expect("read")
            .is_none()
    );
}

async fn office_and_phone_edits_of_one_task_merge(t: &TestStore) {
    let api = api(t).await;
    let store = t.store.as_ref();
    let created = post_task(&api, "c1", quota(("grid", G1), &in_days(3)))
        .await
        .ok();
    let id = ids(&created)[0].clone();
    // The phone holds the task offline and links an interview...
    let mut phone_copy = stored_task(store, &id).await;
    // ...while the cadre moves its due date from the office.
    let c1 = api.device_token("c1").await;
    let patched = api
        .call(
            "PATCH",
            &format!("/api/v1/reports/{id}"),
            &c1,
            json!({ "fields": { "due": in_days(6) } }),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    let link = |d: &mut ReportDoc, by: &Editor| {
        d.append_log(
            &object(json!({ "report": DocId::from_u128(5).to_string() })),
            by,
        )
        .expect("link");
    };
    assert!(is_acked(&worker_pushes(store, &mut phone_copy, link).await));
    let merged = Task::from_projection(&stored_task(store, &id).await.to_json().expect("json"))
        .expect("a task");
    assert_eq!(merged.due, in_days(6), "the office's due date");
    assert_eq!(merged.linked, [DocId::from_u128(5)], "the phone's link");
}

async fn the_dispatch_board_counts_tasks_due_done_and_overdue_per_unit(t: &TestStore) {
    let api = api(t).await;
    let store = t.store.as_ref();
    let week = server_tasks::week_of(today());
    // Due this week: two in g1 (one of them done), one in g3; one overdue in g2, written as if
    // set a week ago (the API refuses a due date in the past).
    let sunday = week.to.to_string();
    let g1 = post_task(
        &api,
        "admin",
        json!({ "title": "a", "due": sunday, "goal": "free", "grid": G1 }),
    )
    .await
    .ok();
    post_task(
        &api,
        "admin",
        json!({ "title": "b", "due": sunday, "goal": "free", "grid": G1 }),
    )
    .await
    .ok();
    post_task(
        &api,
        "admin",
        json!({ "title": "c", "due": sunday, "goal": "free", "grid": G3 }),
    )
    .await
    .ok();
    let overdue = NewTask {
        kind: "task",
        grid: G2.to_owned(),
        fields: server_tasks::fields(
            "d",
            today().plus(-1),
            &gridsync_core::task::Goal::Free,
            None,
            None,
        ),
    };
    server_tasks::create(store, &Default::default(), &admin(), vec![overdue], today())
        .await
        .expect("written");
    let mut done = stored_task(store, &ids(&g1)[0]).await;
    let finish = |d: &mut ReportDoc, by: &Editor| {
        d.set_fields(&object(json!({ "status": "done", "done_note": "ok" })), by)
            .expect("edit");
    };
    assert!(is_acked(&worker_pushes(store, &mut done, finish).await));
    let admin_token = api.device_token("admin").await;
    let board = api.get("/api/v1/dispatch", &admin_token).await.ok();
    assert_eq!(board["week_from"], json!(week.from.to_string()));
    let row = |b: &Value, id: &str| -> (i64, i64, i64, i64) {
        let u = if b["total"]["org_id"] == id {
            &b["total"]
        } else {
            b["units"]
                .as_array()
                .unwrap()
                .iter()
                .find(|u| u["org_id"] == id)
                .unwrap_or_else(|| panic!("{id} in {b}"))
        };
        let n = |k: &str| u[k].as_i64().unwrap();
        (
            n("due_this_week"),
            n("done_this_week"),
            n("overdue"),
            n("open"),
        )
    };
    // (due this week, of them done, overdue, open)
    assert_eq!(
        row(&board, "t1"),
        (2 + i64::from(today().plus(-1) >= week.from), 1, 1, 2)
    );
    assert_eq!(row(&board, "s2"), (1, 0, 0, 1));
    assert_eq!(row(&board, "d").3, 3);
    assert_eq!(
        board["total"]["drug_visits_overdue"], 0,
        "admins count cases exactly"
    );
    let due: Vec<&str> = board["due"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["title"].as_str().unwrap())
        .collect();
    assert_eq!(due.len(), 3, "{due:?}");
    // Township staff: their township's villages; a cadre gets no drug-control counts.
    let ts = api.device_token("ts").await;
    let theirs = api.get("/api/v1/dispatch", &ts).await.ok();
    assert_eq!(theirs["total"]["org_id"], "t1");
    assert_eq!(theirs["units"][0]["org_id"], "v1");
    let c1 = api.device_token("c1").await;
    let cadre = api.get("/api/v1/dispatch", &c1).await.ok();
    assert_eq!(cadre["total"]["drug_visits_overdue"], Value::Null);
    api.get("/api/v1/dispatch?org=s2", &c1)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    api.get("/api/v1/dispatch?week=2026-13-01", &c1)
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "bad_request");
}

async fn bad_task_input_is_refused_and_nothing_is_stored(t: &TestStore) {
    let api = api(t).await;
    let paths = |reply: &Reply| -> Vec<String> {
        reply.body["problems"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .map(|p| p["path"].as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let bad = [
        (
            json!({ "title": "x", "due": in_days(-1), "goal": "free", "grid": G1 }),
            "due",
        ),
        (
            json!({ "title": "x", "due": "2026-13-01", "goal": "free", "grid": G1 }),
            "due",
        ),
        (
            json!({ "title": "x", "due": in_days(1), "goal": "canvass_quota", "quota": 0, "grid": G1 }),
            "quota",
        ),
        (
            json!({ "title": "x", "due": in_days(1), "goal": "canvass_quota", "grid": G1 }),
            "quota",
        ),
        (
            json!({ "title": " ", "due": in_days(1), "goal": "free", "grid": G1 }),
            "title",
        ),
        (
            json!({ "title": "x", "due": in_days(1), "goal": "sing", "grid": G1 }),
            "goal",
        ),
        (
            json!({ "title": "x", "due": in_days(1), "goal": "free", "grid": G1, "org": "t1" }),
            "org",
        ),
        (
            json!({ "title": "x", "due": in_days(1), "goal": "free", "report": DocId::from_u128(1).to_string() }),
            "report",
        ),
        (
            json!({ "title": "x", "due": in_days(1), "goal": "free", "grid": G1, "repeat": { "every": "day", "until": in_days(9) } }),
            "repeat.every",
        ),
        (
            json!({ "title": "x", "due": in_days(1), "goal": "free", "grid": G1, "repeat": { "every": "week", "until": in_days(500) } }),
            "repeat.until",
        ),
        (
            json!({ "title": "x", "due": in_days(1), "goal": "free", "grid": "v1" }),
            "grid",
        ),
        (
            json!({ "title": "x", "due": in_days(1), "goal": "free", "grid": G1, "assignee": "c1" }),
            "assignee",
        ),
        (
            json!({ "title": "x", "due": in_days(1), "goal": "free", "org": "t1", "assignee": WORKER }),
            "assignee",
        ),
    ];
    for (body, path) in bad {
        let reply = post_task(&api, "admin", body.clone()).await;
        reply.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
        assert!(
            paths(&reply).contains(&path.to_owned()),
            "{body}: {}",
            reply.body
        );
    }
    post_task(
        &api,
        "admin",
        json!({ "title": "x", "due": in_days(1), "goal": "free", "grid": G1, "colour": "red" }),
    )
    .await
    .assert_status(StatusCode::BAD_REQUEST);
    // A unit outside the scope is not found, like a missing one.
    post_task(
        &api,
        "ts",
        json!({ "title": "x", "due": in_days(1), "goal": "free", "org": "s2" }),
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not_found");
    let admin = api.device_token("admin").await;
    assert!(ids(&api.get("/api/v1/tasks?state=all", &admin).await.ok()).is_empty());
    api.get("/api/v1/tasks?state=late", &admin)
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "bad_request");
    // An assignee who works the grid is taken.
    let fine = post_task(
        &api,
        "admin",
        json!({ "title": "x", "due": in_days(1), "goal": "free", "grid": G1, "assignee": WORKER }),
    )
    .await;
    assert_eq!(fine.status, StatusCode::CREATED, "{}", fine.body);
}
