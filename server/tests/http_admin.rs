//! The admin endpoints (org tree, users, audit log), driven through `app(state)` on SQLite and
//! on Postgres.

mod support;

use axum::http::StatusCode;
use gridsync_server::scope::Role;
use gridsync_server::store::AuditQuery;
use serde_json::{Value, json};
use support::http::*;
use support::*;

on_both_test_stores!(
    an_admin_adds_org_units_one_tier_below_their_parent,
    org_ids_that_would_break_prefix_scopes_are_refused_and_nothing_is_stored,
    a_taken_org_id_is_a_conflict_and_an_unknown_parent_a_bad_request,
    an_org_unit_is_renamed_but_never_moved_or_relevelled,
    each_role_reads_its_part_of_the_org_tree_with_the_names_above_it,
    an_admin_creates_users_only_in_units_their_role_fits,
    weak_passwords_bad_usernames_and_taken_usernames_are_refused,
    no_answer_ever_holds_a_password_hash,
    only_admins_change_users_and_the_org_and_read_the_audit_log,
    the_user_list_follows_the_callers_place_in_the_tree_and_pages,
    bad_list_parameters_are_answered_400_as_problem_details,
    moving_a_worker_to_another_grid_keeps_their_phone_which_then_sees_the_new_grid,
    a_role_change_keeps_devices_and_disabling_retires_them,
    a_role_that_does_not_fit_the_unit_is_refused_and_revokes_nothing,
    an_admin_cannot_disable_or_demote_themselves,
    a_new_password_replaces_the_old_one,
    every_admin_action_is_audited_and_the_log_filters_and_pages,
    sql_metacharacters_in_every_filter_get_4xx_or_a_correct_result,
    malformed_json_and_unknown_fields_are_refused_and_nothing_is_stored,
    the_openapi_document_lists_the_admin_endpoints,
);

const PW: &str = "test password";

/// Admin at d, cadres at v1 and c2, township staff and a drug-control officer at t1, workers
/// at g1, g2 and g3.
async fn api(t: &TestStore) -> Api {
    seed_org(t.store.as_ref()).await;
    for (id, role, unit) in [
        ("admin", Role::DistrictAdmin, "d"),
        ("c1", Role::VillageCadre, "v1"),
        ("c2cadre", Role::VillageCadre, "c2"),
        ("ts", Role::TownshipStaff, "t1"),
        ("o1", Role::DrugControlOfficer, "t1"),
        ("w1", Role::GridWorker, G1),
        ("w2", Role::GridWorker, G2),
        ("w3", Role::GridWorker, G3),
    ] {
        add_user(t.store.as_ref(), id, role, unit, PW, false).await;
    }
    api_over(t).await
}

impl Api {
    async fn token(&self, user: &str) -> String {
        self.tokens(user, PW, &format!("{user}-device")).await.0
    }

    async fn new_unit(&self, token: &str, id: &str, parent: &str, level: &str) -> Reply {
        self.call(
            "POST",
            "/api/v1/org",
            token,
            json!({ "id": id, "parent_id": parent, "level": level, "name": format!("单位 {id}") }),
        )
        .await
    }

    async fn new_user(&self, token: &str, username: &str, role: &str, unit: &str) -> Reply {
        self.call(
            "POST",
            "/api/v1/users",
            token,
            json!({ "username": username, "display_name": username, "password": PW,
                    "role": role, "org_unit_id": unit }),
        )
        .await
    }

    async fn patch_user(&self, token: &str, id: &str, body: Value) -> Reply {
        self.call("PATCH", &format!("/api/v1/users/{id}"), token, body)
            .await
    }

    async fn org_count(&self) -> usize {
        self.store.org_units().await.expect("units").len()
    }

    async fn audit_count(&self) -> i64 {
        self.store
            .audit_page(&AuditQuery {
                limit: 1,
                ..AuditQuery::default()
            })
            .await
            .expect("audit")
            .total
    }
}

fn ok(r: &Reply, status: StatusCode) {
    assert_eq!(r.status, status, "body: {}", r.body);
}

fn strings(v: &Value, field: &str) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|x| x[field].as_str().expect("string").to_owned())
        .collect()
}

/// Percent-encodes everything but ASCII letters and digits, for a query string.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

const NASTY: [&str; 7] = [
    "'",
    "%",
    "_",
    "\\",
    "\"; DROP TABLE users; --",
    "'; DROP TABLE audit_log; --",
    "' OR '1'='1",
];

