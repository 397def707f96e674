//! Shared helpers of the end-to-end tests.

use std::path::PathBuf;

/// The `gridsync` binary of this build: `GRIDSYNC_BIN` when set, otherwise beside the test
/// executable's `deps/` folder (`target/<profile>/gridsync`), where building the workspace
/// (`cargo build --workspace`, `cargo nextest run --workspace`) puts it. Cargo builds another
/// package's binaries only when asked, so a test of this package alone needs that build first.
pub fn server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("GRIDSYNC_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("the test knows its own path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test runs from target/<profile>/deps");
    let bin = profile_dir.join(format!("gridsync{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: build the whole workspace first (cargo build --workspace) or set GRIDSYNC_BIN",
        bin.display()
    );
    bin
}
