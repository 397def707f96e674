//! The attachment endpoints, driven through `app(state)` on SQLite and on Postgres: resumable
//! chunked upload, deduplication, refusals of bad uploads with nothing half-stored, ranged
//! download, and who may learn, upload and download what.

mod support;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use gridsync_core::DocId;
use gridsync_core::report::Editor;
use gridsync_server::config::{Config, MAX_ATTACHMENT_BYTES};
use gridsync_server::scope::Role;
use gridsync_server::store::{AuditQuery, BlobUsage, Writer};
use gridsync_server::thumbnail::DECODES_AT_ONCE;
use serde_json::{Value, json};
use support::http::{Api, RawReply, api_with_devices};
use support::*;

on_both_test_stores!(
    an_upload_cut_at_random_chunk_boundaries_resumes_and_downloads_byte_for_byte,
    a_second_upload_of_the_same_bytes_stores_nothing_new,
    a_wrong_hash_is_422_and_leaves_nothing_visible,
    an_oversized_attachment_is_413_and_an_unknown_media_type_415,
    a_chunk_at_the_wrong_offset_is_409_with_the_servers_offset,
    a_worker_of_another_grid_gets_the_same_404_for_any_hash_and_cannot_upload,
    township_staff_may_not_download_attachments,
    a_range_download_is_206_with_exactly_those_bytes,
    downloading_a_drug_case_attachment_is_audited,
    bytes_the_report_does_not_name_or_names_otherwise_are_refused_and_nothing_is_stored,
    the_report_lists_its_attachments_and_a_photo_gets_a_thumbnail_when_uploaded,
    a_thumbnail_is_read_under_the_rules_of_the_download,
    a_photo_too_large_to_decode_is_kept_without_a_thumbnail_whose_answer_says_why,
    an_upload_waits_for_a_turn_to_decode_and_a_phone_that_gives_up_still_gets_its_thumbnail,
    a_removed_entrys_attachments_are_unlisted_but_uploaded_and_kept_for_a_restore,
);

/// Users: w1 (g1), w3 (g3), c1 (cadre of v1), ts (township staff of t1), o1 (drug-control
/// officer of t1); each with device `dev-<id>`.
const USERS: [(&str, Role, &str); 5] = [
    ("w1", Role::GridWorker, G1),
    ("w3", Role::GridWorker, G3),
    ("c1", Role::VillageCadre, "v1"),
    ("ts", Role::TownshipStaff, "t1"),
    ("o1", Role::DrugControlOfficer, "t1"),
];

/// What the attachment endpoints answer beyond a status.
impl RawReply {
    fn offset(&self) -> i64 {
        self.header("upload-offset")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no Upload-Offset ({}): {}", self.status, self.json()))
    }
}

async fn api(t: &TestStore) -> Api {
    api_with_devices(t, &USERS, Config::default()).await
}

fn phone(user: &str) -> Writer {
    let (_, role, unit) = USERS.iter().find(|u| u.0 == user).expect("user");
    writer(user, *role, unit, &format!("dev-{user}"))
}

fn path(doc: DocId, hash: &str) -> String {
    format!("/api/v1/reports/{doc}/attachments/{hash}")
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Deterministic pseudo-random bytes (xorshift).
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 56) as u8
        })
        .collect()
}