async fn an_admin_adds_org_units_one_tier_below_their_parent(t: &TestStore) {
    let api = api(t).await;
    let admin = api.token("admin").await;
    for (id, parent, level, path) in [
        ("t2", "d", "township", "/d/t2/"),
        ("s3", "d", "street", "/d/s3/"),
        ("v2", "t2", "village", "/d/t2/v2/"),
        ("c3", "s3", "community", "/d/s3/c3/"),
        ("g-4", "v2", "grid", "/d/t2/v2/g-4/"),
        ("g5", "c3", "grid", "/d/s3/c3/g5/"),
    ] {
        let r = api.new_unit(&admin, id, parent, level).await;
        ok(&r, StatusCode::CREATED);
        assert_eq!(
            (&r.body["path"], &r.body["parent_id"], &r.body["level"]),
            (&json!(path), &json!(parent), &json!(level))
        );
        let stored = api.store.org_unit(id).await.expect("read").expect("unit");
        assert_eq!(stored.path, path);
    }
    let before = api.org_count().await;
    for (id, parent, level) in [
        ("x1", "d", "village"),
        ("x2", "d", "grid"),
        ("x3", "d", "district"),
        ("x4", "t1", "grid"),
        ("x5", "t1", "township"),
        ("x6", "v1", "community"),
        ("x7", "g1", "grid"),
    ] {
        let r = api.new_unit(&admin, id, parent, level).await;
        r.assert_problem(StatusCode::BAD_REQUEST, "bad_request");
        assert!(
            r.body["detail"].as_str().expect("detail").contains("tier"),
            "{}",
            r.body
        );
    }
    api.new_unit(&admin, "x8", "d", "county")
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "invalid_json");
    for name in ["", "   ", "a\nb", &"长".repeat(101)] {
        api.call(
            "POST",
            "/api/v1/org",
            &admin,
            json!({ "id": "x9", "parent_id": "d", "level": "township", "name": name }),
        )
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "bad_request");
    }
    assert_eq!(api.org_count().await, before, "nothing refused was stored");
}

async fn org_ids_that_would_break_prefix_scopes_are_refused_and_nothing_is_stored(t: &TestStore) {
    let api = api(t).await;
    let admin = api.token("admin").await;
    let before = api.org_count().await;
    let long = "a".repeat(65);
    for id in [
        "a/b", "a%", "g_1", "a\\b", "", " ", "g 1", "网格", "a.b", "'", "G1", "T1", &long,
    ]
    .into_iter()
    .chain(NASTY)
    {
        let r = api.new_unit(&admin, id, "v1", "grid").await;
        r.assert_problem(StatusCode::BAD_REQUEST, "bad_request");
    }
    assert_eq!(api.org_count().await, before);
    ok(
        &api.new_unit(&admin, &"a".repeat(64), "v1", "grid").await,
        StatusCode::CREATED,
    );
}

async fn a_taken_org_id_is_a_conflict_and_an_unknown_parent_a_bad_request(t: &TestStore) {
    let api = api(t).await;
    let admin = api.token("admin").await;
    ok(
        &api.new_unit(&admin, "g9", "v1", "grid").await,
        StatusCode::CREATED,
    );
    api.new_unit(&admin, "g9", "v1", "grid")
        .await
        .assert_problem(StatusCode::CONFLICT, "conflict");
    // Taken elsewhere in the tree: ids are unique in the whole tree.
    api.new_unit(&admin, "g1", "c2", "grid")
        .await
        .assert_problem(StatusCode::CONFLICT, "conflict");
    let r = api.new_unit(&admin, "g10", "no-such-village", "grid").await;
    r.assert_problem(StatusCode::BAD_REQUEST, "bad_request");
    assert!(
        r.body["detail"]
            .as_str()
            .expect("detail")
            .contains("no-such-village")
    );
    let g1 = api.store.org_unit("g1").await.expect("read").expect("g1");
    assert_eq!(g1.path, "/d/t1/v1/g1/", "the existing unit is untouched");
}

