//! Random secrets from the operating system: refresh tokens, signing keys, generated passwords.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::Result;

pub fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes)?;
    Ok(bytes)
}

/// `N` random bytes as unpadded base64url: safe in JSON, URLs and a terminal.
pub fn random_text<const N: usize>() -> Result<String> {
    Ok(URL_SAFE_NO_PAD.encode(random_bytes::<N>()?))
}