/// Requests as a seeded user of the attachment endpoints, answered as bytes.
impl Api {
    async fn send_as(
        &self,
        user: &str,
        req: axum::http::request::Builder,
        body: Vec<u8>,
    ) -> RawReply {
        let token = self.device_token(user).await;
        let req = req
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::from(body))
            .expect("request");
        self.send_raw(req).await
    }

    /// PUTs `blob[start..end]` as a chunk of `blob`, named by `hash`: every part of a PUT the
    /// tests vary, spelled out at each call.
    #[expect(clippy::too_many_arguments)]
    async fn put(
        &self,
        user: &str,
        doc: DocId,
        hash: &str,
        media_type: &str,
        blob: &[u8],
        start: usize,
        end: usize,
    ) -> RawReply {
        let req = Request::put(path(doc, hash))
            .header(header::CONTENT_TYPE, media_type)
            .header(
                header::CONTENT_RANGE,
                format!("bytes {start}-{}/{}", end - 1, blob.len()),
            );
        self.send_as(user, req, blob[start..end].to_vec()).await
    }

    async fn head(&self, user: &str, doc: DocId, hash: &str) -> RawReply {
        self.send_as(user, Request::head(path(doc, hash)), Vec::new())
            .await
    }

    async fn download(&self, user: &str, doc: DocId, hash: &str, range: Option<&str>) -> RawReply {
        let mut req = Request::get(path(doc, hash));
        if let Some(r) = range {
            req = req.header(header::RANGE, r);
        }
        self.send_as(user, req, Vec::new()).await
    }

    /// Uploads `blob` whole in one PUT and expects it stored.
    async fn upload(&self, user: &str, doc: DocId, blob: &[u8]) -> RawReply {
        let r = self
            .put(
                user,
                doc,
                &sha256_hex(blob),
                "image/jpeg",
                blob,
                0,
                blob.len(),
            )
            .await;
        assert!(r.status.is_success(), "{}: {}", r.status, r.json());
        r
    }

    /// A dispute check of `user`'s grid that names `blobs` (bytes, media type) as attachments.
    async fn report(&self, id: u128, user: &str, blobs: &[(&[u8], &str)]) -> DocId {
        let (_, _, grid) = USERS.iter().find(|u| u.0 == user).expect("user");
        let mut doc = dispute(id, grid, user);
        for (bytes, media_type) in blobs {
            attach(&mut doc, user, field_for(media_type), media_type, bytes);
        }
        self.push(user, &mut doc).await
    }

    async fn report_json(&self, user: &str, doc: DocId) -> Value {
        let r = self
            .send_as(
                user,
                Request::get(format!("/api/v1/reports/{doc}")),
                Vec::new(),
            )
            .await;
        r.assert_status(StatusCode::OK);
        r.json()
    }

    async fn push(&self, user: &str, doc: &mut gridsync_core::report::ReportDoc) -> DocId {
        let result = ingest(self.store.as_ref(), &phone(user), &push_all(&mut [doc]))
            .await
            .expect("ingest");
        assert!(
            result.docs.iter().all(|d| is_acked(&d.outcome)),
            "{result:?}"
        );
        doc.id()
    }

    async fn usage(&self) -> BlobUsage {
        self.store.blob_usage().await.expect("usage")
    }
}

/// The dispute-check field that takes `media_type`: photos are site photos, PDFs the agreement.
fn field_for(media_type: &str) -> &'static str {
    if media_type == "application/pdf" {
        "signed_agreement"
    } else {
        "site_photos"
    }
}

/// A JPEG photo of `width` × `height` pixels.
fn jpeg(width: u32, height: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x % 251) as u8, (y % 241) as u8, ((x + y) % 239) as u8])
    });
    let mut out = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut out),
        image::ImageFormat::Jpeg,
    )
    .expect("encode");
    out
}

/// A PNG whose header declares `width` × `height` pixels of RGB but holds the data of 4 × 4: a
/// decoder trusting the header allocates the whole picture before finding out.
fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    let mut png = Vec::new();
    image::RgbImage::new(4, 4)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .expect("encode");
    // Signature (8), IHDR length (4) and type (4), then width and height, then the CRC-32 of
    // type and data (ISO 3309).
    png[16..20].copy_from_slice(&width.to_be_bytes());
    png[20..24].copy_from_slice(&height.to_be_bytes());
    let mut crc = !0u32;
    for &b in &png[12..29] {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    png[29..33].copy_from_slice(&(!crc).to_be_bytes());
    png
}

/// A tiny deterministic generator for chunk boundaries.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