async fn an_org_unit_is_renamed_but_never_moved_or_relevelled(t: &TestStore) {
    let api = api(t).await;
    let admin = api.token("admin").await;
    let r = api
        .call(
            "PATCH",
            "/api/v1/org/g1",
            &admin,
            json!({ "name": "上坪一网格" }),
        )
        .await;
    ok(&r, StatusCode::OK);
    assert_eq!(r.body["name"], json!("上坪一网格"));
    // The whole unit sent back with its own parent and level is a rename too.
    let r = api
        .call(
            "PATCH",
            "/api/v1/org/g1",
            &admin,
            json!({ "name": "一网格", "parent_id": "v1", "level": "grid" }),
        )
        .await;
    ok(&r, StatusCode::OK);
    let tree = api.get("/api/v1/org", &admin).await;
    let g1 = tree.body["units"]
        .as_array()
        .expect("units")
        .iter()
        .find(|u| u["id"] == json!("g1"))
        .expect("g1")
        .clone();
    assert_eq!(g1["name"], json!("一网格"));

    for body in [
        json!({ "parent_id": "c2" }),
        json!({ "name": "x", "parent_id": "v2" }),
        json!({ "parent_id": null }),
    ] {
        let r = api.call("PATCH", "/api/v1/org/g1", &admin, body).await;
        r.assert_problem(StatusCode::BAD_REQUEST, "bad_request");
        let detail = r.body["detail"].as_str().expect("detail");
        assert!(
            detail.contains("not supported") && detail.contains("migration"),
            "{detail}"
        );
    }
    api.call(
        "PATCH",
        "/api/v1/org/g1",
        &admin,
        json!({ "level": "village" }),
    )
    .await
    .assert_problem(StatusCode::BAD_REQUEST, "bad_request");
    api.call("PATCH", "/api/v1/org/g1", &admin, json!({}))
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "bad_request");
    api.call("PATCH", "/api/v1/org/g1", &admin, json!({ "name": " " }))
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "bad_request");
    api.call("PATCH", "/api/v1/org/nope", &admin, json!({ "name": "x" }))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    let g1 = api.store.org_unit("g1").await.expect("read").expect("g1");
    assert_eq!(
        (g1.parent_id.as_deref(), g1.path.as_str(), g1.name.as_str()),
        (Some("v1"), "/d/t1/v1/g1/", "一网格")
    );
}

async fn each_role_reads_its_part_of_the_org_tree_with_the_names_above_it(t: &TestStore) {
    let api = api(t).await;
    let w1 = api.get("/api/v1/org", &api.token("w1").await).await;
    ok(&w1, StatusCode::OK);
    assert_eq!(w1.body["root"], json!("g1"));
    assert_eq!(strings(&w1.body["units"], "id"), ["g1"]);
    assert_eq!(strings(&w1.body["ancestors"], "id"), ["d", "t1", "v1"]);
    assert_eq!(
        strings(&w1.body["ancestors"], "name"),
        ["示范区", "东岭镇", "上坪村"]
    );
    assert_eq!(w1.body["units"][0]["parent_id"], json!("v1"));
    assert_eq!(w1.body["units"][0]["level"], json!("grid"));

    let c1 = api.get("/api/v1/org", &api.token("c1").await).await;
    assert_eq!(strings(&c1.body["units"], "id"), ["v1", "g1", "g2"]);
    assert_eq!(strings(&c1.body["ancestors"], "id"), ["d", "t1"]);

    let ts = api.get("/api/v1/org", &api.token("ts").await).await;
    assert_eq!(strings(&ts.body["units"], "id"), ["t1", "v1", "g1", "g2"]);

    let admin = api.get("/api/v1/org", &api.token("admin").await).await;
    assert_eq!(admin.body["root"], json!("d"));
    assert_eq!(
        strings(&admin.body["units"], "id"),
        ["d", "s2", "c2", "g3", "t1", "v1", "g1", "g2"],
        "ordered by path, parents first"
    );
    assert!(admin.body["ancestors"].as_array().expect("list").is_empty());
}

async fn an_admin_creates_users_only_in_units_their_role_fits(t: &TestStore) {
    let api = api(t).await;
    let admin = api.token("admin").await;
    for (username, role, unit) in [
        ("nw", "grid_worker", "g3"),
        ("nc", "village_cadre", "v1"),
        ("ncc", "village_cadre", "c2"),
        ("nt", "township_staff", "t1"),
        ("ns", "township_staff", "s2"),
        ("no", "drug_control_officer", "s2"),
        ("na", "district_admin", "d"),
    ] {
        let r = api.new_user(&admin, username, role, unit).await;
        ok(&r, StatusCode::CREATED);
        assert_eq!(
            (&r.body["username"], &r.body["role"], &r.body["org_unit_id"]),
            (&json!(username), &json!(role), &json!(unit))
        );
        assert_eq!(r.body["disabled"], json!(false));
    }
    // The new worker logs in and reads their own grid.
    let token = api.token("nw").await;
    assert_eq!(
        api.get("/api/v1/org", &token).await.body["root"],
        json!("g3")
    );

    let users = api.store.count_users().await.expect("count");
    for (username, role, unit) in [
        ("x1", "grid_worker", "v1"),
        ("x2", "village_cadre", "g1"),
        ("x3", "village_cadre", "t1"),
        ("x4", "township_staff", "c2"),
        ("x5", "drug_control_officer", "g1"),
        ("x6", "district_admin", "t1"),
        ("x7", "grid_worker", "no-such-grid"),
    ] {
        api.new_user(&admin, username, role, unit)
            .await
            .assert_problem(StatusCode::BAD_REQUEST, "bad_request");
    }
    api.new_user(&admin, "x8", "superuser", "d")
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "invalid_json");
    assert_eq!(api.store.count_users().await.expect("count"), users);
}

