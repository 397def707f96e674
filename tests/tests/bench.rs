//! Every workload of gridsync-bench runs once at a tiny size on both backends, so the benchmark
//! keeps working; the figures themselves come from release runs (BENCHMARKS.md).

use std::process::Command;

use serde_json::Value;

/// Runs one workload and returns its JSON lines (SQLite first, then Postgres).
fn bench(args: &[&str]) -> Vec<Value> {
    let lines = bench_lines(args);
    assert_eq!(lines.len(), 2, "one line per backend: {lines:?}");
    assert_eq!(lines[0]["backend"], "sqlite");
    assert_eq!(lines[1]["backend"], "postgres");
    lines
}

/// Runs one workload and returns its JSON lines.
fn bench_lines(args: &[&str]) -> Vec<Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_gridsync-bench"))
        .args(args)
        .env("GRIDSYNC_BIN", gridsync_e2e::server_binary())
        .output()
        .expect("run gridsync-bench");
    assert!(
        out.status.success(),
        "gridsync-bench {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

#[test]
fn upload_workload_converges_and_reports_every_figure() {
    for line in bench(&["w1", "--phones", "2", "--docs", "3", "--edits", "2"]) {
        assert_eq!(line["converged"], true, "{line}");
        assert_eq!(line["edits"], 2 * 3 * (2 + 2));
        assert_eq!(line["office_pull"]["docs"], 6);
        assert!(
            line["upload"]["wire_bytes_up"].as_u64()
                > line["upload"]["push_body_bytes_up"].as_u64()
        );
        // The pushes alone, as the peers' harness times an upload, end within the upload.
        let (push, upload) = (&line["upload"]["push_seconds"], &line["upload"]["seconds"]);
        assert!(
            push.as_f64() > Some(0.0) && push.as_f64() <= upload.as_f64(),
            "{line}"
        );
        assert!(line["office_pull"]["compacted_doc_bytes"].as_u64() > Some(0));
        assert!(line["server_peak_memory_bytes"].as_u64() > Some(0));
        assert!(line["database_bytes"].as_u64() > Some(0));
    }
}

#[test]
fn a_no_op_sync_is_one_small_request() {
    for line in bench(&["w2", "--docs", "20"]) {
        assert_eq!(line["requests"], 1, "{line}");
        assert!(line["wire_bytes_total"].as_u64() < Some(1_024), "{line}");
    }
}

#[test]
fn an_incremental_sync_carries_about_the_change() {
    for line in bench(&["w3", "--docs", "20"]) {
        assert_eq!(line["converged"], true, "{line}");
        assert_eq!(line["push"]["requests"], 1, "{line}");
        assert_eq!(line["pull"]["requests"], 1, "{line}");
        let change = line["change_bytes"].as_f64().expect("change bytes");
        let pulled = line["pull"]["body_bytes_down"]
            .as_f64()
            .expect("pulled bytes");
        assert!(pulled > change, "the pull carries the change: {line}");
    }
}

#[test]
fn sustained_workload_with_statistics_runs_without_errors() {
    let args = [
        "w4",
        "--devices",
        "3",
        "--secs",
        "3",
        "--every",
        "0.5",
        "--stats",
    ];
    for line in bench(&args) {
        assert_eq!(line["errors"], 0, "{line}");
        assert!(line["syncs"].as_u64() > Some(0), "{line}");
        assert_eq!(line["office_statistics"]["errors"], 0, "{line}");
        assert!(
            line["office_statistics"]["requests"].as_u64() > Some(0),
            "{line}"
        );
    }
}

#[test]
fn scale_workload_copies_reports_in_postgres_and_pulls_a_township() {
    let args = [
        "w5",
        "--reports",
        "400",
        "--templates",
        "100",
        "--townships",
        "2",
    ];
    let lines = bench(&[&args[..], &["--runs", "1"]].concat());
    assert!(
        lines[0]["skipped"].is_string(),
        "SQLite is skipped: {}",
        lines[0]
    );
    let line = &lines[1];
    assert_eq!(line["reports"], 400, "{line}");
    assert!(
        line["generated"]["seconds"]["sql_copies"].is_number(),
        "{line}"
    );
    // Township t1 holds half the reports; a village cadre's scope leaves out the drug cases.
    assert_eq!(line["township_pull"]["docs"], 180, "{line}");
    assert_eq!(line["township_no_op_sync"]["requests"], 1, "{line}");
    assert_eq!(
        line["requests"].as_array().map(Vec::len),
        Some(10),
        "{line}"
    );
}

#[test]
fn phone_library_workload_syncs_opens_edits_and_syncs_again() {
    let lines = bench_lines(&["phone", "--worker", "5", "--office", "20"]);
    let backends: Vec<_> = lines.iter().map(|l| l["backend"].clone()).collect();
    assert_eq!(backends, ["sqlite", "sqlite", "postgres", "postgres"]);
    for (line, reports) in lines.iter().zip([5, 20, 5, 20]) {
        assert_eq!(line["first_sync"]["pulled_reports"], reports, "{line}");
        assert_eq!(line["open"]["listed"], reports, "{line}");
        assert_eq!(line["store"]["docs"], reports, "{line}");
        assert_eq!(line["no_op_sync"]["requests"], 1, "{line}");
        assert_eq!(line["no_op_sync"]["pulled_reports"], 0, "{line}");
        assert_eq!(line["edit"]["pending_changes"], 1, "{line}");
        assert!(line["edit"]["grew_bytes"].as_i64() > Some(0), "{line}");
        assert!(line["open"]["rss_bytes_after"].as_u64() > Some(0), "{line}");
    }
}