async fn an_upload_cut_at_random_chunk_boundaries_resumes_and_downloads_byte_for_byte(
    t: &TestStore,
) {
    let api = api(t).await;
    let blobs: Vec<Vec<u8>> = (1..=3u64)
        .map(|seed| noise(600_000 + seed as usize * 7, seed))
        .collect();
    let named: Vec<(&[u8], &str)> = blobs.iter().map(|b| (&b[..], "image/jpeg")).collect();
    let doc = api.report(1, "w1", &named).await;
    for (blob, seed) in blobs.iter().zip(1..=3u64) {
        let blob = blob.as_slice();
        let hash = sha256_hex(blob);
        let mut rng = Rng(seed * 7919);
        // Nothing held yet.
        api.head("w1", doc, &hash)
            .await
            .assert_status(StatusCode::NOT_FOUND);
        let mut offset = 0;
        let mut interrupted = false;
        loop {
            let end = (offset + 1 + rng.below(120_000)).min(blob.len());
            let r = api
                .put("w1", doc, &hash, "image/jpeg", blob, offset, end)
                .await;
            if end == blob.len() {
                r.assert_status(StatusCode::CREATED);
                assert_eq!(r.json()["size"], json!(blob.len()));
                break;
            }
            r.assert_status(StatusCode::ACCEPTED);
            assert_eq!(r.offset(), end as i64);
            offset = end;
            if !interrupted && offset > blob.len() / 2 {
                // The client is killed: it forgot where it was, and retries a chunk that the
                // server already holds (its answer was lost), then asks where to resume.
                interrupted = true;
                let again = api.put("w1", doc, &hash, "image/jpeg", blob, 0, 1000).await;
                again.assert_problem(StatusCode::CONFLICT, "wrong_offset");
                assert_eq!(again.offset(), offset as i64);
                let head = api.head("w1", doc, &hash).await;
                head.assert_status(StatusCode::OK);
                assert_eq!(
                    head.header("upload-length"),
                    Some(blob.len().to_string().as_str())
                );
                offset = usize::try_from(head.offset()).expect("offset");
            }
        }
        assert!(interrupted);
        let head = api.head("w1", doc, &hash).await;
        assert_eq!(head.offset(), blob.len() as i64);
        let got = api.download("w1", doc, &hash, None).await;
        got.assert_status(StatusCode::OK);
        assert_eq!(got.header("content-type"), Some("image/jpeg"));
        assert_eq!(got.header("etag"), Some(format!("\"{hash}\"").as_str()));
        assert_eq!(
            got.header("cache-control"),
            Some("no-store"),
            "personal data is not kept in a browser's cache"
        );
        assert!(
            got.bytes == blob,
            "the downloaded bytes differ from the upload"
        );
    }
    let usage = api.usage().await;
    assert_eq!((usage.blobs, usage.uploads, usage.upload_bytes), (3, 0, 0));
}

async fn a_second_upload_of_the_same_bytes_stores_nothing_new(t: &TestStore) {
    let api = api(t).await;
    let blob = noise(300_000, 9);
    let named: [(&[u8], &str); 1] = [(&blob, "image/jpeg")];
    let d1 = api.report(1, "w1", &named).await;
    let d2 = api.report(2, "w1", &named).await;
    let d3 = api.report(3, "w3", &named).await;
    let hash = sha256_hex(&blob);
    api.upload("w1", d1, &blob)
        .await
        .assert_status(StatusCode::CREATED);
    let stored = api.usage().await;
    assert_eq!(stored.blobs, 1);
    // Same report, and another report the uploader sees: answered at once, no body needed.
    for doc in [d1, d2] {
        let r = api.put("w1", doc, &hash, "image/jpeg", &blob, 0, 1).await;
        r.assert_status(StatusCode::OK);
        assert_eq!(r.json()["sha256"], json!(hash));
        assert_eq!(api.usage().await, stored);
    }
    assert!(api.download("w1", d2, &hash, None).await.bytes == blob);
    // Someone who sees no report holding the blob must send the bytes, which are verified and
    // dropped in favour of the stored blob.
    let first = api.put("w3", d3, &hash, "image/jpeg", &blob, 0, 1000).await;
    first.assert_status(StatusCode::ACCEPTED);
    let done = api
        .put("w3", d3, &hash, "image/jpeg", &blob, 1000, blob.len())
        .await;
    done.assert_status(StatusCode::CREATED);
    assert_eq!(api.usage().await, stored);
    assert!(api.download("w3", d3, &hash, None).await.bytes == blob);
}

async fn a_wrong_hash_is_422_and_leaves_nothing_visible(t: &TestStore) {
    let api = api(t).await;
    let blob = noise(50_000, 3);
    let wrong = sha256_hex(b"not these bytes");
    let mut report = dispute(1, G1, "w1");
    attach_named(
        &mut report,
        "w1",
        "site_photos",
        None,
        "image/png",
        &wrong,
        blob.len(),
    );
    let doc = api.push("w1", &mut report).await;
    api.put("w1", doc, &wrong, "image/png", &blob, 0, 20_000)
        .await
        .assert_status(StatusCode::ACCEPTED);
    api.put("w1", doc, &wrong, "image/png", &blob, 20_000, blob.len())
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "hash_mismatch");
    api.head("w1", doc, &wrong)
        .await
        .assert_status(StatusCode::NOT_FOUND);
    api.download("w1", doc, &wrong, None)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    api.download("w1", doc, &sha256_hex(&blob), None)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(api.usage().await, BlobUsage::default());
}