async fn weak_passwords_bad_usernames_and_taken_usernames_are_refused(t: &TestStore) {
    let api = api(t).await;
    let admin = api.token("admin").await;
    let users = api.store.count_users().await.expect("count");
    let create = |username: &str, display: &str, pw: &str| {
        json!({ "username": username, "display_name": display, "password": pw,
                "role": "grid_worker", "org_unit_id": "g1" })
    };
    for body in [
        create("x", "x", "123456789"),
        create("x", "x", "九个字的密码不够长"),
        create("x", "x", ""),
        create("x", "x", &"p".repeat(1025)),
        create("", "x", PW),
        create("a b", "x", PW),
        create("a\tb", "x", PW),
        create(&"u".repeat(65), "x", PW),
        create("x", " ", PW),
        create("x", "a\u{0}b", PW),
    ] {
        api.call("POST", "/api/v1/users", &admin, body)
            .await
            .assert_problem(StatusCode::BAD_REQUEST, "bad_request");
    }
    assert_eq!(api.store.count_users().await.expect("count"), users);
    ok(
        &api.call(
            "POST",
            "/api/v1/users",
            &admin,
            create("ten", "十", "十个字的密码足够长了"),
        )
        .await,
        StatusCode::CREATED,
    );
    api.call("POST", "/api/v1/users", &admin, create("ten", "again", PW))
        .await
        .assert_problem(StatusCode::CONFLICT, "conflict");
    api.call("POST", "/api/v1/users", &admin, create("w1", "again", PW))
        .await
        .assert_problem(StatusCode::CONFLICT, "conflict");
    assert_eq!(api.store.count_users().await.expect("count"), users + 1);
}

async fn no_answer_ever_holds_a_password_hash(t: &TestStore) {
    let api = api(t).await;
    let admin = api.token("admin").await;
    let created = api.new_user(&admin, "nw", "grid_worker", "g1").await;
    let id = created.body["id"].as_str().expect("id").to_owned();
    let patched = api
        .patch_user(&admin, &id, json!({ "password": "another password" }))
        .await;
    let list = api.get("/api/v1/users", &admin).await;
    let audit = api.get("/api/v1/audit", &admin).await;
    for (what, r) in [
        ("create", &created),
        ("patch", &patched),
        ("list", &list),
        ("audit", &audit),
    ] {
        assert!(r.status.is_success(), "{what}: {}", r.body);
        let text = r.body.to_string();
        assert!(
            !text.contains("argon2") && !text.contains("password_hash"),
            "{what}: {text}"
        );
        assert!(
            !text.contains(PW) && !text.contains("another password"),
            "{what}"
        );
    }
}

async fn only_admins_change_users_and_the_org_and_read_the_audit_log(t: &TestStore) {
    let api = api(t).await;
    let users = api.store.count_users().await.expect("count");
    let units = api.org_count().await;
    for who in ["w1", "c1", "ts", "o1"] {
        let token = api.token(who).await;
        api.new_user(&token, "x", "grid_worker", "g1")
            .await
            .assert_problem(StatusCode::FORBIDDEN, "forbidden");
        api.patch_user(&token, "w2", json!({ "disabled": true }))
            .await
            .assert_problem(StatusCode::FORBIDDEN, "forbidden");
        api.new_unit(&token, "x", "v1", "grid")
            .await
            .assert_problem(StatusCode::FORBIDDEN, "forbidden");
        api.call("PATCH", "/api/v1/org/g1", &token, json!({ "name": "x" }))
            .await
            .assert_problem(StatusCode::FORBIDDEN, "forbidden");
        api.get("/api/v1/audit", &token)
            .await
            .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    }
    for who in ["w1", "o1"] {
        api.get("/api/v1/users", &api.token(who).await)
            .await
            .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    }
    for path in ["/api/v1/users", "/api/v1/org", "/api/v1/audit"] {
        api.send(
            axum::http::Request::get(path)
                .body(axum::body::Body::empty())
                .expect("request"),
        )
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthenticated");
    }
    assert_eq!(api.store.count_users().await.expect("count"), users);
    assert_eq!(api.org_count().await, units);
    let w2 = api.store.user("w2").await.expect("read").expect("w2");
    assert!(!w2.disabled);
}

