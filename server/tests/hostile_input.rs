//! Hostile input through the real HTTP endpoints, on SQLite and Postgres: compression bombs and
//! content encodings, deeply nested JSON, huge counts in tiny bodies, invalid UTF-8, and
//! automerge changes with forged dependencies, hashes, authors or meta. Each is refused with a
//! stable code, and the database is checked afterwards: no document, no change row, the last
//! sequence number given out where it was.
//!
//! The decoders themselves (bounded zstd, declared lengths, truncation, byte-level proptests) are
//! proven in sync-core/tests/protocol_encoding.rs; here the same attacks come in over HTTP.

mod support;

use std::future::Future;

use automerge::{Author, AutoCommit, ObjType, ROOT, ReadDoc, transaction::Transactable};
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use gridsync_core::DocId;
use gridsync_core::protocol::{self, Pull, PullResult, Push, PushDoc, PushOutcome, PushResult};
use gridsync_core::report::{Editor, ReportDoc};
use gridsync_server::scope::Role;
use gridsync_server::store::{UploadChunk, UploadOutcome};
use serde_json::{Value, json};
use sha2::Digest;
use support::http::{Api, add_user, api_over, authed, authed_json, frame_request};
use support::*;

on_both_test_stores!(
    a_zstd_bomb_in_a_sync_body_is_refused_before_it_is_decompressed,
    a_content_encoded_body_is_refused_415_and_never_decoded,
    huge_counts_in_tiny_frames_and_query_parameters_are_refused_and_nothing_is_stored,
    a_range_ending_at_the_largest_integer_is_served_clipped_not_overflowed,
    invalid_utf8_in_bodies_query_strings_and_paths_is_400_and_nothing_is_stored,
    invalid_utf8_inside_a_pushed_change_is_refused_and_nothing_is_stored,
    a_change_whose_dependencies_the_server_lacks_is_missing_deps_and_nothing_is_stored,
    a_change_altered_after_hashing_is_invalid_change_and_nothing_is_stored,
    a_change_claiming_another_author_is_refused_and_history_names_the_pusher,
    changes_to_the_server_managed_meta_are_refused_and_nothing_is_stored,
    a_new_report_claiming_another_creator_is_refused,
);

const PW: &str = "hostile password";

/// The app over a seeded store: worker `w1` (g1), worker `w2` (g2), cadre `c1` (v1), admin.
async fn api(t: &TestStore) -> Api {
    seed_org(t.store.as_ref()).await;
    for (id, role, unit) in [
        ("w1", Role::GridWorker, G1),
        ("w2", Role::GridWorker, G2),
        ("c1", Role::VillageCadre, "v1"),
        ("admin", Role::DistrictAdmin, "d"),
    ] {
        add_user(t.store.as_ref(), id, role, unit, PW, false).await;
    }
    api_over(t).await
}

async fn token(api: &Api, user: &str) -> String {
    api.tokens(user, PW, &format!("{user}-phone")).await.0
}

/// Asserts a problem-details answer with this status and code.
fn assert_problem(answer: &(StatusCode, HeaderMap, Vec<u8>), status: StatusCode, code: &str) {
    let body: Value = serde_json::from_slice(&answer.2).unwrap_or_else(|_| {
        panic!(
            "not JSON ({}): {}",
            answer.0,
            String::from_utf8_lossy(&answer.2)
        )
    });
    assert_eq!(
        (answer.0, body["code"].as_str()),
        (status, Some(code)),
        "{body}"
    );
    assert_eq!(
        answer.1[header::CONTENT_TYPE],
        "application/problem+json",
        "{body}"
    );
}

async fn push(api: &Api, token: &str, push: &Push) -> PushResult {
    let answer = api
        .raw(frame_request(
            "/api/v1/sync/push",
            token,
            protocol::encode(push),
        ))
        .await;
    assert_eq!(
        answer.0,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&answer.2)
    );
    protocol::decode(&answer.2).expect("a PushResult frame")
}

fn push_of(doc: DocId, changes: Vec<Vec<u8>>) -> Push {
    Push {
        docs: vec![PushDoc { doc, changes }],
    }
}

