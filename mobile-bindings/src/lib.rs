//! UniFFI facade of the field client.
uniffi::setup_scaffolding!();
