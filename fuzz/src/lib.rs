//! The bodies of Gridsync's fuzz targets, as plain functions: `fuzz_targets/*.rs` hand them
//! libFuzzer's input, and the replay test hands them every file of `corpus/` on the stable
//! toolchain. Each one may return early on input it refuses, and panics only when a guarantee is
//! broken. See README.md.

pub mod fixture;
pub mod ingest;
pub mod json_bodies;
pub mod protocol_decode;
pub mod replica_apply;

#[cfg(test)]
mod replay;
#[cfg(test)]
mod seeds;
