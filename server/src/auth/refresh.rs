//! Refresh tokens: 32 random bytes handed to the client once as base64url and stored only as
//! their SHA-256, bound to a device. Each use rotates the token within its family (one login's
//! chain); presenting a used one again means it was copied, so the family is revoked.

use sha2::{Digest, Sha256};

use super::{Result, secret};
use crate::store::RefreshToken;

/// The hash under which a presented token is stored.
pub fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// A new token for `device_id` in `family`: the text for the client and the row to store.
pub fn mint(device_id: &str, family: &str, expires_at: i64) -> Result<(String, RefreshToken)> {
    let token = secret::random_text::<32>()?;
    let row = RefreshToken {
        token_hash: hash(&token),
        device_id: device_id.to_owned(),
        family: family.to_owned(),
        expires_at,
        used_at: None,
    };
    Ok((token, row))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minted_token_is_stored_only_as_its_hash() {
        let (token, row) = mint("phone", "fam", 10).expect("mint");
        assert_eq!(token.len(), 43, "32 bytes of unpadded base64url");
        assert_eq!(row.token_hash, hash(&token));
        assert_ne!(row.token_hash, token.as_bytes());
    }
}
