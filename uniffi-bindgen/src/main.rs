//! `uniffi-bindgen generate <libgridsync_mobile.so> --language kotlin|swift|python --out-dir DIR`:
//! UniFFI's generator as a workspace binary, so the version always matches the library's and the
//! generator's dependencies never end up in the app library.

fn main() {
    uniffi::uniffi_bindgen_main();
}
