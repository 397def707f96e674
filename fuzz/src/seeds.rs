//! Writes the seed corpus (`corpus/<target>/seed-*`) from real documents, changes, frames and
//! bodies, and the fixture report they build on. Run by hand after a format change:
//!
//! ```text
//! cargo test --manifest-path fuzz/Cargo.toml --no-default-features -- --ignored write_fixture
//! cargo test --manifest-path fuzz/Cargo.toml --no-default-features -- --ignored write_seeds
//! ```
//!
//! (two runs, since the targets embed the fixture). Other corpus files, the minimised inputs of
//! fixed crashes, are left alone.

use std::fs;
use std::path::{Path, PathBuf};

use gridsync_core::DocId;
use gridsync_core::protocol::{
    self, AttestedPush, Message, Pull, PullBody, PullDoc, PullResult, Push, PushDoc, PushDocResult,
    PushOutcome, PushResult, Relay, RelayResult, RelayedPush,
};
use gridsync_core::report::{Editor, ReportDoc};
use serde_json::{Map, Value, json};

use crate::fixture::{AUTHOR, KIND, OTHER_USER, REPORT_ID, editor, join};
use crate::ingest::{AS_OTHER_USER, FIX_CHECKSUMS, ONTO_REPORT};
use crate::replica_apply::{CURSOR, replica};

const OTHER_ID: DocId = DocId::from_u128(0x6772_6964_7379_6e63_0000_0000_0000_0002);

#[test]
#[ignore = "rewrites fuzz/fixtures/report.automerge; run by hand (see the module doc)"]
fn write_fixture() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/report.automerge");
    fs::write(path, fixture_report().save()).expect("write the fixture");
}

