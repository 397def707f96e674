//! Target `json_bodies`: arbitrary bytes as every JSON request body of the API, each run through
//! the checks its handler makes before it touches the store; report edits and conflict
//! resolutions go on to the automerge changes they make and sync-core's ingestion of them, and
//! the bytes are also read as an org import CSV. Bad input must come out as a client error:
//! an [`ApiError::Internal`] (a 500) caused by the request is a finding.

use std::sync::OnceLock;

use automerge::ChangeHash;
use gridsync_core::conflict::FieldPath;
use gridsync_core::ingest::{self, Refusal};
use gridsync_core::protocol::{PushDocResult, PushOutcome, PushResult};
use gridsync_core::report::ReportDoc;
use gridsync_core::schema::Schema;
use gridsync_server::auth::refresh;
use gridsync_server::cli::org_import;
use gridsync_server::http::ApiError;
use gridsync_server::http::auth::{LoginRequest, RefreshRequest};
use gridsync_server::http::conflicts::ResolveRequest;
use gridsync_server::http::org::{MAX_NAME_CHARS, NewOrgUnit, OrgUnitPatch};
use gridsync_server::http::reports::{NewReport, ReportPatch, ReviewRequest};
use gridsync_server::http::users::{NewUser, UserUpdate};
use gridsync_server::http::validate::check_name;
use gridsync_server::http::visible::{check_note, outcome};
use gridsync_server::scope::Role;
use gridsync_server::store::{Level, OrgUnit, User};
use serde::de::DeserializeOwned;

use crate::fixture::{AUTHOR, KIND, OTHER_USER, REPORT_ID, editor, registry, report};

pub fn run(data: &[u8]) {
    if let Some(req) = body::<LoginRequest>(data) {
        let _ = req.check();
    }
    if let Some(req) = body::<RefreshRequest>(data) {
        refresh::hash(&req.refresh_token);
    }
    if let Some(req) = body::<NewUser>(data) {
        let _ = req.check();
    }
    if let Some(req) = body::<UserUpdate>(data) {
        let _ = req.check();
    }
    if let Some(req) = body::<NewOrgUnit>(data) {
        let _ = req.check();
    }
    if let Some(OrgUnitPatch {
        name: Some(name), ..
    }) = body::<OrgUnitPatch>(data)
    {
        let _ = check_name("name", &name, MAX_NAME_CHARS);
    }
    if let Some(req) = body::<ReviewRequest>(data) {
        let _ = check_note(req.note.as_deref());
    }
    if let Some(req) = body::<ResolveRequest>(data) {
        resolve(&req);
    }
    if let Some(req) = body::<NewReport>(data) {
        create(&req);
    }
    if let Some(req) = body::<ReportPatch>(data) {
        patch(&req);
    }
    let _ = org_import::check(org_units(), users(), data);
}

fn body<T: DeserializeOwned>(data: &[u8]) -> Option<T> {
    serde_json::from_slice(data).ok()
}

fn schema() -> &'static Schema {
    registry()
        .latest(KIND)
        .expect("the fixture's kind is built in")
}

fn create(req: &NewReport) {
    let _ = req.check(schema(), Role::TownshipStaff);
    let Some(schema) = registry().latest(&req.kind) else {
        return;
    };
    if req.check(schema, Role::DistrictAdmin).is_err() {
        return;
    }
    let doc = match req.to_doc(schema, REPORT_ID, &editor()) {
        Ok(doc) => doc,
        Err(e) => return client_error(&e),
    };
    ingest_edit(doc, &[], ReportDoc::empty(REPORT_ID));
}

fn patch(req: &ReportPatch) {
    let _ = req.check(schema(), Role::TownshipStaff);
    if req.check(schema(), Role::DistrictAdmin).is_err() {
        return;
    }
    let mut doc = report();
    let before = doc.heads();
    if let Err(e) = req.apply(&mut doc, &editor()) {
        return client_error(&e);
    }
    ingest_edit(doc, &before, report());
}

fn resolve(req: &ResolveRequest) {
    if check_note(req.note.as_deref()).is_err() {
        return;
    }
    for path in conflict_paths() {
        if req.check_value(schema(), path).is_err() {
            continue;
        }
        let mut doc = report();
        let before = doc.heads();
        if let Err(e) = doc.resolve(path, &req.value, &editor()) {
            panic!("resolving {path} with a checked value failed: {e}");
        }
        ingest_edit(doc, &before, report());
    }
}

/// Fields of the fixture report that a conflict could be about.
fn conflict_paths() -> &'static [FieldPath] {
    static PATHS: OnceLock<Vec<FieldPath>> = OnceLock::new();
    PATHS.get_or_init(|| {
        let json = report().to_json().expect("the fixture reads");
        let entry = json["log"][0]["id"]
            .as_str()
            .expect("the fixture has a log entry")
            .to_owned();
        let mut paths: Vec<FieldPath> = ["description", "risk_level", "found_on", "parties"]
            .into_iter()
            .map(|f| FieldPath::Field(f.to_owned()))
            .collect();
        paths.extend(["outcome", "date"].map(|field| FieldPath::Log {
            entry: entry.clone(),
            field: field.to_owned(),
        }));
        paths
    })
}

/// Ingests the changes `doc` made since `before` onto `onto`, as the server ingests an office
/// edit, and checks that the handler's answer is not a server error.
fn ingest_edit(mut doc: ReportDoc, before: &[ChangeHash], mut onto: ReportDoc) {
    let changes = doc.changes_since(before);
    let outcome_of_push = match ingest::apply(&mut onto, &changes, AUTHOR, registry()) {
        Ok(_) => PushOutcome::Acked { heads: Vec::new() },
        Err(Refusal::MissingDeps(missing)) => PushOutcome::MissingDeps {
            missing: missing.iter().map(|h| h.0).collect(),
        },
        Err(refusal) => PushOutcome::Rejected {
            code: refusal.code().to_owned(),
            reason: refusal.to_string(),
        },
    };
    let result = PushResult {
        docs: vec![PushDocResult {
            doc: REPORT_ID,
            outcome: outcome_of_push,
        }],
        hub: None,
    };
    if let Err(e) = outcome(result) {
        client_error(&e);
    }
}

fn client_error(e: &ApiError) {
    assert!(
        !matches!(e, ApiError::Internal(_)),
        "a request body caused a server error: {e}"
    );
}

/// A district with one unit at every level below it, as stored before an import.
fn org_units() -> Vec<OrgUnit> {
    let mut units = Vec::new();
    let mut path = String::from("/");
    let mut parent: Option<String> = None;
    for (id, level) in [
        ("d", Level::District),
        ("t", Level::Township),
        ("v", Level::Village),
        ("g", Level::Grid),
    ] {
        path.push_str(id);
        path.push('/');
        units.push(OrgUnit {
            id: id.to_owned(),
            parent_id: parent.replace(id.to_owned()),
            level,
            name: format!("unit {id}"),
            path: path.clone(),
        });
    }
    units
}

fn users() -> Vec<User> {
    [(AUTHOR, Role::GridWorker), (OTHER_USER, Role::VillageCadre)]
        .into_iter()
        .map(|(username, role)| User {
            id: username.to_owned(),
            username: username.to_owned(),
            display_name: username.to_owned(),
            password_hash: String::new(),
            role,
            org_unit_id: "g".to_owned(),
            disabled: false,
            created_at: 0,
        })
        .collect()
}
