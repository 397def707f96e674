//! The `gridsync` binary.
fn main() {}
