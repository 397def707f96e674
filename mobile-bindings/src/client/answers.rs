//! What the server's answers become: a JSON body read into its type, and an answer no caller
//! expected turned into the error the app acts on (try again later, or a server fault).

use crate::error::{ClientError, Result};
use crate::transport::Answer;

pub(super) fn parse_json<T: serde::de::DeserializeOwned>(answer: &Answer) -> Result<T> {
    serde_json::from_slice(&answer.body)
        .map_err(|e| ClientError::Server(format!("unexpected answer from the server: {e}")))
}

pub(super) fn unexpected(answer: &Answer) -> ClientError {
    let problem = answer.problem();
    let message = format!(
        "HTTP {} {}: {}",
        answer.status, problem.code, problem.detail
    );
    // A failing server (a refresh is tried once, so its 5xx lands here) is one to try again later.
    if answer.status >= 500 {
        ClientError::Network(message)
    } else {
        ClientError::Server(message)
    }
}
