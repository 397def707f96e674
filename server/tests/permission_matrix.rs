//! The permission matrix: every role against every endpoint, on reports inside and outside its
//! scope, ordinary and restricted (drug-control cases), with sensitive fields. Each cell asserts
//! the exact status, and lists and pulls must hold exactly the reports the role may see, with
//! personal data redacted exactly for the role without clearance. The whole matrix runs twice:
//! on the built-in kinds, and on kinds an office published at runtime with the same fields and
//! access rules, which no line of the server's code names.

mod support;

use std::collections::BTreeSet;

use axum::http::StatusCode;
use gridsync_core::DocId;
use gridsync_core::protocol::{
    self, Pull, PullResult, Push, PushDoc, PushOutcome, PushResult, Relay,
};
use gridsync_core::replica::Replica;
use gridsync_core::report::{Editor, ReportDoc};

use gridsync_fixtures::reports::{dispute_of, drug_case_of};
use gridsync_server::scope::Role;
use gridsync_server::store::{ConflictQuery, UploadChunk, UploadOutcome};
use serde_json::{Value, json};
use support::http::{Api, add_user, api_over, authed, frame_request};
use support::*;

on_both_test_stores!(
    every_role_gets_exactly_what_it_may_on_every_endpoint,
    every_role_gets_exactly_what_it_may_on_kinds_published_at_runtime,
);

/// The ordinary kind and the restricted kind the reports are of.
#[derive(Debug, Clone, Copy)]
struct Kinds {
    ordinary: &'static str,
    restricted: &'static str,
}

const BUILT_IN: Kinds = Kinds {
    ordinary: "dispute_check",
    restricted: "drug_control_case",
};

/// Published at runtime with the fields and access of the built-in kinds.
const RUNTIME: Kinds = Kinds {
    ordinary: "village_grievance",
    restricted: "rehab_follow_up",
};

const PW: &str = "matrix password";

/// (user, role, org unit)
const ROLES: [(&str, Role, &str); 5] = [
    ("w1", Role::GridWorker, G1),
    ("c1", Role::VillageCadre, "v1"),
    ("ts", Role::TownshipStaff, "t1"),
    ("o1", Role::DrugControlOfficer, "t1"),
    ("admin", Role::DistrictAdmin, "d"),
];

/// The reports: a dispute in g1 and one in g3 (another street), a drug case in g1 assigned to
/// w1 and one in g3 assigned to someone else.
const REPORTS: [u128; 4] = [1, 2, 3, 4];

/// Which report each role may see, in the order of `ROLES` and `REPORTS`, written out rather
/// than derived from the code under test.
const VISIBLE: [[bool; 4]; 5] = [
    [true, false, true, false],  // w1: own grid, own case
    [true, false, false, false], // c1: the village, no drug cases
    [true, false, false, false], // ts: the township, no drug cases
    [false, false, true, false], // o1: drug cases of the township only
    [true, true, true, true],    // admin
];

/// The photo every report names and holds.
const PHOTO: &[u8] = b"not really a JPEG, but bytes all the same";

fn photo_hash() -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(PHOTO))
}

/// Whether the role reads personal data.
const CLEARANCE: [bool; 5] = [true, true, false, true, true];

/// A sensitive field of each report and its value.
fn sensitive(report: u128) -> (&'static str, &'static str) {
    if report <= 2 {
        ("parties", "张三、李四")
    } else {
        ("subject_name", "王五")
    }
}

/// A non-sensitive field an edit may set, with a valid value; not one held in conflict, which
/// the edit would resolve.
fn ordinary(report: u128) -> (&'static str, Value) {
    if report <= 2 {
        ("risk_level", json!("high"))
    } else {
        ("programme_start", json!("2026-01-01"))
    }
}

struct Cells(usize);

impl Cells {
    fn check(&mut self, what: &str, got: StatusCode, want: StatusCode) {
        self.0 += 1;
        assert_eq!(got, want, "{what}");
    }
}