async fn an_oversized_attachment_is_413_and_an_unknown_media_type_415(t: &TestStore) {
    let api = api(t).await;
    let body = noise(100, 1);
    let doc = api
        .report(1, "w1", &[(b"x", "application/pdf"), (&body, "image/jpeg")])
        .await;
    let hash = sha256_hex(b"x");
    let too_big = MAX_ATTACHMENT_BYTES + 1;
    let req = Request::put(path(doc, &hash))
        .header(header::CONTENT_TYPE, "image/jpeg")
        .header(header::CONTENT_RANGE, format!("bytes 0-999/{too_big}"));
    api.send_as("w1", req, vec![0; 1000])
        .await
        .assert_problem(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    for media_type in ["text/html", "image/svg+xml", "application/octet-stream", ""] {
        let r = api.put("w1", doc, &hash, media_type, b"x", 0, 1).await;
        r.assert_problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    }
    // Parameters and case of the media type do not matter.
    let r = api
        .put(
            "w1",
            doc,
            &hash,
            "Application/PDF; charset=binary",
            b"x",
            0,
            1,
        )
        .await;
    r.assert_status(StatusCode::CREATED);
    assert_eq!(r.json()["media_type"], json!("application/pdf"));
    // A body longer than Content-Range says is refused.
    let req = Request::put(path(doc, &sha256_hex(&body)))
        .header(header::CONTENT_TYPE, "image/jpeg")
        .header(header::CONTENT_RANGE, "bytes 0-9/100");
    api.send_as("w1", req, body.clone())
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "bad_request");
    assert_eq!(api.usage().await.uploads, 0);
}

async fn a_chunk_at_the_wrong_offset_is_409_with_the_servers_offset(t: &TestStore) {
    let api = api(t).await;
    let blob = noise(10_000, 4);
    let doc = api.report(1, "w1", &[(&blob, "image/webp")]).await;
    let hash = sha256_hex(&blob);
    // Nothing held: the upload starts at 0.
    let r = api
        .put("w1", doc, &hash, "image/webp", &blob, 4000, 5000)
        .await;
    r.assert_problem(StatusCode::CONFLICT, "wrong_offset");
    assert_eq!((r.offset(), r.json()["offset"].clone()), (0, json!(0)));
    api.put("w1", doc, &hash, "image/webp", &blob, 0, 3000)
        .await
        .assert_status(StatusCode::ACCEPTED);
    for (start, end) in [(0, 3000), (2000, 4000), (5000, 6000)] {
        let r = api
            .put("w1", doc, &hash, "image/webp", &blob, start, end)
            .await;
        r.assert_problem(StatusCode::CONFLICT, "wrong_offset");
        assert_eq!(
            (r.offset(), r.json()["offset"].clone()),
            (3000, json!(3000))
        );
    }
    api.put("w1", doc, &hash, "image/webp", &blob, 3000, blob.len())
        .await
        .assert_status(StatusCode::CREATED);
}

async fn a_worker_of_another_grid_gets_the_same_404_for_any_hash_and_cannot_upload(t: &TestStore) {
    let api = api(t).await;
    let blob = noise(20_000, 5);
    let hash = sha256_hex(&blob);
    let unknown = sha256_hex(b"never uploaded");
    let d1 = api.report(1, "w1", &[(&blob, "image/jpeg")]).await;
    // w3's own report names both hashes, with the same size: only the bytes could differ.
    let mut report = dispute(3, G3, "w3");
    for sha in [&hash, &unknown] {
        attach_named(
            &mut report,
            "w3",
            "site_photos",
            None,
            "image/jpeg",
            sha,
            blob.len(),
        );
    }
    let d3 = api.push("w3", &mut report).await;
    api.upload("w1", d1, &blob).await;

    // Through the report of g1, which w3 does not see: all the same 404.
    let same = |a: &RawReply, b: &RawReply| {
        assert_eq!((a.status, &a.bytes), (b.status, &b.bytes));
    };
    let (x, y) = (
        api.download("w3", d1, &hash, None).await,
        api.download("w3", d1, &unknown, None).await,
    );
    x.assert_problem(StatusCode::NOT_FOUND, "not_found");
    same(&x, &y);
    same(
        &api.head("w3", d1, &hash).await,
        &api.head("w3", d1, &unknown).await,
    );
    let put = api.put("w3", d1, &hash, "image/jpeg", &blob, 0, 1000).await;
    put.assert_problem(StatusCode::NOT_FOUND, "not_found");
    same(
        &put,
        &api.put("w3", d1, &unknown, "image/jpeg", &blob, 0, 1000)
            .await,
    );
    // Through w3's own report: a stored hash looks exactly like an unknown one.
    let (x, y) = (
        api.download("w3", d3, &hash, None).await,
        api.download("w3", d3, &unknown, None).await,
    );
    x.assert_problem(StatusCode::NOT_FOUND, "not_found");
    same(&x, &y);
    same(
        &api.head("w3", d3, &hash).await,
        &api.head("w3", d3, &unknown).await,
    );
    let a = api.put("w3", d3, &hash, "image/jpeg", &blob, 0, 1000).await;
    let b = api
        .put("w3", d3, &unknown, "image/jpeg", &blob, 0, 1000)
        .await;
    a.assert_status(StatusCode::ACCEPTED);
    same(&a, &b);
    // Nothing of w3's attempts reached the report of g1.
    assert_eq!(api.store.attachments_of(&d1).await.expect("list").len(), 1);
}