#[test]
#[ignore = "rewrites fuzz/corpus/*/seed-*; run by hand (see the module doc)"]
fn write_seeds() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut report = crate::fixture::report();

    let created = report.changes_since(&[]);
    let edit = edit_of(&report, AUTHOR, |doc, by| {
        doc.set_fields(
            &fields(json!({"status": "mediating", "place": "村委会"})),
            by,
        )?;
        let entry = first_entry(doc);
        doc.edit_log(&entry, &fields(json!({"outcome": "双方同意再谈"})), by)
    });
    let by_other = edit_of(&report, OTHER_USER, |doc, by| {
        doc.append_log(
            &fields(json!({"date": "2024-05-02", "mediator": OTHER_USER, "method": "电话"})),
            by,
        )
        .map(drop)
    });
    let long_text = edit_of(&report, AUTHOR, |doc, by| {
        doc.set_fields(&fields(json!({"description": "邻里纠纷 ".repeat(80)})), by)
    });
    let canvass = new_report(
        "satisfaction_canvass",
        json!({"household_type": "migrant",
        "canvasser": AUTHOR, "interviewed_at": "2024-05-01T09:30:00Z",
        "location": {"lat": 31.2, "lon": 121.5}, "worries": ["fraud", "traffic"]}),
    );
    let drug_case = new_report(
        "drug_control_case",
        json!({"subject_name": "张三",
        "programme": "community_detox", "assigned_worker": AUTHOR, "status": "active"}),
    );
    let mut other_report = ReportDoc::create(OTHER_ID, KIND, 1, "g", &editor()).expect("create");
    let other_report_changes = other_report.changes_since(&[]);

    let mut ingest = Seeds::new(root, "ingest");
    ingest.add("new-report", [&[0], &join(&created)[..]].concat());
    ingest.add(
        "new-report-fixed",
        [&[FIX_CHECKSUMS], &join(&created)[..]].concat(),
    );
    ingest.add("new-canvass", [&[0], &join(&canvass)[..]].concat());
    ingest.add("new-drug-case", [&[0], &join(&drug_case)[..]].concat());
    ingest.add(
        "other-id",
        [&[0], &join(&other_report_changes)[..]].concat(),
    );
    ingest.add("missing-deps", [&[0], &join(&created[1..])[..]].concat());
    ingest.add("edit", [&[ONTO_REPORT], &join(&edit)[..]].concat());
    ingest.add(
        "edit-fixed",
        [&[ONTO_REPORT | FIX_CHECKSUMS], &join(&edit)[..]].concat(),
    );
    ingest.add(
        "edit-twice",
        [
            &[ONTO_REPORT],
            &join(&[edit.clone(), edit.clone()].concat())[..],
        ]
        .concat(),
    );
    ingest.add(
        "edit-by-other",
        [&[ONTO_REPORT | AS_OTHER_USER], &join(&by_other)[..]].concat(),
    );
    ingest.add(
        "foreign-author",
        [&[ONTO_REPORT | AS_OTHER_USER], &join(&edit)[..]].concat(),
    );
    ingest.add(
        "compressed-change",
        [&[ONTO_REPORT], &join(&long_text)[..]].concat(),
    );
    ingest.add(
        "retry-of-stored",
        [&[ONTO_REPORT], &join(&created)[..]].concat(),
    );

    let mut frames = Seeds::new(root, "protocol_decode");
    let push = Push {
        docs: vec![
            PushDoc {
                doc: REPORT_ID,
                changes: edit.clone(),
            },
            PushDoc {
                doc: OTHER_ID,
                changes: other_report_changes.clone(),
            },
        ],
    };
    frames.frame("push", &push);
    frames.frame(
        "push-compressed",
        &Push {
            docs: vec![PushDoc {
                doc: REPORT_ID,
                changes: long_text.clone(),
            }],
        },
    );
    frames.frame("push-empty", &Push { docs: Vec::new() });
    // Decoding does not check the signature, so any 64 bytes seed it.
    let attested = AttestedPush {
        push: push.clone(),
        device: "phone-1".into(),
        signature: [5; 64],
    };
    frames.frame("attested-push", &attested);
    frames.frame(
        "relay",
        &Relay {
            pushes: vec![attested],
        },
    );
    frames.frame(
        "relay-result",
        &RelayResult {
            pushes: vec![RelayedPush {
                result: push_result_of_every_outcome(),
                receipt: Some("eyJhbGciOiJFZERTQSJ9.e30.c2ln".into()),
            }],
        },
    );
    frames.frame("push-result", &push_result_of_every_outcome());
    frames.frame(
        "pull",
        &Pull {
            since: 0,
            after: 0,
            byte_budget: 1 << 20,
            resend: Vec::new(),
            takes_heads: false,
        },
    );
    frames.frame(
        "pull-resend",
        &Pull {
            since: 17,
            after: 40,
            byte_budget: 65_536,
            resend: vec![REPORT_ID, OTHER_ID],
            takes_heads: false,
        },
    );
    frames.frame(
        "pull-result-changes",
        &pull_result(vec![PullDoc {
            doc: REPORT_ID,
            heads: Vec::new(),
            body: PullBody::Changes(created.clone()),
        }]),
    );
    frames.frame(
        "pull-result-snapshot",
        &pull_result(vec![PullDoc {
            doc: OTHER_ID,
            heads: Vec::new(),
            body: PullBody::Snapshot(other_report.save()),
        }]),
    );

    let mut replica_seeds = Seeds::new(root, "replica_apply");
    let acked = |heads: Vec<[u8; 32]>| PushDocResult {
        doc: REPORT_ID,
        outcome: PushOutcome::Acked { heads },
    };
    let head = report.heads()[0].0;
    replica_seeds.frame(
        "acked",
        &PushResult {
            docs: vec![acked(Vec::new())],
            hub: None,
        },
    );
    replica_seeds.frame(
        "acked-with-heads",
        &PushResult {
            docs: vec![acked(vec![head, [7; 32]])],
            hub: None,
        },
    );
    replica_seeds.frame("push-result-every-outcome", &push_result_of_every_outcome());
    replica_seeds.pull(
        "pull-edit-by-other",
        vec![PullDoc {
            doc: REPORT_ID,
            heads: Vec::new(),
            body: PullBody::Changes(by_other.clone()),
        }],
        Vec::new(),
    );
    replica_seeds.pull(
        "pull-new-report",
        vec![PullDoc {
            doc: OTHER_ID,
            heads: Vec::new(),
            body: PullBody::Changes(other_report_changes.clone()),
        }],
        Vec::new(),
    );
    replica_seeds.pull(
        "pull-snapshot",
        vec![PullDoc {
            doc: OTHER_ID,
            heads: Vec::new(),
            body: PullBody::Snapshot(other_report.save()),
        }],
        Vec::new(),
    );
    replica_seeds.pull(
        "pull-missing-history",
        vec![PullDoc {
            doc: OTHER_ID,
            heads: vec![head],
            body: PullBody::Changes(edit[..1].to_vec()),
        }],
        Vec::new(),
    );
    replica_seeds.pull("pull-evicted", Vec::new(), vec![REPORT_ID]);
    let mut restored = pull_result(Vec::new());
    restored.after = CURSOR.since - 1;
    replica_seeds.frame("pull-after-restore", &restored);

    let mut bodies = Seeds::new(root, "json_bodies");
    let entry = first_entry(&report);
    for (name, body) in [
        (
            "login",
            json!({"username": "worker-1", "password": "correct horse battery",
            "device_id": "d7c1e6", "device_name": "华为 P40"}),
        ),
        ("refresh", json!({"refresh_token": "rt_0123456789abcdef"})),
        (
            "new-user",
            json!({"username": "li.wei", "display_name": "李伟",
            "password": "a long enough password", "role": "grid_worker", "org_unit_id": "g"}),
        ),
        (
            "user-update",
            json!({"display_name": "李伟", "role": "village_cadre",
            "org_unit_id": "v", "disabled": false, "password": "another long password"}),
        ),
        (
            "new-org-unit",
            json!({"id": "g-2", "parent_id": "v", "level": "grid", "name": "第二网格"}),
        ),
        (
            "org-unit-patch",
            json!({"name": "新名字", "parent_id": "v", "level": "grid"}),
        ),
        (
            "review",
            json!({"state": "needs_attention", "note": "请补充当事人电话"}),
        ),
        (
            "resolve-text",
            json!({"value": "双方和解", "note": "电话确认"}),
        ),
        ("resolve-choice", json!({"value": "high"})),
        (
            "resolve-null",
            json!({"value": null, "note": "规则提醒已核实"}),
        ),
        (
            "new-report",
            json!({"kind": KIND, "grid_id": "g",
            "fields": {"category": "neighbour", "parties": "王某, 李某", "found_on": "2024-05-01"}}),
        ),
        (
            "new-canvass",
            json!({"kind": "satisfaction_canvass", "grid_id": "g",
            "fields": {"household_type": "business", "worries": ["disputes"],
                "location": {"lat": 30.5, "lon": 114.3}}}),
        ),
        (
            "new-drug-case",
            json!({"kind": "drug_control_case", "grid_id": "g",
            "fields": {"subject_name": "张三", "assigned_worker": AUTHOR}}),
        ),
        (
            "patch",
            json!({"fields": {"status": "resolved", "resolved_on": "2024-05-03",
            "party_phones": null},
            "log_append": [{"date": "2024-05-03", "mediator": AUTHOR, "method": "面谈"}],
            "log_edit": {entry.clone(): {"outcome": "达成协议"}},
            "log_remove": [entry.clone()]}),
        ),
        (
            "patch-unknown-entry",
            json!({"log_edit": {"no-such-entry": {"outcome": "x"}}}),
        ),
    ] {
        bodies.add(name, serde_json::to_vec_pretty(&body).expect("JSON"));
    }
    bodies.add(
        "org-import.csv",
        "id,parent_id,level,name,users\nd,,district,区,\nt,d,township,镇,\n\
        v2,t,village,新村,\ng2,v2,grid,新网格,worker-1\n"
            .as_bytes()
            .to_vec(),
    );
}