fn id(n: u128) -> DocId {
    DocId::from_u128(n)
}

async fn frame(api: &Api, path: &str, token: &str, body: Vec<u8>) -> (StatusCode, Vec<u8>) {
    let r = api.send_raw(frame_request(path, token, body)).await;
    (r.status, r.bytes)
}

async fn seed(t: &TestStore, kinds: Kinds) -> Vec<ReportDoc> {
    let store = t.store.as_ref();
    seed_org(store).await;
    if kinds.ordinary != BUILT_IN.ordinary {
        for (builtin, kind, zh) in [
            (BUILT_IN.ordinary, kinds.ordinary, "村民诉求"),
            (BUILT_IN.restricted, kinds.restricted, "康复随访"),
        ] {
            forms::publish(store, &forms::twin(builtin, kind, zh))
                .await
                .expect("publish");
        }
    }
    for (user, role, unit) in ROLES {
        add_user(store, user, role, unit, PW, false).await;
    }
    let mut docs = vec![
        dispute_of(kinds.ordinary, 1, G1, "admin"),
        dispute_of(kinds.ordinary, 2, G3, "admin"),
        drug_case_of(kinds.restricted, 3, G1, "admin", "w1"),
        drug_case_of(kinds.restricted, 4, G3, "admin", "w9"),
    ];
    for (doc, n) in docs.iter_mut().zip(REPORTS) {
        let (field, value) = sensitive(n);
        doc.set_field(field, &json!(value), &Editor::new("admin", 1_002))
            .expect("set");
        // The same photo on every report: a site photo, or a drug-control visit's record.
        if n <= 2 {
            attach(doc, "admin", "site_photos", "image/jpeg", PHOTO);
        } else {
            let mut visit = serde_json::Map::new();
            visit.insert("date".into(), json!("2026-11-03"));
            let entry = doc
                .append_log(&visit, &Editor::new("admin", 1_002))
                .expect("visit");
            attach_named(
                doc,
                "admin",
                "visit_record",
                Some(&entry),
                "image/jpeg",
                &photo_hash(),
                PHOTO.len(),
            );
        }
    }
    let mut refs: Vec<&mut ReportDoc> = docs.iter_mut().collect();
    let result = ingest(store, &admin(), &push_all(&mut refs))
        .await
        .expect("ingest");
    assert!(result.docs.iter().all(|d| is_acked(&d.outcome)));
    let hash = photo_hash();
    for n in REPORTS {
        let outcome = store
            .upload_chunk(&UploadChunk {
                doc_id: id(n),
                hash: &hash,
                media_type: "image/jpeg",
                total: PHOTO.len() as i64,
                offset: 0,
                bytes: PHOTO,
                user_id: "admin",
                now: 1_800_000_000,
            })
            .await
            .expect("upload");
        assert!(
            matches!(outcome, UploadOutcome::Complete { .. }),
            "{outcome:?}"
        );
    }
    store
        .put_thumbnail(&hash, b"thumbnail", 1_800_000_000)
        .await
        .expect("thumbnail");
    // Two open conflicts on the g1 dispute (so two roles can each resolve one) and one on g3.
    for (n, fields) in [(1, &["place", "description"][..]), (2, &["place"][..])] {
        let doc = &mut docs[n - 1];
        let base = doc.heads();
        let mut other = doc.clone();
        other = ReportDoc::load(other.id(), &other.save()).expect("fork");
        for field in fields {
            doc.set_field(field, &json!("甲"), &Editor::new("admin", 2_000))
                .expect("edit");
            other
                .set_field(field, &json!("乙"), &Editor::new("admin", 2_001))
                .expect("edit");
        }
        for d in [&mut *doc, &mut other] {
            let push = Push {
                docs: vec![PushDoc {
                    doc: d.id(),
                    changes: d.changes_since(&base),
                }],
            };
            let result = ingest(store, &admin(), &push).await.expect("ingest");
            assert!(is_acked(&result.docs[0].outcome));
        }
        doc.apply_changes(&other.changes_since(&base))
            .expect("merge");
    }
    docs
}