async fn township_staff_may_not_download_attachments(t: &TestStore) {
    let api = api(t).await;
    let blob = noise(5000, 6);
    let doc = api.report(1, "w1", &[(&blob, "image/jpeg")]).await;
    let hash = sha256_hex(&blob);
    api.upload("w1", doc, &blob).await;
    api.download("ts", doc, &hash, None)
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    api.download("ts", doc, &sha256_hex(b"other"), None)
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    // The cadre of the village, with clearance, may.
    assert!(api.download("c1", doc, &hash, None).await.bytes == blob);
}

async fn a_range_download_is_206_with_exactly_those_bytes(t: &TestStore) {
    let api = api(t).await;
    let blob = noise(700_000, 7);
    let doc = api.report(1, "w1", &[(&blob, "image/jpeg")]).await;
    let hash = sha256_hex(&blob);
    api.upload("w1", doc, &blob).await;
    let n = blob.len();
    for (range, start, end) in [
        ("bytes=0-0", 0, 1),
        ("bytes=262140-524300", 262_140, 524_301),
        ("bytes=600000-", 600_000, n),
        ("bytes=-100", n - 100, n),
        ("bytes=699990-800000", 699_990, n),
    ] {
        let r = api.download("w1", doc, &hash, Some(range)).await;
        r.assert_status(StatusCode::PARTIAL_CONTENT);
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes {start}-{}/{n}", end - 1).as_str()),
            "{range}"
        );
        assert!(r.bytes == blob[start..end], "bytes of {range}");
    }
    let r = api.download("w1", doc, &hash, Some("bytes=700000-")).await;
    r.assert_problem(StatusCode::RANGE_NOT_SATISFIABLE, "range_not_satisfiable");
    assert_eq!(r.header("content-range"), Some("bytes */700000"));
}

async fn downloading_a_drug_case_attachment_is_audited(t: &TestStore) {
    let api = api(t).await;
    let mut case = drug_case(8, G1, "w1", "w1");
    let blob = noise(4000, 8);
    let hash = sha256_hex(&blob);
    let mut visit = serde_json::Map::new();
    visit.insert("date".into(), json!("2026-11-03"));
    let entry = case
        .append_log(&visit, &Editor::new("w1", 1_002))
        .expect("visit");
    attach_named(
        &mut case,
        "w1",
        "visit_record",
        Some(&entry),
        "image/jpeg",
        &hash,
        blob.len(),
    );
    let doc = api.push("w1", &mut case).await;
    api.upload("w1", doc, &blob).await;
    let query = AuditQuery {
        action: Some("read_attachment".into()),
        limit: 10,
        ..AuditQuery::default()
    };
    assert_eq!(api.store.audit_page(&query).await.expect("audit").total, 0);
    assert!(api.download("o1", doc, &hash, None).await.bytes == blob);
    api.download("o1", doc, &hash, Some("bytes=0-9"))
        .await
        .assert_status(StatusCode::PARTIAL_CONTENT);
    let page = api.store.audit_page(&query).await.expect("audit");
    assert_eq!(page.total, 2);
    let entries: Vec<_> = page.items.iter().map(|r| &r.entry).collect();
    assert!(
        entries
            .iter()
            .all(|e| e.user_id.as_deref() == Some("o1") && e.doc_id == Some(doc))
    );
    assert_eq!(entries[0].detail["sha256"], json!(hash));
    assert_eq!(entries[0].detail["range"], json!("0-9"));
    // An ordinary report's attachment is not audited.
    let plain = api.report(2, "w1", &[(&noise(10, 1), "image/jpeg")]).await;
    api.upload("w1", plain, &noise(10, 1)).await;
    api.download("c1", plain, &sha256_hex(&noise(10, 1)), None)
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(api.store.audit_page(&query).await.expect("audit").total, 2);
}

