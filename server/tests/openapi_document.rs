//! What `/openapi.json` promises a generated client, checked on the document itself: every
//! status any operation can answer, media types, binary bodies, constraints and examples. The
//! server's answers are checked against the document by `tests/tests/openapi_contract.rs`.

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use gridsync_core::attachment::MEDIA_TYPES;
use serde_json::{Value, json};
use support::http::*;

async fn document() -> Value {
    let t = support::sqlite().await;
    let api = api_over(&t).await;
    let r = api
        .send(
            Request::get("/openapi.json")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    r.body
}

/// Every operation of the document as (method, path, operation).
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            ops.push((method.to_uppercase(), path.clone(), op.clone()));
        }
    }
    ops
}

/// `schema` with a `$ref` to a component schema followed.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => resolve(
            doc,
            &doc["components"]["schemas"][r.rsplit('/').next().unwrap()],
        ),
        None => schema,
    }
}

fn has_example(doc: &Value, schema: &Value) -> bool {
    let schema = resolve(doc, schema);
    schema.get("example").is_some()
        || schema.get("examples").is_some()
        || schema["items"].is_object() && has_example(doc, &schema["items"])
        || schema["properties"]
            .as_object()
            .is_some_and(|p| p.values().any(|s| has_example(doc, s)))
}

#[tokio::test]
async fn every_operation_lists_401_when_secured_415_when_it_takes_a_body_and_503() {
    let doc = document().await;
    for (method, path, op) in operations(&doc) {
        let responses = &op["responses"];
        if op["security"].as_array().is_some_and(|s| !s.is_empty()) {
            assert!(responses["401"].is_object(), "{method} {path}: no 401");
        }
        if op["requestBody"].is_object() {
            for status in ["400", "413", "415"] {
                assert!(
                    responses[status].is_object(),
                    "{method} {path}: no {status}"
                );
            }
        }
        assert!(responses["503"].is_object(), "{method} {path}: no 503");
    }
}

#[tokio::test]
async fn binary_bodies_are_binary_strings_and_the_export_names_both_media_types() {
    let doc = document().await;
    let binary = json!({ "type": "string", "format": "binary" });
    for path in ["/api/v1/sync/push", "/api/v1/sync/pull"] {
        let op = &doc["paths"][path]["post"];
        let body = &op["requestBody"]["content"]["application/x-gridsync"]["schema"];
        assert_eq!(resolve(&doc, body), &binary, "{path} request");
        let answer = &op["responses"]["200"]["content"]["application/x-gridsync"]["schema"];
        assert_eq!(resolve(&doc, answer), &binary, "{path} answer");
    }
    let upload = &doc["paths"]["/api/v1/reports/{id}/attachments/{sha256}"]["put"];
    let mut media: Vec<&str> = upload["requestBody"]["content"]
        .as_object()
        .expect("upload media types")
        .keys()
        .map(String::as_str)
        .collect();
    media.sort_unstable();
    let mut allowed = MEDIA_TYPES.to_vec();
    allowed.sort_unstable();
    assert_eq!(
        media, allowed,
        "an upload takes exactly the allowed media types"
    );
    let export = &doc["paths"]["/api/v1/export"]["get"]["responses"]["200"]["content"];
    assert!(export["text/csv"].is_object(), "{export}");
    assert!(
        export["application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"].is_object(),
        "{export}"
    );
}

#[tokio::test]
async fn shared_parameters_carry_their_constraints() {
    let doc = document().await;
    let param = |path: &str, name: &str| -> Value {
        doc["paths"][path]["get"]["parameters"]
            .as_array()
            .expect("parameters")
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{path} has no {name}"))["schema"]
            .clone()
    };
    let limit = param("/api/v1/reports", "limit");
    assert_eq!(
        (limit["minimum"].clone(), limit["maximum"].clone()),
        (json!(1), json!(200))
    );
    assert_eq!(
        param("/api/v1/reports", "kind")["enum"],
        json!([
            "dispute_check",
            "drug_control_case",
            "drug_visit_task",
            "satisfaction_canvass",
            "task"
        ])
    );
    assert_eq!(
        param("/api/v1/conflicts", "org")["pattern"],
        "^[a-z0-9-]{1,64}$"
    );
    assert_eq!(
        param("/api/v1/export", "format")["enum"],
        json!(["xlsx", "csv"])
    );
    assert_eq!(param("/api/v1/export", "lang")["enum"], json!(["zh", "en"]));
    assert_eq!(
        param("/api/v1/export", "part")["enum"],
        json!(["reports", "log"])
    );
    assert_eq!(param("/api/v1/export", "from")["format"], "date");
    assert_eq!(
        param("/api/v1/audit", "from")["type"],
        "integer",
        "Unix seconds there"
    );
    assert_eq!(
        param("/api/v1/stats/canvass", "group")["enum"],
        json!(["township", "street", "village", "grid"])
    );
    let sha = &doc["paths"]["/api/v1/reports/{id}/attachments/{sha256}"]["get"]["parameters"];
    let sha = sha
        .as_array()
        .expect("parameters")
        .iter()
        .find(|p| p["name"] == "sha256");
    assert_eq!(
        sha.expect("sha256")["schema"]["pattern"],
        "^[0-9a-fA-F]{64}$"
    );
    let log_edit =
        resolve(&doc, &doc["components"]["schemas"]["ReportPatch"])["properties"]["log_edit"]
            .clone();
    assert_eq!(log_edit["type"], "object");
    assert_eq!(
        log_edit["additionalProperties"]["type"], "object",
        "{log_edit}"
    );
}

#[tokio::test]
async fn the_conflict_detail_has_its_three_shapes_and_a_resolution_value_any_json() {
    let doc = document().await;
    let detail = &doc["components"]["schemas"]["ConflictView"]["properties"]["detail"];
    let shapes: Vec<&Value> = detail["oneOf"].as_array().expect("oneOf").iter().collect();
    assert_eq!(shapes.len(), 3, "{detail}");
    assert_eq!(
        shapes[0]["type"], "array",
        "concurrent_values answers an array"
    );
    let value = &doc["components"]["schemas"]["ResolveRequest"]["properties"]["value"];
    assert!(
        value.get("type").is_none(),
        "any JSON value, not only an object: {value}"
    );
}

#[tokio::test]
async fn every_operation_shows_an_example_of_what_it_takes_or_answers() {
    let doc = document().await;
    for (method, path, op) in operations(&doc) {
        // Sync frames, and a hub's relay of them, are binary CBOR (ARCHITECTURE.md); logout
        // takes and answers nothing.
        if path.starts_with("/api/v1/sync/")
            || path == "/api/v1/hubs/relay"
            || path == "/api/v1/hubs/pull"
            || path == "/api/v1/auth/logout"
        {
            continue;
        }
        let in_params = op["parameters"].as_array().is_some_and(|ps| {
            ps.iter()
                .any(|p| p.get("example").is_some() || has_example(&doc, &p["schema"]))
        });
        let in_body = op["requestBody"]["content"].as_object().is_some_and(|c| {
            c.values()
                .any(|m| m.get("example").is_some() || has_example(&doc, &m["schema"]))
        });
        let in_answer = op["responses"].as_object().is_some_and(|rs| {
            rs.iter().filter(|(s, _)| s.starts_with('2')).any(|(_, r)| {
                r["content"].as_object().is_some_and(|c| {
                    c.values()
                        .any(|m| m.get("example").is_some() || has_example(&doc, &m["schema"]))
                })
            })
        });
        assert!(
            in_params || in_body || in_answer,
            "{method} {path} shows no example"
        );
    }
}
