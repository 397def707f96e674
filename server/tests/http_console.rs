//! The console served at `/` by `app(state)`, on SQLite and on Postgres: its embedded files and
//! their security headers, `no-store` on API answers, and the schemas endpoint it labels with.

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use gridsync_server::scope::Role;
use serde_json::json;
use support::http::*;
use support::*;

on_both_test_stores!(
    the_console_files_are_served_with_a_strict_content_security_policy,
    api_answers_are_not_kept_in_the_browser_cache,
    the_schemas_give_a_logged_in_caller_every_kind_with_its_labels,
    unknown_paths_beside_the_console_are_still_problem_details,
);

const PW: &str = "test password";

async fn api(t: &TestStore) -> Api {
    seed_org(t.store.as_ref()).await;
    add_user(
        t.store.as_ref(),
        "admin",
        Role::DistrictAdmin,
        "d",
        PW,
        false,
    )
    .await;
    api_over(t).await
}

/// (status, headers, body as text) of a GET without a token.
async fn fetch(api: &Api, path: &str) -> (StatusCode, axum::http::HeaderMap, String) {
    let req = Request::get(path).body(Body::empty()).expect("request");
    let r = api.send_raw(req).await;
    (
        r.status,
        r.headers,
        String::from_utf8(r.bytes).expect("UTF-8"),
    )
}

fn header(headers: &axum::http::HeaderMap, name: header::HeaderName) -> &str {
    headers
        .get(&name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no {name} header"))
}

async fn the_console_files_are_served_with_a_strict_content_security_policy(t: &TestStore) {
    let api = api(t).await;
    for (path, media_type) in [
        ("/", "text/html; charset=utf-8"),
        ("/console/app.js", "text/javascript; charset=utf-8"),
        ("/console/i18n.js", "text/javascript; charset=utf-8"),
        ("/console/app.css", "text/css; charset=utf-8"),
    ] {
        let (status, headers, body) = fetch(&api, path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(header(&headers, header::CONTENT_TYPE), media_type, "{path}");
        let csp = header(&headers, header::CONTENT_SECURITY_POLICY);
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "connect-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(directive), "{path}: {csp} lacks {directive}");
        }
        assert!(!csp.contains("unsafe-"), "{path}: {csp}");
        assert_eq!(header(&headers, header::X_CONTENT_TYPE_OPTIONS), "nosniff");
        assert_eq!(header(&headers, header::X_FRAME_OPTIONS), "DENY");
        assert_eq!(header(&headers, header::REFERRER_POLICY), "no-referrer");
        // Offices are on intranets: nothing may point at another host. (The SVG namespace is
        // a name, never fetched.)
        let body = body.replace("http://www.w3.org/2000/svg", "");
        assert!(
            !body.contains("http://") && !body.contains("https://") && !body.contains("//cdn"),
            "{path} refers to another host"
        );
    }
    let (_, _, page) = fetch(&api, "/").await;
    for asset in ["/console/app.css", "/console/i18n.js", "/console/app.js"] {
        assert!(page.contains(asset), "the page loads {asset}");
    }
    assert!(
        !page.contains("<script>"),
        "no inline script, which the policy would block"
    );
}

async fn api_answers_are_not_kept_in_the_browser_cache(t: &TestStore) {
    let api = api(t).await;
    let login = api.login("admin", PW, "console-1").await;
    assert_eq!(login.status, StatusCode::OK);
    assert_eq!(header(&login.headers, header::CACHE_CONTROL), "no-store");
    let token = login.body["access_token"].as_str().expect("token");
    for path in [
        "/api/v1/me",
        "/api/v1/reports",
        "/api/v1/users",
        "/api/v1/no-such",
    ] {
        let reply = api.get(path, token).await;
        assert_eq!(
            header(&reply.headers, header::CACHE_CONTROL),
            "no-store",
            "{path}"
        );
    }
    let (_, headers, _) = fetch(&api, "/console/app.js").await;
    assert_eq!(header(&headers, header::CACHE_CONTROL), "no-cache");
}

async fn the_schemas_give_a_logged_in_caller_every_kind_with_its_labels(t: &TestStore) {
    let api = api(t).await;
    api.send(
        Request::get("/api/v1/schemas")
            .body(Body::empty())
            .expect("request"),
    )
    .await
    .assert_problem(StatusCode::UNAUTHORIZED, "unauthenticated");
    let (token, _) = api.tokens("admin", PW, "console-1").await;
    let reply = api.get("/api/v1/schemas", &token).await;
    assert_eq!(reply.status, StatusCode::OK);
    let kinds: Vec<(&str, u64)> = reply
        .body
        .as_array()
        .expect("a list")
        .iter()
        .map(|s| {
            (
                s["kind"].as_str().expect("kind"),
                s["version"].as_u64().expect("version"),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("dispute_check", 1),
            ("drug_control_case", 1),
            ("drug_visit_task", 1),
            ("satisfaction_canvass", 1),
            ("task", 1)
        ]
    );
    let dispute = &reply.body[0];
    assert_eq!(
        dispute["label"],
        json!({"zh": "矛盾纠纷排查", "en": "Dispute check"})
    );
    let parties = dispute["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .find(|f| f["id"] == "parties")
        .expect("parties");
    assert_eq!(parties["sensitive"], json!(true));
    assert_eq!(parties["label"]["zh"], json!("当事人"));
    let (_, _, doc) = fetch(&api, "/openapi.json").await;
    let doc: serde_json::Value = serde_json::from_str(&doc).expect("JSON");
    assert!(doc["paths"]["/api/v1/schemas"]["get"].is_object());
}

async fn unknown_paths_beside_the_console_are_still_problem_details(t: &TestStore) {
    let api = api(t).await;
    for path in ["/console/nope.js", "/console/", "/index.html"] {
        let reply = api
            .send(Request::get(path).body(Body::empty()).expect("request"))
            .await;
        reply.assert_problem(StatusCode::NOT_FOUND, "not_found");
    }
}