async fn bytes_the_report_does_not_name_or_names_otherwise_are_refused_and_nothing_is_stored(
    t: &TestStore,
) {
    let api = api(t).await;
    let blob = noise(5000, 11);
    let doc = api.report(1, "w1", &[(&blob, "image/png")]).await;
    let other = noise(5000, 12);
    let r = api
        .put(
            "w1",
            doc,
            &sha256_hex(&other),
            "image/png",
            &other,
            0,
            other.len(),
        )
        .await;
    r.assert_problem(StatusCode::CONFLICT, "not_attached");
    let hash = sha256_hex(&blob);
    // Another media type, another size: the document's metadata rules.
    api.put("w1", doc, &hash, "image/jpeg", &blob, 0, blob.len())
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "attachment_mismatch");
    api.put("w1", doc, &hash, "image/png", &blob, 0, 4000)
        .await
        .assert_status(StatusCode::ACCEPTED);
    let longer = [blob.clone(), vec![0; 10]].concat();
    api.put("w1", doc, &hash, "image/png", &longer, 0, 10)
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "attachment_mismatch");
    // The refused chunks changed nothing: the upload continues where it was.
    assert_eq!(api.head("w1", doc, &hash).await.offset(), 4000);
    let usage = api.usage().await;
    assert_eq!(
        (usage.blobs, usage.uploads, usage.upload_bytes),
        (0, 1, 4000)
    );
}

async fn the_report_lists_its_attachments_and_a_photo_gets_a_thumbnail_when_uploaded(
    t: &TestStore,
) {
    let api = api(t).await;
    let photo = jpeg(1200, 800);
    let pdf = noise(3000, 13);
    let doc = api
        .report(
            1,
            "w1",
            &[(&photo, "image/jpeg"), (&pdf, "application/pdf")],
        )
        .await;
    let (photo_hash, pdf_hash) = (sha256_hex(&photo), sha256_hex(&pdf));
    let listed = |report: &Value, hash: &str| -> Value {
        report["attachments"]
            .as_array()
            .expect("attachments")
            .iter()
            .find(|a| a["sha256"] == json!(hash))
            .cloned()
            .expect("listed")
    };
    let before = api.report_json("c1", doc).await;
    assert_eq!(before["attachments"].as_array().map(Vec::len), Some(2));
    let a = listed(&before, &photo_hash);
    assert_eq!(
        (&a["media_type"], &a["size"], &a["field"], &a["attached_by"]),
        (
            &json!("image/jpeg"),
            &json!(photo.len()),
            &json!("site_photos"),
            &json!("w1")
        )
    );
    assert_eq!(
        (&a["uploaded"], &a["thumbnail"]),
        (&json!(false), &Value::Null)
    );
    assert_eq!(a["taken_at"], json!("2026-11-03T10:00:00Z"));

    api.upload("w1", doc, &photo)
        .await
        .assert_status(StatusCode::CREATED);
    api.put("w1", doc, &pdf_hash, "application/pdf", &pdf, 0, pdf.len())
        .await
        .assert_status(StatusCode::CREATED);
    let after = api.report_json("c1", doc).await;
    let a = listed(&after, &photo_hash);
    let thumb = format!("/api/v1/reports/{doc}/attachments/{photo_hash}/thumbnail");
    assert_eq!(
        (&a["uploaded"], &a["thumbnail"]),
        (&json!(true), &json!(thumb))
    );
    let p = listed(&after, &pdf_hash);
    assert_eq!(
        (&p["uploaded"], &p["thumbnail"]),
        (&json!(true), &Value::Null)
    );

    let r = api.send_as("c1", Request::get(&thumb), Vec::new()).await;
    r.assert_status(StatusCode::OK);
    assert_eq!(r.header("content-type"), Some("image/jpeg"));
    let small =
        image::load_from_memory_with_format(&r.bytes, image::ImageFormat::Jpeg).expect("a JPEG");
    assert_eq!((small.width(), small.height()), (320, 213));
    // Without clearance: the list shows no thumbnail, the sensitive agreement's name is hidden.
    let staff = api.report_json("ts", doc).await;
    assert_eq!(listed(&staff, &photo_hash)["thumbnail"], Value::Null);
    assert_eq!(listed(&staff, &pdf_hash)["name"], json!("***"));
    assert_ne!(listed(&staff, &photo_hash)["name"], json!("***"));
}