/// The fixture report: created by [`AUTHOR`], then filled in and given a mediation step.
fn fixture_report() -> ReportDoc {
    let by = editor();
    let mut doc = ReportDoc::create(REPORT_ID, KIND, 1, "g", &by).expect("create");
    doc.set_fields(
        &fields(json!({"category": "neighbour", "parties": "王某, 李某",
        "description": "楼上漏水", "found_on": "2024-05-01", "risk_level": "low",
        "status": "reported"})),
        &by,
    )
    .expect("fields");
    doc.append_log(
        &fields(json!({"date": "2024-05-01", "mediator": AUTHOR,
        "method": "上门"})),
        &by,
    )
    .expect("log");
    doc
}

fn new_report(kind: &str, values: Value) -> Vec<Vec<u8>> {
    let by = editor();
    let mut doc = ReportDoc::create(REPORT_ID, kind, 1, "g", &by).expect("create");
    doc.set_fields(&fields(values), &by).expect("fields");
    doc.changes_since(&[])
}

/// The changes `user` makes by `edit` on a copy of `report` (a new actor, as on another phone).
fn edit_of(
    report: &ReportDoc,
    user: &str,
    edit: impl FnOnce(&mut ReportDoc, &Editor) -> gridsync_core::Result<()>,
) -> Vec<Vec<u8>> {
    let mut base = report.clone();
    let mut doc = ReportDoc::load(REPORT_ID, &base.save()).expect("fork");
    let before = doc.heads();
    edit(&mut doc, &Editor::new(user, 1_700_000_100)).expect("edit");
    doc.changes_since(&before)
}