/// Asserts that the one document of `result` was refused with `code`.
fn assert_rejected(result: &PushResult, code: &str) {
    match &result.docs[0].outcome {
        PushOutcome::Rejected { code: got, .. } if got == code => {}
        other => panic!("expected a {code} refusal, got {other:?}"),
    }
}

/// A frame of message `kind` with `body` as it is, uncompressed.
fn frame(kind: u8, flags: u8, body: &[u8]) -> Vec<u8> {
    let mut f = vec![b'G', b'S', protocol::PROTOCOL_VERSION, kind, flags];
    f.extend_from_slice(body);
    f
}

const PUSH: u8 = 1;
const PULL: u8 = 3;

/// A zstd frame of `len` zeros made of raw RLE blocks (4 bytes per 128 KiB), declaring
/// `declared` as its content size: a compression bomb written by hand, as an attacker would.
fn zstd_zeros(len: u64, declared: u64) -> Vec<u8> {
    const BLOCK: u64 = 128 * 1024;
    let mut z = vec![0x28, 0xB5, 0x2F, 0xFD];
    // Single segment, 8-byte content size, no checksum, no dictionary.
    z.push(0b1110_0000);
    z.extend_from_slice(&declared.to_le_bytes());
    let mut left = len;
    while left > 0 {
        let size = left.min(BLOCK);
        left -= size;
        let last = u32::from(left == 0);
        let header = (u32::try_from(size).expect("block") << 3) | (1 << 1) | last;
        z.extend_from_slice(&header.to_le_bytes()[..3]);
        z.push(0);
    }
    z
}

async fn a_zstd_bomb_in_a_sync_body_is_refused_before_it_is_decompressed(t: &TestStore) {
    let api = api(t).await;
    let w1 = token(&api, "w1").await;
    let before = fingerprint(&t.url).await;
    const GIB: u64 = 1 << 30;
    for (what, body) in [
        ("1 GiB declared", zstd_zeros(GIB, GIB)),
        ("1 GiB declared as 1 KiB", zstd_zeros(GIB, 1024)),
        ("64 MiB + 1 declared", zstd_zeros(64 << 20, (64 << 20) + 1)),
    ] {
        assert!(body.len() < 64 * 1024, "{what}: {} bytes", body.len());
        for kind_path in [(PUSH, "/api/v1/sync/push"), (PULL, "/api/v1/sync/pull")] {
            let answer = api
                .raw(frame_request(
                    kind_path.1,
                    &w1,
                    frame(kind_path.0, 1, &body),
                ))
                .await;
            assert_problem(&answer, StatusCode::BAD_REQUEST, "bad_frame");
        }
    }
    assert_eq!(fingerprint(&t.url).await, before);
}

/// crc32 (IEEE), for the gzip trailer.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

/// A valid gzip member holding `data` in one stored (uncompressed) deflate block.
fn gzip(data: &[u8]) -> Vec<u8> {
    let len = u16::try_from(data.len()).expect("small");
    let mut z = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff, 1];
    z.extend_from_slice(&len.to_le_bytes());
    z.extend_from_slice(&(!len).to_le_bytes());
    z.extend_from_slice(data);
    z.extend_from_slice(&crc32(data).to_le_bytes());
    z.extend_from_slice(&u32::try_from(data.len()).expect("small").to_le_bytes());
    z
}

async fn a_content_encoded_body_is_refused_415_and_never_decoded(t: &TestStore) {
    let api = api(t).await;
    let w1 = token(&api, "w1").await;
    let before = fingerprint(&t.url).await;
    let login =
        json!({ "username": "w2", "password": PW, "device_id": "w2-new", "device_name": "n" })
            .to_string();
    let mut doc = dispute(1, G1, "w1");
    let good_push = protocol::encode(&push_all(&mut [&mut doc]));
    for encoding in ["gzip", "deflate", "br", "zstd", "gzip, identity"] {
        let req = Request::post("/api/v1/auth/login")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::CONTENT_ENCODING, encoding)
            .body(Body::from(gzip(login.as_bytes())))
            .expect("request");
        let answer = api.raw(req).await;
        assert_problem(
            &answer,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_content_encoding",
        );
        assert_eq!(answer.1[header::ACCEPT_ENCODING], "identity", "{encoding}");
        let mut req = frame_request("/api/v1/sync/push", &w1, gzip(&good_push));
        req.headers_mut()
            .insert(header::CONTENT_ENCODING, encoding.parse().expect("header"));
        assert_problem(
            &api.raw(req).await,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_content_encoding",
        );
    }
    assert_eq!(fingerprint(&t.url).await, before, "no login, no push");
    // `identity` is no encoding at all.
    let mut req = frame_request("/api/v1/sync/push", &w1, good_push);
    req.headers_mut().insert(
        header::CONTENT_ENCODING,
        "identity".parse().expect("header"),
    );
    let answer = api.raw(req).await;
    assert_eq!(answer.0, StatusCode::OK);
}

