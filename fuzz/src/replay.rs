//! Replays every committed corpus file through its target on the stable toolchain, so that CI
//! keeps the seeds and the minimised inputs of fixed crashes passing without libFuzzer.

use std::fs;
use std::path::Path;

/// A target's name (its directory under `corpus/`) and body.
type Target = (&'static str, fn(&[u8]));

const TARGETS: [Target; 4] = [
    ("protocol_decode", crate::protocol_decode::run),
    ("ingest", crate::ingest::run),
    ("replica_apply", crate::replica_apply::run),
    ("json_bodies", crate::json_bodies::run),
];

#[test]
fn every_corpus_file_runs_through_its_target_without_a_panic() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for (target, run) in TARGETS {
        let dir = corpus.join(target);
        let mut files: Vec<_> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.expect("corpus entry").path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{} has no seeds", dir.display());
        for file in files {
            let data = fs::read(&file).expect("corpus file");
            let result = std::panic::catch_unwind(|| run(&data));
            assert!(result.is_ok(), "{} panicked", file.display());
        }
    }
}

#[test]
fn every_target_has_a_corpus_directory() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut dirs: Vec<String> = fs::read_dir(&corpus)
        .expect("corpus/")
        .map(|entry| {
            entry
                .expect("corpus entry")
                .file_name()
                .into_string()
                .expect("UTF-8")
        })
        .collect();
    dirs.sort();
    let mut targets: Vec<&str> = TARGETS.iter().map(|(t, _)| *t).collect();
    targets.sort();
    assert_eq!(dirs, targets);
}