fn first_entry(doc: &ReportDoc) -> String {
    doc.to_json().expect("reads")["log"][0]["id"]
        .as_str()
        .expect("an entry")
        .to_owned()
}

fn fields(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => unreachable!("fields are written as JSON objects"),
    }
}

fn push_result_of_every_outcome() -> PushResult {
    PushResult {
        docs: vec![
            PushDocResult {
                doc: REPORT_ID,
                outcome: PushOutcome::Acked { heads: Vec::new() },
            },
            PushDocResult {
                doc: OTHER_ID,
                outcome: PushOutcome::MissingDeps {
                    missing: vec![[1; 32]],
                },
            },
            PushDocResult {
                doc: DocId::from_u128(3),
                outcome: PushOutcome::Rejected {
                    code: "out_of_scope".into(),
                    reason: "this report is outside what you may edit".into(),
                },
            },
        ],
        hub: None,
    }
}

fn pull_result(docs: Vec<PullDoc>) -> PullResult {
    PullResult {
        docs,
        evicted: Vec::new(),
        after: CURSOR.since + 3,
        more: false,
        digest: [0; 16],
        rescoped: false,
        catalogue: 0,
    }
}

/// Seed files of one target.
struct Seeds {
    dir: PathBuf,
}

impl Seeds {
    /// Clears the target's old seeds (not its other files).
    fn new(root: &Path, target: &str) -> Seeds {
        let dir = root.join("corpus").join(target);
        fs::create_dir_all(&dir).expect("corpus dir");
        for entry in fs::read_dir(&dir).expect("corpus dir") {
            let path = entry.expect("entry").path();
            if path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("seed-"))
            {
                fs::remove_file(path).expect("remove an old seed");
            }
        }
        Seeds { dir }
    }

    fn add(&mut self, name: &str, data: Vec<u8>) {
        assert!(data.len() <= 8192, "seed {name} is {} bytes", data.len());
        fs::write(self.dir.join(format!("seed-{name}")), data).expect("write a seed");
    }

    fn frame<M: Message>(&mut self, name: &str, msg: &M) {
        self.add(name, protocol::encode(msg));
    }

    /// A last pull page for [`replica`] whose digest matches what the replica holds after it.
    fn pull(&mut self, name: &str, docs: Vec<PullDoc>, evicted: Vec<DocId>) {
        let mut page = pull_result(docs);
        page.evicted = evicted;
        page.more = true;
        let mut after = replica();
        after
            .apply_pull_result(page.clone())
            .expect("the seed applies");
        page.digest = after.digest();
        page.more = false;
        self.frame(name, &page);
    }
}