async fn every_role_gets_exactly_what_it_may_on_every_endpoint(t: &TestStore) {
    matrix(t, BUILT_IN).await;
}

async fn every_role_gets_exactly_what_it_may_on_kinds_published_at_runtime(t: &TestStore) {
    matrix(t, RUNTIME).await;
}

async fn matrix(t: &TestStore, kinds: Kinds) {
    let docs = seed(t, kinds).await;
    let api = api_over(t).await;
    let mut cells = Cells(0);
    let mut resolved: BTreeSet<i64> = BTreeSet::new();
    let conflicts = t
        .store
        .list_conflicts(
            &gridsync_server::scope::Scope::for_role("admin", Role::DistrictAdmin, "/d/"),
            &ConflictQuery {
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .expect("conflicts")
        .items;
    assert_eq!(conflicts.len(), 3);

    for (r, (user, role, _)) in ROLES.iter().enumerate() {
        let (token, _) = api.tokens(user, PW, &format!("{user}-device")).await;
        let visible: BTreeSet<DocId> = REPORTS
            .iter()
            .zip(VISIBLE[r])
            .filter(|(_, v)| *v)
            .map(|(n, _)| id(*n))
            .collect();

        // The report list holds exactly the visible reports, redacted exactly without clearance.
        let list = api.get("/api/v1/reports?limit=200", &token).await;
        cells.check(
            &format!("{user} lists reports"),
            list.status,
            StatusCode::OK,
        );
        let listed: BTreeSet<DocId> = list.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| i["id"].as_str().expect("id").parse().expect("uuid"))
            .collect();
        assert_eq!(listed, visible, "{user}'s list");
        for item in list.body["items"].as_array().expect("items") {
            let n = item["id"]
                .as_str()
                .expect("id")
                .parse::<DocId>()
                .expect("uuid")
                .as_u128();
            let (field, value) = sensitive(n);
            let want = if CLEARANCE[r] { value } else { "***" };
            assert_eq!(
                item["fields"][field],
                json!(want),
                "{user} lists {n}.{field}"
            );
        }

        for (k, n) in REPORTS.iter().enumerate() {
            let seen = VISIBLE[r][k];
            let found = if seen {
                StatusCode::OK
            } else {
                StatusCode::NOT_FOUND
            };
            let path = format!("/api/v1/reports/{}", id(*n));

            let get = api.get(&path, &token).await;
            cells.check(&format!("{user} GET report {n}"), get.status, found);
            if seen {
                let (field, value) = sensitive(*n);
                let want = if CLEARANCE[r] { value } else { "***" };
                assert_eq!(
                    get.body["fields"][field],
                    json!(want),
                    "{user} reads {n}.{field}"
                );
            }
            let history = api.get(&format!("{path}/history"), &token).await;
            cells.check(&format!("{user} GET history {n}"), history.status, found);

            // Attachment bytes and thumbnails: personal data, so clearance on top of scope.
            let want = match (seen, CLEARANCE[r]) {
                (false, _) => StatusCode::NOT_FOUND,
                (true, false) => StatusCode::FORBIDDEN,
                (true, true) => StatusCode::OK,
            };
            for suffix in ["", "/thumbnail"] {
                let url = format!("{path}/attachments/{}{suffix}", photo_hash());
                let res = api.send_raw(authed("GET", &url, &token)).await;
                cells.check(
                    &format!("{user} GET attachment{suffix} {n}"),
                    res.status,
                    want,
                );
            }

            let (field, value) = ordinary(*n);
            let patch = api
                .call(
                    "PATCH",
                    &path,
                    &token,
                    json!({ "fields": { field: value } }),
                )
                .await;
            cells.check(&format!("{user} PATCH report {n}"), patch.status, found);

            let review = api
                .call(
                    "POST",
                    &format!("{path}/review"),
                    &token,
                    json!({ "state": "needs_attention" }),
                )
                .await;
            let want = if *role == Role::GridWorker {
                StatusCode::FORBIDDEN
            } else {
                found
            };
            cells.check(&format!("{user} reviews {n}"), review.status, want);
        }

        // Conflicts: the list holds those of visible reports; resolving follows role and scope.
        let list = api.get("/api/v1/conflicts?limit=200", &token).await;
        cells.check(
            &format!("{user} lists conflicts"),
            list.status,
            StatusCode::OK,
        );
        let listed: BTreeSet<i64> = list.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| i["id"].as_i64().expect("id"))
            .collect();
        let want: BTreeSet<i64> = conflicts
            .iter()
            .filter(|c| visible.contains(&c.conflict.doc_id))
            .map(|c| c.conflict.id)
            .filter(|id| !resolved.contains(id))
            .collect();
        assert_eq!(listed, want, "{user}'s conflicts");
        for c in &conflicts {
            // Each resolving role takes its own conflict, so every cell meets an open one.
            let owner = match (c.conflict.doc_id.as_u128(), c.conflict.path.as_str()) {
                (1, "fields.place") => "c1",
                (1, _) => "ts",
                _ => "admin",
            };
            if *role != Role::GridWorker && visible.contains(&c.conflict.doc_id) && owner != *user {
                continue;
            }
            let resolve = api
                .call(
                    "POST",
                    &format!("/api/v1/conflicts/{}/resolve", c.conflict.id),
                    &token,
                    json!({ "value": "丙" }),
                )
                .await;
            let want = if *role == Role::GridWorker {
                StatusCode::FORBIDDEN
            } else if visible.contains(&c.conflict.doc_id) {
                StatusCode::OK
            } else {
                StatusCode::NOT_FOUND
            };
            cells.check(
                &format!(
                    "{user} resolves conflict {} ({})",
                    c.conflict.id, c.conflict.path
                ),
                resolve.status,
                want,
            );
            if resolve.status == StatusCode::OK {
                resolved.insert(c.conflict.id);
            }
        }

        // Sync: a pull holds exactly the visible reports; a push to the other street's dispute
        // is refused for that report; the role without clearance may not sync at all.
        let mut replica = Replica::new();
        let (status, body) = frame(
            &api,
            "/api/v1/sync/pull",
            &token,
            protocol::encode(&replica.build_pull(1 << 20)),
        )
        .await;
        let mut outside = ReportDoc::load(id(2), &docs[1].clone().save()).expect("copy");
        let base = outside.heads();
        outside
            .set_field("place", &json!("外部"), &Editor::new(*user, 3_000))
            .expect("edit");
        let push = Push {
            docs: vec![PushDoc {
                doc: id(2),
                changes: outside.changes_since(&base),
            }],
        };
        let (push_status, push_body) =
            frame(&api, "/api/v1/sync/push", &token, protocol::encode(&push)).await;
        if CLEARANCE[r] {
            cells.check(&format!("{user} pulls"), status, StatusCode::OK);
            let page: PullResult = protocol::decode(&body).expect("frame");
            replica.apply_pull_result(page).expect("apply");
            let pulled: BTreeSet<DocId> = replica.ids().copied().collect();
            assert_eq!(pulled, visible, "{user}'s pull");
            cells.check(&format!("{user} pushes"), push_status, StatusCode::OK);
            let result: PushResult = protocol::decode(&push_body).expect("frame");
            // Not applied, but kept as held work for the report's own people.
            let held = matches!(
                &result.docs[0].outcome,
                PushOutcome::Held { code, .. } if code == "out_of_scope"
            );
            assert_eq!(!held, VISIBLE[r][1], "{user} pushes to report 2");
        } else {
            cells.check(&format!("{user} pulls"), status, StatusCode::FORBIDDEN);
            cells.check(
                &format!("{user} pushes"),
                push_status,
                StatusCode::FORBIDDEN,
            );
        }

        // Administration.
        let admin_only = |ok: StatusCode| {
            if *role == Role::DistrictAdmin {
                ok
            } else {
                StatusCode::FORBIDDEN
            }
        };
        let org = api.get("/api/v1/org", &token).await;
        cells.check(&format!("{user} GET org"), org.status, StatusCode::OK);
        let unit = json!({ "id": format!("g-{user}"), "parent_id": "v1", "level": "grid", "name": "新网格" });
        let created = api.call("POST", "/api/v1/org", &token, unit).await;
        cells.check(
            &format!("{user} POST org"),
            created.status,
            admin_only(StatusCode::CREATED),
        );
        let renamed = api
            .call(
                "PATCH",
                "/api/v1/org/g2",
                &token,
                json!({ "name": "二网格（新）" }),
            )
            .await;
        cells.check(
            &format!("{user} PATCH org"),
            renamed.status,
            admin_only(StatusCode::OK),
        );
        let users = api.get("/api/v1/users", &token).await;
        let may_list_users = matches!(
            role,
            Role::DistrictAdmin | Role::VillageCadre | Role::TownshipStaff
        );
        let want = if may_list_users {
            StatusCode::OK
        } else {
            StatusCode::FORBIDDEN
        };
        cells.check(&format!("{user} GET users"), users.status, want);
        let new_user = json!({
            "username": format!("new-{user}"), "display_name": "新人", "password": "a long password",
            "role": "grid_worker", "org_unit_id": G2,
        });
        let created = api.call("POST", "/api/v1/users", &token, new_user).await;
        cells.check(
            &format!("{user} POST users"),
            created.status,
            admin_only(StatusCode::CREATED),
        );
        let patched = api
            .call(
                "PATCH",
                "/api/v1/users/c1",
                &token,
                json!({ "display_name": "村干部" }),
            )
            .await;
        cells.check(
            &format!("{user} PATCH users"),
            patched.status,
            admin_only(StatusCode::OK),
        );
        let audit = api.get("/api/v1/audit", &token).await;
        cells.check(
            &format!("{user} GET audit"),
            audit.status,
            admin_only(StatusCode::OK),
        );
        // Offline trust (issue 22): the revocation list and hubs are the admins'.
        let revocations = api.get("/api/v1/revocations", &token).await;
        cells.check(
            &format!("{user} GET revocations"),
            revocations.status,
            admin_only(StatusCode::OK),
        );
        let hubs = api.get("/api/v1/hubs", &token).await;
        cells.check(
            &format!("{user} GET hubs"),
            hubs.status,
            admin_only(StatusCode::OK),
        );
        let hub = json!({ "unit_id": "v1", "name": format!("{user} 的村委会") });
        let registered = api.call("POST", "/api/v1/hubs", &token, hub).await;
        cells.check(
            &format!("{user} POST hubs"),
            registered.status,
            admin_only(StatusCode::CREATED),
        );
        let revoked = api
            .call("POST", "/api/v1/hubs/no-such-hub/revoke", &token, json!({}))
            .await;
        cells.check(
            &format!("{user} revokes an unknown hub"),
            revoked.status,
            admin_only(StatusCode::NOT_FOUND),
        );
        // Relaying is a hub's alone: no person's access token passes for a hub's.
        let relayed = api
            .send(frame_request(
                "/api/v1/hubs/relay",
                &token,
                protocol::encode(&Relay { pushes: vec![] }),
            ))
            .await;
        cells.check(
            &format!("{user} relays as a hub"),
            relayed.status,
            StatusCode::UNAUTHORIZED,
        );
        let pulled = api
            .send(frame_request(
                "/api/v1/hubs/pull",
                &token,
                protocol::encode(&Pull {
                    since: 0,
                    after: 0,
                    byte_budget: 1 << 16,
                    resend: vec![],
                    takes_heads: false,
                }),
            ))
            .await;
        cells.check(
            &format!("{user} pulls as a hub"),
            pulled.status,
            StatusCode::UNAUTHORIZED,
        );
        for path in [
            "/api/v1/hubs/revocations",
            "/api/v1/hubs/org",
            "/api/v1/hubs/kinds",
        ] {
            let read = api.get(path, &token).await;
            cells.check(
                &format!("{user} GET {path} as a hub"),
                read.status,
                StatusCode::UNAUTHORIZED,
            );
        }
        let audit = api
            .call(
                "POST",
                "/api/v1/hubs/audit",
                &token,
                serde_json::json!({ "log": "x.y.z" }),
            )
            .await;
        cells.check(
            &format!("{user} uploads an audit log as a hub"),
            audit.status,
            StatusCode::UNAUTHORIZED,
        );
        let relayed_attachment = format!(
            "/api/v1/hubs/attachments/857e5181-eeac-415c-b874-77046e0be110/{}",
            "ab".repeat(32)
        );
        for method in ["HEAD", "PUT"] {
            let answer = api.send(authed(method, &relayed_attachment, &token)).await;
            cells.check(
                &format!("{user} {method}s a relayed attachment as a hub"),
                answer.status,
                StatusCode::UNAUTHORIZED,
            );
        }
        for path in [
            "/api/v1/stats/canvass",
            "/api/v1/stats/disputes",
            "/api/v1/stats/kinds/dispute_check",
            "/api/v1/stats/kinds/drug_control_case",
        ] {
            let stats = api.get(path, &token).await;
            cells.check(&format!("{user} GET {path}"), stats.status, StatusCode::OK);
            // s2 is outside every scope but the admin's: 404, like a missing unit.
            let foreign = api.get(&format!("{path}?org=s2"), &token).await;
            cells.check(
                &format!("{user} GET {path} of s2"),
                foreign.status,
                if *role == Role::DistrictAdmin {
                    StatusCode::OK
                } else {
                    StatusCode::NOT_FOUND
                },
            );
        }
        // Bulletins: read within the scope, for the district, a township or a street only;
        // published by admins and township staff.
        let bulletin_unit = matches!(
            *role,
            Role::TownshipStaff | Role::DrugControlOfficer | Role::DistrictAdmin
        );
        let publisher = matches!(*role, Role::TownshipStaff | Role::DistrictAdmin);
        let status_if = |yes: bool, ok: StatusCode, no: StatusCode| if yes { ok } else { no };
        cells.check(
            &format!("{user} GET bulletins"),
            api.get("/api/v1/bulletins", &token).await.status,
            StatusCode::OK,
        );
        cells.check(
            &format!("{user} GET bulletin"),
            api.get("/api/v1/bulletins/2026-10", &token).await.status,
            status_if(
                bulletin_unit,
                StatusCode::OK,
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
        );
        cells.check(
            &format!("{user} GET bulletin of s2"),
            api.get("/api/v1/bulletins/2026-10?org=s2", &token)
                .await
                .status,
            status_if(
                *role == Role::DistrictAdmin,
                StatusCode::OK,
                StatusCode::NOT_FOUND,
            ),
        );
        let period = format!(
            "2026-0{}",
            1 + ROLES.iter().position(|r| r.0 == *user).unwrap_or(0)
        );
        cells.check(
            &format!("{user} publishes a bulletin"),
            api.call(
                "POST",
                &format!("/api/v1/bulletins/{period}/publish"),
                &token,
                json!({}),
            )
            .await
            .status,
            status_if(publisher, StatusCode::CREATED, StatusCode::FORBIDDEN),
        );
        cells.check(
            &format!("{user} re-issues a bulletin"),
            api.call(
                "POST",
                &format!("/api/v1/bulletins/{period}/reissue"),
                &token,
                json!({ "reason": "补报" }),
            )
            .await
            .status,
            status_if(publisher, StatusCode::CREATED, StatusCode::FORBIDDEN),
        );
        cells.check(
            &format!("{user} GET bulletin-rules"),
            api.get("/api/v1/bulletin-rules", &token).await.status,
            StatusCode::OK,
        );
        cells.check(
            &format!("{user} PUT bulletin-rules"),
            api.call(
                "PUT",
                "/api/v1/bulletin-rules",
                &token,
                json!({
                    "rural": { "yellow_cards": 0, "advanced_within": null },
                    "urban": { "yellow_cards": 0, "advanced_within": null },
                }),
            )
            .await
            .status,
            admin_only(StatusCode::OK),
        );
        // Tasks: everyone lists those in scope and reads the board (who sets them: below).
        cells.check(
            &format!("{user} GET tasks"),
            api.get("/api/v1/tasks", &token).await.status,
            StatusCode::OK,
        );
        cells.check(
            &format!("{user} GET dispatch"),
            api.get("/api/v1/dispatch", &token).await.status,
            StatusCode::OK,
        );
        let drug = api.get("/api/v1/stats/drug", &token).await;
        let drug_counts = matches!(
            *role,
            Role::TownshipStaff | Role::DrugControlOfficer | Role::DistrictAdmin
        );
        cells.check(
            &format!("{user} GET stats/drug"),
            drug.status,
            if drug_counts {
                StatusCode::OK
            } else {
                StatusCode::FORBIDDEN
            },
        );
        // A ledger is a file, not JSON: only its status is read here (tests/export.rs reads it).
        let ledger = api
            .send_raw(authed(
                "GET",
                &format!("/api/v1/export?kind={}&format=csv", kinds.ordinary),
                &token,
            ))
            .await;
        cells.check(&format!("{user} GET export"), ledger.status, StatusCode::OK);
        let devices = api.get("/api/v1/devices", &token).await;
        cells.check(
            &format!("{user} GET devices"),
            devices.status,
            StatusCode::OK,
        );
        cells.check(
            &format!("{user} retires an unknown device"),
            api.call(
                "POST",
                "/api/v1/devices/no-such-phone/retire",
                &token,
                json!({}),
            )
            .await
            .status,
            StatusCode::NOT_FOUND,
        );

        // Held work: everyone lists what is placed in their scope; reviewers decide.
        let held = api.get("/api/v1/held", &token).await;
        cells.check(&format!("{user} GET held"), held.status, StatusCode::OK);
        let placed_in_g3 = held.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|i| i["report_id"] == json!(id(2).to_string()));
        assert_eq!(
            placed_in_g3, VISIBLE[r][1],
            "{user} sees report 2's held work"
        );
        let decider = if *role == Role::GridWorker {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::NOT_FOUND
        };
        for action in ["merge", "decline"] {
            cells.check(
                &format!("{user} {action}s unknown held work"),
                api.call(
                    "POST",
                    &format!("/api/v1/held/999999/{action}"),
                    &token,
                    json!({ "note": "n" }),
                )
                .await
                .status,
                decider,
            );
        }
    }
    // Set last, since tasks sync like reports and would join the lists and pulls above: the
    // office sets tasks, a drug-control officer only visits to cases (an ordinary task is
    // outside their kinds), a grid worker none.
    for (user, role, _) in ROLES.iter() {
        let (token, _) = api.tokens(user, PW, &format!("{user}-device")).await;
        let tomorrow = gridsync_server::stats::Day::of_unix(gridsync_server::clock::now())
            .plus(1)
            .to_string();
        cells.check(
            &format!("{user} POST tasks"),
            api.call(
                "POST",
                "/api/v1/tasks",
                &token,
                json!({ "title": "张贴海报", "due": tomorrow, "goal": "free" }),
            )
            .await
            .status,
            match *role {
                Role::GridWorker | Role::DrugControlOfficer => StatusCode::FORBIDDEN,
                _ => StatusCode::CREATED,
            },
        );
    }
    eprintln!("permission matrix: {} cells checked", cells.0);
}
