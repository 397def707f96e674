//! The phone that the folder-lock test kills: it opens a field client on the data folder named
//! by its argument, says `holding` on stdout, and waits to be killed, the client still open.

use std::io::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use gridsync_mobile::client::Client;
use gridsync_mobile::default_client_config;

fn main() -> Result<()> {
    let dir = std::env::args()
        .nth(1)
        .context("usage: hold-folder DATA_DIR")?;
    // No request is ever sent, so no server needs to listen there.
    let _client = Client::open(
        Path::new(&dir),
        "http://127.0.0.1:9",
        &[0x5a; 32],
        default_client_config(),
    )?;
    let mut out = std::io::stdout();
    writeln!(out, "holding")?;
    out.flush()?;
    loop {
        std::thread::park();
    }
}