async fn the_user_list_follows_the_callers_place_in_the_tree_and_pages(t: &TestStore) {
    let api = api(t).await;
    let list = |token: String| {
        let api = &api;
        async move {
            let r = api.get("/api/v1/users", &token).await;
            ok(&r, StatusCode::OK);
            assert_eq!(
                r.body["total"].as_u64().expect("total") as usize,
                r.body["items"].as_array().expect("items").len()
            );
            strings(&r.body["items"], "username")
        }
    };
    assert_eq!(
        list(api.token("admin").await).await,
        ["admin", "c1", "c2cadre", "o1", "ts", "w1", "w2", "w3"]
    );
    assert_eq!(list(api.token("c1").await).await, ["c1", "w1", "w2"]);
    assert_eq!(list(api.token("c2cadre").await).await, ["c2cadre", "w3"]);
    assert_eq!(
        list(api.token("ts").await).await,
        ["c1", "o1", "ts", "w1", "w2"]
    );

    let admin = api.token("admin").await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let path = match &cursor {
            Some(c) => format!("/api/v1/users?limit=3&cursor={}", enc(c)),
            None => "/api/v1/users?limit=3".into(),
        };
        let r = api.get(&path, &admin).await;
        ok(&r, StatusCode::OK);
        assert_eq!(r.body["total"], json!(8));
        let page = strings(&r.body["items"], "username");
        assert!(page.len() <= 3);
        seen.extend(page);
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(
        seen,
        ["admin", "c1", "c2cadre", "o1", "ts", "w1", "w2", "w3"]
    );
    let r = api.get("/api/v1/users?limit=8", &admin).await;
    assert_eq!(r.body["next_cursor"], Value::Null, "no empty last page");
}

async fn bad_list_parameters_are_answered_400_as_problem_details(t: &TestStore) {
    let api = api(t).await;
    let admin = api.token("admin").await;
    for path in [
        "/api/v1/users?limit=0",
        "/api/v1/users?limit=201",
        "/api/v1/users?limit=-1",
        "/api/v1/users?limit=abc",
        "/api/v1/users?limit=99999999999999999999",
        "/api/v1/users?role=grid_worker",
        "/api/v1/audit?limit=0",
        "/api/v1/audit?from=yesterday",
        "/api/v1/audit?to=1.5",
        "/api/v1/audit?cursor=abc",
        "/api/v1/audit?doc_id=not-a-uuid",
        "/api/v1/audit?userid=admin",
        "/api/v1/audit?from=%ZZ",
    ] {
        let r = api.get(path, &admin).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}: {}", r.body);
        r.assert_problem(StatusCode::BAD_REQUEST, "bad_request");
    }
}

async fn moving_a_worker_to_another_grid_keeps_their_phone_which_then_sees_the_new_grid(
    t: &TestStore,
) {
    let api = api(t).await;
    let admin = api.token("admin").await;
    let (phone, refresh) = api.tokens("w1", PW, "w1-phone").await;
    let r = api
        .patch_user(&admin, "w1", json!({ "org_unit_id": "g2" }))
        .await;
    ok(&r, StatusCode::OK);
    assert_eq!(r.body["user"]["org_unit_id"], json!("g2"));
    assert_eq!(r.body["retiring_devices"], json!([]));

    // The same session, at once under the new scope: the phone delivers what it holds, drops
    // what it may no longer see, and pulls the new grid (field_held shows it whole).
    let tree = api.get("/api/v1/org", &phone).await;
    ok(&tree, StatusCode::OK);
    assert_eq!(tree.body["root"], json!("g2"));
    ok(&api.refresh(&refresh).await, StatusCode::OK);
}

async fn a_role_change_keeps_devices_and_disabling_retires_them(t: &TestStore) {
    let api = api(t).await;
    let admin = api.token("admin").await;
    let (phone, _) = api.tokens("w1", PW, "p1").await;
    let r = api
        .patch_user(&admin, "w1", json!({ "display_name": "王芳" }))
        .await;
    ok(&r, StatusCode::OK);
    assert_eq!(r.body["retiring_devices"], json!([]));
    ok(&api.get("/api/v1/org", &phone).await, StatusCode::OK);

    let r = api
        .patch_user(
            &admin,
            "w1",
            json!({ "role": "village_cadre", "org_unit_id": "v1" }),
        )
        .await;
    ok(&r, StatusCode::OK);
    assert_eq!(r.body["retiring_devices"], json!([]));
    let users = api.get("/api/v1/users", &phone).await;
    ok(&users, StatusCode::OK);

    // Disabling retires the live devices: they may still deliver (a sync), nothing else.
    let r = api
        .patch_user(&admin, "w1", json!({ "disabled": true }))
        .await;
    ok(&r, StatusCode::OK);
    assert_eq!(r.body["retiring_devices"], json!(["p1"]));
    api.get("/api/v1/org", &phone)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "account_disabled");
    api.login("w1", PW, "p3")
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "account_disabled");
    let r = api
        .patch_user(&admin, "w1", json!({ "disabled": false }))
        .await;
    assert_eq!(r.body["retiring_devices"], json!([]));
    api.tokens("w1", PW, "p3").await;

    api.patch_user(&admin, "nobody", json!({ "disabled": true }))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    api.patch_user(&admin, "w2", json!({}))
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "bad_request");
}