async fn a_thumbnail_is_read_under_the_rules_of_the_download(t: &TestStore) {
    let api = api(t).await;
    let photo = jpeg(64, 48);
    let hash = sha256_hex(&photo);
    let doc = api.report(1, "w1", &[(&photo, "image/jpeg")]).await;
    let thumb = |doc: DocId, hash: &str| {
        Request::get(format!(
            "/api/v1/reports/{doc}/attachments/{hash}/thumbnail"
        ))
    };
    // Not uploaded yet: nothing to show.
    api.send_as("w1", thumb(doc, &hash), Vec::new())
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    api.upload("w1", doc, &photo).await;
    let small = api.send_as("w1", thumb(doc, &hash), Vec::new()).await;
    small.assert_status(StatusCode::OK);
    // A small photo keeps its size.
    let decoded = image::load_from_memory(&small.bytes).expect("image");
    assert_eq!((decoded.width(), decoded.height()), (64, 48));
    // Another grid: the same 404 as for a hash nobody has.
    let x = api.send_as("w3", thumb(doc, &hash), Vec::new()).await;
    let y = api
        .send_as("w3", thumb(doc, &sha256_hex(b"nothing")), Vec::new())
        .await;
    x.assert_problem(StatusCode::NOT_FOUND, "not_found");
    assert_eq!((x.status, x.bytes), (y.status, y.bytes));
    api.send_as("ts", thumb(doc, &hash), Vec::new())
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
}

async fn a_removed_entrys_attachments_are_unlisted_but_uploaded_and_kept_for_a_restore(
    t: &TestStore,
) {
    let api = api(t).await;
    let mut case = drug_case(9, G1, "w1", "w1");
    let w1 = Editor::new("w1", 1_002);
    let mut visit = serde_json::Map::new();
    visit.insert("date".into(), json!("2026-11-03"));
    let removed = case.append_log(&visit, &w1).expect("visit");
    let kept = case.append_log(&visit, &w1).expect("visit");
    let (uploaded, late, detached) = (noise(3000, 21), noise(3000, 22), noise(3000, 23));
    for (blob, entry) in [(&uploaded, &removed), (&late, &removed), (&detached, &kept)] {
        let hash = sha256_hex(blob);
        attach_named(
            &mut case,
            "w1",
            "visit_record",
            Some(entry),
            "image/jpeg",
            &hash,
            3000,
        );
    }
    let doc = api.push("w1", &mut case).await;
    api.upload("w1", doc, &uploaded).await;
    api.upload("w1", doc, &detached).await;
    case.remove_log(&removed, &w1).expect("remove");
    case.detach(&sha256_hex(&detached), &w1).expect("detach");
    api.push("w1", &mut case).await;

    // Hidden with their entry, yet still the report's: the bytes not sent yet are taken.
    assert_eq!(api.report_json("o1", doc).await["attachments"], json!([]));
    assert_eq!(
        api.upload("w1", doc, &late).await.status,
        StatusCode::CREATED
    );
    api.put(
        "w1",
        doc,
        &sha256_hex(&detached),
        "image/jpeg",
        &detached,
        0,
        3000,
    )
    .await
    .assert_problem(StatusCode::CONFLICT, "not_attached");
    let collected = api.store.collect_orphans(i64::MAX).await.expect("collect");
    assert_eq!((collected.links, collected.blobs), (1, 1));
    assert_eq!(api.usage().await.blobs, 2);

    case.restore_log(&removed, &Editor::new("o1", 1_003))
        .expect("restore");
    let mut office = case.clone();
    api.push("o1", &mut office).await;
    let listed = api.report_json("o1", doc).await["attachments"].clone();
    let listed: Vec<(String, bool)> = listed
        .as_array()
        .expect("attachments")
        .iter()
        .map(|a| {
            let sha = a["sha256"].as_str().expect("sha").to_owned();
            (sha, a["uploaded"] == json!(true))
        })
        .collect();
    let mut expected = [sha256_hex(&uploaded), sha256_hex(&late)];
    expected.sort();
    assert_eq!(listed, expected.map(|sha| (sha, true)));
    assert_eq!(
        api.download("o1", doc, &sha256_hex(&late), None)
            .await
            .bytes,
        late
    );
}