/// Bodies nested this deep would need far more stack than the test runtime's workers have.
const DEPTH: usize = 10_000;

/// Workers with a small stack: a parser that recursed once per level of the 10,000 would
/// overflow it, and the test would die rather than fail.
const SMALL_STACK: usize = 1 << 20;

fn on_small_stack<F: Future<Output = ()> + Send + 'static>(test: F) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_stack_size(SMALL_STACK)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move { tokio::spawn(test).await.expect("the test task") });
}

mod deeply_nested_json_is_invalid_json_on_every_json_endpoint {
    #[test]
    fn sqlite() {
        super::on_small_stack(async {
            let t = super::support::sqlite().await;
            super::deeply_nested_json(&t).await;
        });
    }
    #[test]
    fn postgres() {
        super::on_small_stack(async {
            let t = super::support::postgres().await;
            super::deeply_nested_json(&t).await;
        });
    }
}

async fn deeply_nested_json(t: &TestStore) {
    let api = api(t).await;
    let admin = token(&api, "admin").await;
    let mut doc = dispute(1, G1, "admin");
    let result = ingest(
        t.store.as_ref(),
        &support::admin(),
        &push_all(&mut [&mut doc]),
    )
    .await
    .expect("ingest");
    assert!(is_acked(&result.docs[0].outcome));
    let report = format!("/api/v1/reports/{}", doc.id());
    let before = fingerprint(&t.url).await;
    let arrays = format!("{}{}", "[".repeat(DEPTH), "]".repeat(DEPTH));
    let objects = format!("{}1{}", r#"{"a":"#.repeat(DEPTH), "}".repeat(DEPTH));
    for deep in [&arrays, &objects] {
        let review = format!("{report}/review");
        let endpoints: Vec<(&str, &str, String)> = vec![
            ("POST", "/api/v1/auth/login", deep.clone()),
            ("POST", "/api/v1/auth/refresh", deep.clone()),
            ("POST", "/api/v1/reports", deep.clone()),
            (
                "POST",
                "/api/v1/reports",
                format!(r#"{{"kind":"dispute_check","grid_id":"g1","fields":{{"place":{deep}}}}}"#),
            ),
            ("PATCH", &report, deep.clone()),
            (
                "PATCH",
                &report,
                format!(r#"{{"fields":{{"place":{deep}}}}}"#),
            ),
            ("POST", &review, deep.clone()),
            // The body is read before the conflict is looked up.
            ("POST", "/api/v1/conflicts/1/resolve", deep.clone()),
            (
                "POST",
                "/api/v1/conflicts/1/resolve",
                format!(r#"{{"value":{deep}}}"#),
            ),
            ("POST", "/api/v1/users", deep.clone()),
            ("PATCH", "/api/v1/users/w1", deep.clone()),
            ("POST", "/api/v1/org", deep.clone()),
            ("PATCH", "/api/v1/org/g1", deep.clone()),
        ];
        for (method, path, body) in endpoints {
            let req = authed_json(method, path, &admin, &body);
            let answer = api.raw(req).await;
            assert_problem(&answer, StatusCode::BAD_REQUEST, "invalid_json");
        }
    }
    assert_eq!(fingerprint(&t.url).await, before);
    let r = api.get(&report, &admin).await;
    assert_eq!(r.status, StatusCode::OK, "still serving: {}", r.body);
}

async fn huge_counts_in_tiny_frames_and_query_parameters_are_refused_and_nothing_is_stored(
    t: &TestStore,
) {
    let api = api(t).await;
    let w1 = token(&api, "w1").await;
    let admin = token(&api, "admin").await;
    let mut doc = dispute(1, G1, "w1");
    assert!(is_acked(
        &push(&api, &w1, &push_all(&mut [&mut doc])).await.docs[0].outcome
    ));
    let before = fingerprint(&t.url).await;
    let two_to_the_32 = [0x9B, 0, 0, 0, 1, 0, 0, 0, 0];
    let id = [7u8; 16];
    let with = |prefix: &[u8], tail: &[u8]| [prefix, tail].concat();
    for (what, kind, body) in [
        ("2^32 docs", PUSH, with(&[0x81], &two_to_the_32)),
        (
            "2^32 changes",
            PUSH,
            with(
                &[&[0x81, 0x81, 0x82, 0x50][..], &id].concat(),
                &two_to_the_32,
            ),
        ),
        (
            "a change of 2^63 bytes",
            PUSH,
            with(
                &[&[0x81, 0x81, 0x82, 0x50][..], &id, &[0x81, 0x5B]].concat(),
                &[0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF],
            ),
        ),
        ("2^32 resends", PULL, with(&[0x84, 0, 0, 0], &two_to_the_32)),
    ] {
        let path = if kind == PUSH {
            "/api/v1/sync/push"
        } else {
            "/api/v1/sync/pull"
        };
        let answer = api
            .raw(frame_request(path, &w1, frame(kind, 0, &body)))
            .await;
        assert!(body.len() < 40, "{what}");
        assert_problem(&answer, StatusCode::BAD_REQUEST, "bad_frame");
    }
    // A cursor past every sequence (a restored backup, or a lie) is answered, not an error.
    let pull = Pull {
        since: u64::MAX,
        after: u64::MAX,
        byte_budget: u32::MAX,
        resend: vec![],
        takes_heads: false,
    };
    let answer = api
        .raw(frame_request(
            "/api/v1/sync/pull",
            &w1,
            protocol::encode(&pull),
        ))
        .await;
    assert_eq!(
        answer.0,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&answer.2)
    );
    let page: PullResult = protocol::decode(&answer.2).expect("a PullResult");
    assert!(page.after <= i64::MAX as u64, "{}", page.after);

    let huge = "18446744073709551615";
    for path in [
        format!("/api/v1/reports?limit={huge}"),
        format!("/api/v1/reports?updated_since={huge}{huge}"),
        format!("/api/v1/conflicts?limit={huge}"),
        format!("/api/v1/users?limit={huge}"),
        format!("/api/v1/audit?limit={huge}"),
        format!("/api/v1/audit?from={huge}"),
        "/api/v1/reports?limit=-1".to_owned(),
        "/api/v1/reports?limit=0".to_owned(),
        "/api/v1/stats/disputes?from=99999999-01-01".to_owned(),
        "/api/v1/export?kind=dispute_check&to=2026-01-99999999999".to_owned(),
    ] {
        api.get(&path, &admin)
            .await
            .assert_problem(StatusCode::BAD_REQUEST, "bad_request");
    }
    assert_eq!(fingerprint(&t.url).await, before);
}

async fn a_range_ending_at_the_largest_integer_is_served_clipped_not_overflowed(t: &TestStore) {
    let api = api(t).await;
    let w1 = token(&api, "w1").await;
    let bytes = b"a photo of the village gate";
    let mut doc = dispute(1, G1, "w1");
    let hash = attach(&mut doc, "w1", "site_photos", "image/jpeg", bytes);
    assert!(is_acked(
        &push(&api, &w1, &push_all(&mut [&mut doc])).await.docs[0].outcome
    ));
    let outcome = t
        .store
        .upload_chunk(&UploadChunk {
            doc_id: doc.id(),
            hash: &hash,
            media_type: "image/jpeg",
            total: bytes.len() as i64,
            offset: 0,
            bytes,
            user_id: "w1",
            now: 1_800_000_000,
        })
        .await
        .expect("upload");
    assert!(
        matches!(outcome, UploadOutcome::Complete { .. }),
        "{outcome:?}"
    );
    let url = format!("/api/v1/reports/{}/attachments/{hash}", doc.id());
    for (range, status, want) in [
        (
            format!("bytes=0-{}", i64::MAX),
            StatusCode::PARTIAL_CONTENT,
            &bytes[..],
        ),
        (
            format!("bytes=2-{}", i64::MAX),
            StatusCode::PARTIAL_CONTENT,
            &bytes[2..],
        ),
        (
            format!("bytes=-{}", i64::MAX),
            StatusCode::PARTIAL_CONTENT,
            &bytes[..],
        ),
        // Past i64: not a range this server reads, so the whole file.
        (format!("bytes=0-{}", u64::MAX), StatusCode::OK, &bytes[..]),
        (format!("bytes={}-", u64::MAX), StatusCode::OK, &bytes[..]),
    ] {
        let mut req = authed("GET", &url, &w1);
        req.headers_mut()
            .insert(header::RANGE, range.parse().expect("header"));
        let (got, _, body) = api.raw(req).await;
        assert_eq!((got, body.as_slice()), (status, want), "{range}");
    }
    let mut req = authed("GET", &url, &w1);
    req.headers_mut().insert(
        header::RANGE,
        format!("bytes={}-", i64::MAX).parse().expect("header"),
    );
    assert_eq!(api.raw(req).await.0, StatusCode::RANGE_NOT_SATISFIABLE);
}

async fn invalid_utf8_in_bodies_query_strings_and_paths_is_400_and_nothing_is_stored(
    t: &TestStore,
) {
    let api = api(t).await;
    let admin = token(&api, "admin").await;
    let mut doc = dispute(1, G1, "admin");
    ingest(
        t.store.as_ref(),
        &support::admin(),
        &push_all(&mut [&mut doc]),
    )
    .await
    .expect("ingest");
    let before = fingerprint(&t.url).await;
    let report = format!("/api/v1/reports/{}", doc.id());

    // Bodies: raw bytes that are not UTF-8, and an escape that is no character.
    let login = |name: &[u8]| {
        [
            &br#"{"username": ""#[..],
            name,
            br#"", "password": "x", "device_id": "d", "device_name": "n"}"#,
        ]
        .concat()
    };
    let bodies: Vec<(&str, &str, Vec<u8>)> = vec![
        ("POST", "/api/v1/auth/login", login(b"\xff\xfe")),
        ("POST", "/api/v1/auth/login", login(b"w1\xc3\x28")),
        ("POST", "/api/v1/auth/login", login(br"\ud800")),
        (
            "POST",
            "/api/v1/reports",
            br#"{"kind":"dispute_check","grid_id":"g1","fields":{"place":"\xed\xa0\x80"}}"#
                .to_vec(),
        ),
        (
            "PATCH",
            &report,
            br#"{"fields":{"place":"\udfff"}}"#.to_vec(),
        ),
        (
            "PATCH",
            "/api/v1/users/w1",
            b"{\"display_name\":\"\xc0\xaf\"}".to_vec(),
        ),
    ];
    for (method, path, body) in bodies {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {admin}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .expect("request");
        assert_problem(&api.raw(req).await, StatusCode::BAD_REQUEST, "invalid_json");
    }

    // Query strings: percent-encoded bytes that decode to no UTF-8.
    for path in [
        "/api/v1/reports?q=%FF",
        "/api/v1/reports?kind=dispute%C3%28check",
        "/api/v1/reports?org=%ED%A0%80",
        "/api/v1/conflicts?kind=%FF",
        "/api/v1/users?cursor=%FF",
        "/api/v1/audit?action=%C0%AF",
        "/api/v1/stats/disputes?org=%FF",
        "/api/v1/export?kind=%FF",
        "/api/v1/reports?%FF=1",
    ] {
        api.get(path, &admin)
            .await
            .assert_problem(StatusCode::BAD_REQUEST, "bad_request");
    }

    // Path segments.
    for (method, path) in [
        ("GET", "/api/v1/reports/%FF".to_owned()),
        ("GET", "/api/v1/reports/%C3%28/history".to_owned()),
        ("POST", "/api/v1/reports/%FF/review".to_owned()),
        ("PATCH", "/api/v1/users/%FF".to_owned()),
        ("PATCH", "/api/v1/org/%FF".to_owned()),
        ("POST", "/api/v1/devices/%FF/revoke".to_owned()),
        ("POST", "/api/v1/conflicts/%FF/resolve".to_owned()),
        (
            "GET",
            format!("/api/v1/reports/{}/attachments/%FF", doc.id()),
        ),
    ] {
        let req = authed_json(method, &path, &admin, "{}");
        assert_problem(&api.raw(req).await, StatusCode::BAD_REQUEST, "bad_request");
    }
    assert_eq!(fingerprint(&t.url).await, before);
}

/// Overwrites the first occurrence of `find` in a change with `with` and recomputes the
/// chunk's checksum, so the change is well-formed apart from what `with` put in.
fn rewrite_change(change: &[u8], find: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = alter_change(change, find, with);
    // Chunk: magic (4), checksum (4), then type, length and data, whose sha256 starts with
    // the checksum.
    let hash = sha2::Sha256::digest(&out[8..]);
    out[4..8].copy_from_slice(&hash[..4]);
    out
}

/// Overwrites the first occurrence of `find` in a change with `with`, leaving the checksum of
/// the original bytes in the header: the change altered after it was hashed.
fn alter_change(change: &[u8], find: &[u8], with: &[u8]) -> Vec<u8> {
    assert_eq!(find.len(), with.len());
    let at = change
        .windows(find.len())
        .position(|w| w == find)
        .unwrap_or_else(|| panic!("{:?} is not in the change", String::from_utf8_lossy(find)));
    let mut out = change.to_vec();
    out[at..at + with.len()].copy_from_slice(with);
    out
}

async fn invalid_utf8_inside_a_pushed_change_is_refused_and_nothing_is_stored(t: &TestStore) {
    let api = api(t).await;
    let w1 = token(&api, "w1").await;
    let before = fingerprint(&t.url).await;
    let by = Editor::new("w1", 1_000);
    let mut doc =
        ReportDoc::create(DocId::from_u128(9), "dispute_check", 1, G1, &by).expect("create");
    let created = doc.changes_since(&[]).remove(0);
    for (find, with) in [
        (&b"dispute_check"[..], &b"\xffispute_check"[..]),
        (b"dispute_check", b"dispute\xc3\x28heck"),
        (b"g1", b"\xff1"),
    ] {
        let forged = rewrite_change(&created, find, with);
        let result = push(&api, &w1, &push_of(doc.id(), vec![forged])).await;
        assert_rejected(&result, "invalid_change");
    }
    assert_eq!(fingerprint(&t.url).await, before);
    assert!(t.store.document(&doc.id()).await.expect("read").is_none());
    // The honest change still goes through.
    let result = push(&api, &w1, &push_of(doc.id(), vec![created])).await;
    assert!(is_acked(&result.docs[0].outcome));
}

async fn a_change_whose_dependencies_the_server_lacks_is_missing_deps_and_nothing_is_stored(
    t: &TestStore,
) {
    let api = api(t).await;
    let w1 = token(&api, "w1").await;
    let before = fingerprint(&t.url).await;
    let mut doc = dispute(1, G1, "w1");
    let changes = doc.changes_since(&[]);
    let created = automerge::Change::from_bytes(changes[0].clone())
        .expect("change")
        .hash()
        .0;
    let result = push(&api, &w1, &push_of(doc.id(), changes[1..].to_vec())).await;
    match &result.docs[0].outcome {
        PushOutcome::MissingDeps { missing } => assert_eq!(missing, &vec![created]),
        other => panic!("expected missing_deps, got {other:?}"),
    }
    assert_eq!(fingerprint(&t.url).await, before);
    let result = push(&api, &w1, &push_of(doc.id(), changes)).await;
    assert!(is_acked(&result.docs[0].outcome));
}

async fn a_change_altered_after_hashing_is_invalid_change_and_nothing_is_stored(t: &TestStore) {
    let api = api(t).await;
    let w1 = token(&api, "w1").await;
    let before = fingerprint(&t.url).await;
    let mut doc = dispute(1, G1, "w1");
    let changes = doc.changes_since(&[]);
    // The second change sets the place to 村口; the altered one says 村中 under the old checksum.
    let altered = alter_change(&changes[1], "口".as_bytes(), "中".as_bytes());
    let mut bad_checksum = changes[0].clone();
    bad_checksum[5] ^= 0xff;
    let truncated = changes[0][..changes[0].len() - 4].to_vec();
    for forged in [
        vec![changes[0].clone(), altered.clone()],
        vec![bad_checksum],
        vec![truncated],
        vec![b"not a change".to_vec()],
    ] {
        let result = push(&api, &w1, &push_of(doc.id(), forged)).await;
        assert_rejected(&result, "invalid_change");
    }
    assert_eq!(fingerprint(&t.url).await, before);

    // On a stored report too; it stays writable by honest changes.
    let result = push(&api, &w1, &push_of(doc.id(), vec![changes[0].clone()])).await;
    assert!(is_acked(&result.docs[0].outcome));
    let stored = fingerprint(&t.url).await;
    let result = push(&api, &w1, &push_of(doc.id(), vec![altered])).await;
    assert_rejected(&result, "invalid_change");
    assert_eq!(fingerprint(&t.url).await, stored);
    let result = push(&api, &w1, &push_of(doc.id(), vec![changes[1].clone()])).await;
    assert!(is_acked(&result.docs[0].outcome), "{:?}", result.docs[0]);
    let report = t
        .store
        .document(&doc.id())
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(report.projection["fields"]["place"], json!("村口"));
}

/// The changes `edit` makes to a copy of `doc` under a fresh actor with `author`.
fn forge(
    doc: &mut ReportDoc,
    author: Option<&str>,
    edit: impl FnOnce(&mut AutoCommit),
) -> Vec<Vec<u8>> {
    let mut am = AutoCommit::load(&doc.save()).expect("load");
    let base = am.get_heads();
    if let Some(author) = author {
        am.set_author(Some(Author::from(author.as_bytes().to_vec())));
    }
    edit(&mut am);
    am.commit();
    am.get_changes(&base)
        .into_iter()
        .map(|mut c| c.bytes().into_owned())
        .collect()
}

/// An edit of a raw automerge document.
type Edit = Box<dyn FnOnce(&mut AutoCommit)>;

fn meta_of(am: &AutoCommit) -> automerge::ObjId {
    match am.get(ROOT, "meta").expect("read") {
        Some((_, id)) => id,
        None => panic!("no meta"),
    }
}

async fn a_change_claiming_another_author_is_refused_and_history_names_the_pusher(t: &TestStore) {
    let api = api(t).await;
    let w1 = token(&api, "w1").await;
    let admin = token(&api, "admin").await;
    let before = fingerprint(&t.url).await;
    // A whole report written in c1's name, and one signed by nobody, pushed by w1.
    let mut theirs = dispute(1, G1, "c1");
    let result = push(&api, &w1, &push_all(&mut [&mut theirs])).await;
    assert_rejected(&result, "foreign_author");
    let mut unsigned = ReportDoc::empty(DocId::from_u128(2));
    let changes = forge(&mut unsigned, None, |am| {
        let meta = am.put_object(ROOT, "meta", ObjType::Map).expect("meta");
        for (key, value) in [
            ("id", DocId::from_u128(2).to_string()),
            ("kind", "dispute_check".into()),
            ("grid", G1.into()),
            ("created_by", "w1".into()),
            ("created_at", "2026-11-03T10:00:00Z".into()),
        ] {
            am.put(&meta, key, value).expect("put");
        }
        am.put(&meta, "schema_version", 1).expect("put");
        am.put_object(ROOT, "fields", ObjType::Map).expect("fields");
        am.put_object(ROOT, "log", ObjType::List).expect("log");
    });
    let result = push(&api, &w1, &push_of(DocId::from_u128(2), changes)).await;
    assert_rejected(&result, "foreign_author");
    // An edit in c1's name on top of w1's own report: the whole push is refused.
    let mut mine = dispute(3, G1, "w1");
    let mut changes = mine.changes_since(&[]);
    changes.extend(forge(&mut mine, Some("c1"), |am| {
        let fields = match am.get(ROOT, "fields").expect("read") {
            Some((_, id)) => id,
            None => panic!("no fields"),
        };
        am.put(&fields, "place", "外部").expect("put");
    }));
    let result = push(&api, &w1, &push_of(mine.id(), changes)).await;
    assert_rejected(&result, "foreign_author");
    assert_eq!(fingerprint(&t.url).await, before);

    // What is stored names the pushing user and the device the token belongs to.
    let result = push(&api, &w1, &push_all(&mut [&mut mine])).await;
    assert!(is_acked(&result.docs[0].outcome));
    let history = api
        .get(&format!("/api/v1/reports/{}/history", mine.id()), &admin)
        .await;
    assert_eq!(history.status, StatusCode::OK, "{}", history.body);
    let changes = history.body["changes"].as_array().expect("changes");
    assert_eq!(changes.len(), 2);
    for change in changes {
        assert_eq!(change["author"], json!("w1"), "{change}");
        assert_eq!(change["device_id"], json!("w1-phone"), "{change}");
    }
}

async fn changes_to_the_server_managed_meta_are_refused_and_nothing_is_stored(t: &TestStore) {
    let api = api(t).await;
    let w1 = token(&api, "w1").await;
    let mut doc = dispute(1, G1, "w1");
    assert!(is_acked(
        &push(&api, &w1, &push_all(&mut [&mut doc])).await.docs[0].outcome
    ));
    let before = fingerprint(&t.url).await;
    let heads = t
        .store
        .document(&doc.id())
        .await
        .expect("read")
        .expect("stored")
        .heads;
    let edits: Vec<(&str, Edit)> = vec![
        (
            "kind",
            Box::new(|am| {
                let m = meta_of(am);
                am.put(&m, "kind", "drug_control_case").expect("put");
            }),
        ),
        (
            "schema_version",
            Box::new(|am| {
                let m = meta_of(am);
                am.put(&m, "schema_version", 2).expect("put");
            }),
        ),
        (
            "grid",
            Box::new(|am| {
                let m = meta_of(am);
                am.put(&m, "grid", G2).expect("put");
            }),
        ),
        (
            "grid",
            Box::new(|am| {
                let m = meta_of(am);
                am.put(&m, "grid", G3).expect("put");
            }),
        ),
        (
            "created",
            Box::new(|am| {
                let m = meta_of(am);
                am.put(&m, "created_by", "c1").expect("put");
            }),
        ),
        (
            "created",
            Box::new(|am| {
                let m = meta_of(am);
                am.put(&m, "created_at", "2020-01-01T00:00:00Z")
                    .expect("put");
            }),
        ),
        (
            "id",
            Box::new(|am| {
                let m = meta_of(am);
                am.put(&m, "id", DocId::from_u128(2).to_string())
                    .expect("put");
            }),
        ),
    ];
    for (what, edit) in edits {
        let changes = forge(&mut doc, Some("w1"), edit);
        let result = push(&api, &w1, &push_of(doc.id(), changes)).await;
        match &result.docs[0].outcome {
            PushOutcome::Rejected { code, reason } => {
                assert_eq!(code, "meta_changed", "{what}: {reason}");
                assert!(reason.contains(what), "{what}: {reason}");
            }
            other => panic!("{what}: expected meta_changed, got {other:?}"),
        }
    }
    // Deleting the meta leaves no report at all.
    let changes = forge(&mut doc, Some("w1"), |am| {
        am.delete(ROOT, "meta").expect("delete")
    });
    let result = push(&api, &w1, &push_of(doc.id(), changes)).await;
    assert_rejected(&result, "not_a_report");
    assert_eq!(fingerprint(&t.url).await, before);
    let after = t
        .store
        .document(&doc.id())
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(after.heads, heads);
    assert_eq!(after.grid_id, G1);
}

async fn a_new_report_claiming_another_creator_is_refused(t: &TestStore) {
    let api = api(t).await;
    let w1 = token(&api, "w1").await;
    let before = fingerprint(&t.url).await;
    let mut doc = dispute(1, G1, "w1");
    let mut changes = doc.changes_since(&[]);
    changes.extend(forge(&mut doc, Some("w1"), |am| {
        let m = meta_of(am);
        am.put(&m, "created_by", "c1").expect("put");
    }));
    let result = push(&api, &w1, &push_of(doc.id(), changes)).await;
    assert_rejected(&result, "foreign_author");
    assert_eq!(fingerprint(&t.url).await, before);
}