async fn a_role_that_does_not_fit_the_unit_is_refused_and_revokes_nothing(t: &TestStore) {
    let api = api(t).await;
    let admin = api.token("admin").await;
    let (phone, _) = api.tokens("w1", PW, "p1").await;
    for body in [
        json!({ "role": "township_staff" }),
        json!({ "org_unit_id": "v1" }),
        json!({ "role": "village_cadre", "org_unit_id": "g2" }),
        json!({ "org_unit_id": "no-such-grid" }),
        json!({ "display_name": "" }),
        json!({ "password": "short" }),
    ] {
        api.patch_user(&admin, "w1", body)
            .await
            .assert_problem(StatusCode::BAD_REQUEST, "bad_request");
    }
    ok(&api.get("/api/v1/org", &phone).await, StatusCode::OK);
    let w1 = api.store.user("w1").await.expect("read").expect("w1");
    assert_eq!((w1.role, w1.org_unit_id.as_str()), (Role::GridWorker, G1));
}

async fn an_admin_cannot_disable_or_demote_themselves(t: &TestStore) {
    let api = api(t).await;
    let admin = api.token("admin").await;
    for body in [
        json!({ "disabled": true }),
        json!({ "role": "township_staff", "org_unit_id": "t1" }),
    ] {
        api.patch_user(&admin, "admin", body)
            .await
            .assert_problem(StatusCode::BAD_REQUEST, "bad_request");
    }
    let r = api
        .patch_user(&admin, "admin", json!({ "display_name": "区平安办" }))
        .await;
    ok(&r, StatusCode::OK);
    ok(&api.get("/api/v1/audit", &admin).await, StatusCode::OK);
}

async fn a_new_password_replaces_the_old_one(t: &TestStore) {
    let api = api(t).await;
    let admin = api.token("admin").await;
    let (phone, _) = api.tokens("w1", PW, "p1").await;
    let r = api
        .patch_user(&admin, "w1", json!({ "password": "a new password" }))
        .await;
    ok(&r, StatusCode::OK);
    assert_eq!(r.body["retiring_devices"], json!([]));
    assert_eq!(r.body["ended_sessions"], json!(1));
    api.login("w1", PW, "p1")
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "invalid_credentials");
    // The reset ended the phone's session; the phone logs in again as the same device.
    api.get("/api/v1/org", &phone)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "session_ended");
    let (phone, _) = api.tokens("w1", "a new password", "p1").await;
    ok(&api.get("/api/v1/org", &phone).await, StatusCode::OK);
}