async fn a_photo_too_large_to_decode_is_kept_without_a_thumbnail_whose_answer_says_why(
    t: &TestStore,
) {
    let api = api(t).await;
    // What the security finding uploaded: a small PNG that decodes to 9000 × 9000 (243 MB).
    let huge = png_claiming(9_000, 9_000);
    let mut broken = jpeg(64, 48);
    broken.truncate(40);
    let doc = api
        .report(1, "w1", &[(&huge, "image/png"), (&broken, "image/jpeg")])
        .await;
    let (huge_hash, broken_hash) = (sha256_hex(&huge), sha256_hex(&broken));
    api.put("w1", doc, &huge_hash, "image/png", &huge, 0, huge.len())
        .await
        .assert_status(StatusCode::CREATED);
    api.upload("w1", doc, &broken)
        .await
        .assert_status(StatusCode::CREATED);

    let report = api.report_json("c1", doc).await;
    for a in report["attachments"].as_array().expect("attachments") {
        assert_eq!(
            (&a["uploaded"], &a["thumbnail"]),
            (&json!(true), &Value::Null)
        );
    }
    let thumb = |hash: &str| {
        Request::get(format!(
            "/api/v1/reports/{doc}/attachments/{hash}/thumbnail"
        ))
    };
    let too_large = api.send_as("c1", thumb(&huge_hash), Vec::new()).await;
    too_large.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "image_too_large");
    let detail = too_large.json()["detail"].as_str().unwrap_or("").to_owned();
    assert!(detail.contains("9000 × 9000"), "{detail}");
    // A photo that does not decode has no thumbnail either, for no reason of size.
    api.send_as("c1", thumb(&broken_hash), Vec::new())
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    // Nothing the worker recorded is lost: the photo itself is there, byte for byte.
    let photo = api.download("c1", doc, &huge_hash, None).await;
    photo.assert_status(StatusCode::OK);
    assert_eq!(photo.bytes, huge);
    // Scope and clearance come first, as for any thumbnail.
    api.send_as("w3", thumb(&huge_hash), Vec::new())
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    api.send_as("ts", thumb(&huge_hash), Vec::new())
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
}

async fn an_upload_waits_for_a_turn_to_decode_and_a_phone_that_gives_up_still_gets_its_thumbnail(
    t: &TestStore,
) {
    let api = api(t).await;
    let (photo, second) = (jpeg(64, 48), jpeg(48, 64));
    let doc = api
        .report(1, "w1", &[(&photo, "image/jpeg"), (&second, "image/jpeg")])
        .await;
    let hash = sha256_hex(&photo);
    let thumb = |hash: &str| {
        Request::get(format!(
            "/api/v1/reports/{doc}/attachments/{hash}/thumbnail"
        ))
    };
    // Every turn to decode is taken, as by photos decoding at this moment.
    let mut turns = Vec::new();
    for _ in 0..DECODES_AT_ONCE {
        turns.push(api.state.decodes.turn().await);
    }
    {
        let upload = api.upload("w1", doc, &photo);
        tokio::pin!(upload);
        // The photo is stored, but the answer waits for its thumbnail, which waits for a turn.
        while api
            .store
            .attachment(&doc, &hash)
            .await
            .expect("attachment")
            .is_none()
        {
            tokio::select! {
                r = &mut upload => panic!("answered without a turn to decode: {}", r.status),
                () = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
        }
        let answered = tokio::time::timeout(Duration::from_millis(300), &mut upload).await;
        assert!(answered.is_err(), "answered without a turn to decode");
        // The phone gives up waiting here.
    }
    api.send_as("w1", thumb(&hash), Vec::new())
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    drop(turns);
    // Its thumbnail is made all the same once a turn is free.
    let mut waited = 0;
    loop {
        let r = api.send_as("w1", thumb(&hash), Vec::new()).await;
        if r.status == StatusCode::OK {
            break;
        }
        assert!(
            waited < 30_000,
            "no thumbnail after a turn was free: {}",
            r.json()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 50;
    }
    // With turns free, the answer comes with the thumbnail made.
    api.upload("w1", doc, &second)
        .await
        .assert_status(StatusCode::CREATED);
    api.send_as("w1", thumb(&sha256_hex(&second)), Vec::new())
        .await
        .assert_status(StatusCode::OK);
}
