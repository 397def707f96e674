//! Checks of request fields that several admin endpoints share.

use super::ApiError;

/// Whether `s` holds a control character (a newline in a name, say).
pub fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// Checks a human-readable name: not blank, at most `max` characters, no control characters.
pub fn check_name(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.trim().is_empty() || value.chars().count() > max || has_control(value) {
        return Err(ApiError::BadRequest(format!(
            "{field} must be 1 to {max} characters, not blank, without control characters"
        )));
    }
    Ok(())
}