async fn every_admin_action_is_audited_and_the_log_filters_and_pages(t: &TestStore) {
    let api = api(t).await;
    let admin = api.token("admin").await;
    ok(
        &api.new_unit(&admin, "g9", "v1", "grid").await,
        StatusCode::CREATED,
    );
    ok(
        &api.call(
            "PATCH",
            "/api/v1/org/g9",
            &admin,
            json!({ "name": "九网格" }),
        )
        .await,
        StatusCode::OK,
    );
    let created = api.new_user(&admin, "nw", "grid_worker", "g9").await;
    let nw = created.body["id"].as_str().expect("id").to_owned();
    api.tokens("nw", PW, "nw-phone").await;
    ok(
        &api.patch_user(&admin, &nw, json!({ "org_unit_id": "g1" }))
            .await,
        StatusCode::OK,
    );

    let all = api.get("/api/v1/audit?limit=200", &admin).await;
    ok(&all, StatusCode::OK);
    let total = all.body["total"].clone();
    let actions = strings(&all.body["items"], "action");
    assert_eq!(
        actions.iter().filter(|a| *a != "login").collect::<Vec<_>>(),
        ["user_update", "user_create", "org_update", "org_create"],
        "newest first"
    );
    assert_eq!(actions.iter().filter(|a| *a == "login").count(), 2);
    let items = all.body["items"].as_array().expect("items");
    let entry = |action: &str| {
        items
            .iter()
            .find(|i| i["action"] == json!(action))
            .expect("audited")
            .clone()
    };
    for action in ["user_update", "user_create", "org_update", "org_create"] {
        let item = entry(action);
        assert_eq!(item["user_id"], json!("admin"));
        assert_eq!(item["device_id"], json!("admin-device"));
    }
    let update = entry("user_update");
    assert_eq!(update["detail"]["user"], json!(nw));
    assert_eq!(update["detail"]["retiring_devices"], json!([]));
    assert_eq!(update["detail"]["changed"], json!(["org_unit_id"]));
    assert_eq!(entry("user_create")["detail"]["user"], json!(nw));
    assert_eq!(entry("org_create")["detail"]["unit"], json!("g9"));
    assert_eq!(entry("org_update")["detail"]["old_name"], json!("单位 g9"));

    let r = api.get("/api/v1/audit?action=user_create", &admin).await;
    assert_eq!(strings(&r.body["items"], "action"), ["user_create"]);
    assert_eq!(r.body["total"], json!(1));
    let r = api.get("/api/v1/audit?user_id=w1", &admin).await;
    assert_eq!(
        (r.body["total"].clone(), r.body["items"].clone()),
        (json!(0), json!([]))
    );
    let r = api
        .get(&format!("/api/v1/audit?user_id={nw}"), &admin)
        .await;
    assert_eq!(strings(&r.body["items"], "action"), ["login"]);
    let r = api
        .get("/api/v1/audit?user_id=admin&action=org_create", &admin)
        .await;
    assert_eq!(r.body["total"], json!(1));
    let r = api
        .get(
            "/api/v1/audit?doc_id=00000000-0000-0000-0000-00000000004d",
            &admin,
        )
        .await;
    assert_eq!(r.body["total"], json!(0));

    let now = gridsync_server::clock::now();
    let r = api
        .get(
            &format!("/api/v1/audit?from={}&to={}", now - 600, now + 600),
            &admin,
        )
        .await;
    assert_eq!(r.body["total"], total);
    let r = api
        .get(&format!("/api/v1/audit?to={}", now - 600), &admin)
        .await;
    assert_eq!(r.body["total"], json!(0));
    let r = api
        .get(&format!("/api/v1/audit?from={}", now + 600), &admin)
        .await;
    assert_eq!(r.body["total"], json!(0));

    let mut seen = Vec::new();
    let mut path = "/api/v1/audit?limit=3".to_owned();
    loop {
        let r = api.get(&path, &admin).await;
        ok(&r, StatusCode::OK);
        assert_eq!(r.body["total"], total);
        seen.extend(strings(&r.body["items"], "action"));
        match r.body["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/audit?limit=3&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, actions);
}

async fn sql_metacharacters_in_every_filter_get_4xx_or_a_correct_result(t: &TestStore) {
    let api = api(t).await;
    let admin = api.token("admin").await;
    ok(
        &api.new_unit(&admin, "g9", "v1", "grid").await,
        StatusCode::CREATED,
    );
    let users = api.store.count_users().await.expect("count");
    let audits = api.audit_count().await;
    for nasty in NASTY {
        let e = enc(nasty);
        for param in ["user_id", "action"] {
            let r = api.get(&format!("/api/v1/audit?{param}={e}"), &admin).await;
            ok(&r, StatusCode::OK);
            assert_eq!(
                (r.body["total"].clone(), r.body["items"].clone()),
                (json!(0), json!([]))
            );
        }
        for param in ["doc_id", "cursor", "from", "to", "limit"] {
            let r = api.get(&format!("/api/v1/audit?{param}={e}"), &admin).await;
            r.assert_problem(StatusCode::BAD_REQUEST, "bad_request");
        }
        api.get(&format!("/api/v1/users?limit={e}"), &admin)
            .await
            .assert_problem(StatusCode::BAD_REQUEST, "bad_request");
        // A cursor is a username: the users after it, whatever it holds.
        let r = api.get(&format!("/api/v1/users?cursor={e}"), &admin).await;
        ok(&r, StatusCode::OK);
        let after: Vec<String> = strings(&r.body["items"], "username");
        assert!(
            after.iter().all(|u| u.as_str() > nasty),
            "{nasty}: {after:?}"
        );
        api.patch_user(&admin, &e, json!({ "disabled": true }))
            .await
            .assert_problem(StatusCode::NOT_FOUND, "not_found");
        api.call(
            "PATCH",
            &format!("/api/v1/org/{e}"),
            &admin,
            json!({ "name": "x" }),
        )
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
        api.new_unit(&admin, nasty, "v1", "grid")
            .await
            .assert_problem(StatusCode::BAD_REQUEST, "bad_request");
        api.new_unit(&admin, "g99", nasty, "grid")
            .await
            .assert_problem(StatusCode::BAD_REQUEST, "bad_request");
        api.new_user(&admin, "nx", "grid_worker", nasty)
            .await
            .assert_problem(StatusCode::BAD_REQUEST, "bad_request");
    }
    // Metacharacters are fine in a name and in a username without spaces, and stay literal.
    let odd = "o'%_\\\"--";
    let r = api.new_user(&admin, odd, "grid_worker", "g9").await;
    ok(&r, StatusCode::CREATED);
    let id = r.body["id"].as_str().expect("id").to_owned();
    let r = api
        .call(
            "PATCH",
            "/api/v1/org/g9",
            &admin,
            json!({ "name": "'; DROP TABLE org_units; --" }),
        )
        .await;
    ok(&r, StatusCode::OK);
    let r = api
        .get(&format!("/api/v1/users?cursor={}", enc("o")), &admin)
        .await;
    assert_eq!(strings(&r.body["items"], "username")[0], odd);
    let r = api
        .get(
            &format!("/api/v1/audit?user_id=admin&action={}", enc("user_create")),
            &admin,
        )
        .await;
    assert_eq!(r.body["items"][0]["detail"]["user"], json!(id));

    // Nothing was broken: everything is still there and the server still serves.
    assert_eq!(api.store.count_users().await.expect("count"), users + 1);
    assert_eq!(api.audit_count().await, audits + 2);
    let unit = api.store.org_unit("g9").await.expect("read").expect("g9");
    assert_eq!(unit.name, "'; DROP TABLE org_units; --");
    let c1 = api.get("/api/v1/users", &api.token("c1").await).await;
    assert_eq!(
        strings(&c1.body["items"], "username"),
        ["c1", odd, "w1", "w2"]
    );
    api.tokens(odd, PW, "odd-phone").await;
}

async fn malformed_json_and_unknown_fields_are_refused_and_nothing_is_stored(t: &TestStore) {
    let api = api(t).await;
    let admin = api.token("admin").await;
    let users = api.store.count_users().await.expect("count");
    let units = api.org_count().await;
    let audits = api.audit_count().await;
    for (method, path, body) in [
        ("POST", "/api/v1/org", "{\"id\": "),
        ("POST", "/api/v1/org", "[]"),
        (
            "POST",
            "/api/v1/org",
            r#"{"id":"g9","parent_id":"v1","level":"grid","name":"x","path":"/g9/"}"#,
        ),
        (
            "POST",
            "/api/v1/org",
            r#"{"id":"g9","parent_id":"v1","level":"grid"}"#,
        ),
        ("PATCH", "/api/v1/org/g1", r#"{"name":"x","path":"/x/"}"#),
        ("PATCH", "/api/v1/org/g1", r#"{"name":7}"#),
        ("POST", "/api/v1/users", "not json"),
        (
            "POST",
            "/api/v1/users",
            r#"{"username":"x","display_name":"x","password":"long enough password","role":"grid_worker","org_unit_id":"g1","password_hash":"$argon2id$"}"#,
        ),
        (
            "POST",
            "/api/v1/users",
            r#"{"username":"x","display_name":"x","password":"long enough password","role":"grid_worker","org_unit_id":"g1","disabled":true}"#,
        ),
        ("PATCH", "/api/v1/users/w1", r#"{"username":"w9"}"#),
        ("PATCH", "/api/v1/users/w1", r#"{"disabled":"yes"}"#),
        ("PATCH", "/api/v1/users/w1", r#"{"role":"root"}"#),
    ] {
        let r = api.send(authed_json(method, path, &admin, body)).await;
        assert_eq!(
            r.status,
            StatusCode::BAD_REQUEST,
            "{method} {path} {body}: {}",
            r.body
        );
        r.assert_problem(StatusCode::BAD_REQUEST, "invalid_json");
    }
    assert_eq!(api.store.count_users().await.expect("count"), users);
    assert_eq!(api.org_count().await, units);
    assert_eq!(api.audit_count().await, audits);
    let w1 = api.store.user("w1").await.expect("read").expect("w1");
    assert_eq!((w1.username.as_str(), w1.disabled), ("w1", false));
    let g1 = api.store.org_unit("g1").await.expect("read").expect("g1");
    assert_eq!(g1.name, "一网格");
}

async fn the_openapi_document_lists_the_admin_endpoints(t: &TestStore) {
    let api = api_over(t).await;
    let r = api
        .send(
            axum::http::Request::get("/openapi.json")
                .body(axum::body::Body::empty())
                .expect("request"),
        )
        .await;
    ok(&r, StatusCode::OK);
    for (path, method) in [
        ("/api/v1/org", "get"),
        ("/api/v1/org", "post"),
        ("/api/v1/org/{id}", "patch"),
        ("/api/v1/users", "get"),
        ("/api/v1/users", "post"),
        ("/api/v1/users/{id}", "patch"),
        ("/api/v1/audit", "get"),
    ] {
        let op = &r.body["paths"][path][method];
        assert!(op.is_object(), "{method} {path} missing");
        assert!(
            op["security"].is_array(),
            "{method} {path} needs a bearer token"
        );
    }
    let audit_params = strings(
        &r.body["paths"]["/api/v1/audit"]["get"]["parameters"],
        "name",
    );
    for p in [
        "user_id", "action", "doc_id", "from", "to", "cursor", "limit",
    ] {
        assert!(audit_params.iter().any(|n| n == p), "{p}");
    }
}
