//! Refresh tokens: 32 random bytes handed to the client once as base64url and stored only as
//! their SHA-256, bound to a device. Each use rotates the token within its family (one login's
//! chain); presenting a used one again means it was copied, so the family is revoked, with one
//! exception, the grace window: a phone whose refresh answer was lost on the way (the server
//! spent the token, the phone never saw its successor) sends the same token again.

use sha2::{Digest, Sha256};

use super::{Result, secret};
use crate::store::{NextRefreshToken, RefreshToken};

/// How long after a refresh token was spent it may be presented once more, to replace its
/// successor that never arrived. A phone's request timeout (plus its connect timeout) must fit
/// inside it, since the phone retries only after giving up on the first answer.
pub const GRACE_SECS: i64 = 120;

/// A new token: the text for the client, handed out once, and what the store keeps.
#[derive(Debug)]
pub struct Minted {
    pub text: String,
    pub stored: NextRefreshToken,
}

/// The hash under which a presented token is stored.
pub fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// A new token that expires at `expires_at`.
pub fn mint(expires_at: i64) -> Result<Minted> {
    let text = secret::random_text::<32>()?;
    let stored = NextRefreshToken {
        token_hash: hash(&text),
        expires_at,
    };
    Ok(Minted { text, stored })
}

/// What presenting a refresh token calls for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Unused and valid: spend it and issue its successor.
    Fresh,
    /// Unused but expired: refuse, change nothing.
    Expired,
    /// Spent moments ago by a refresh whose answer was lost: spend `lost` (its successor, never
    /// used) instead and issue another successor.
    Grace { lost: Vec<u8> },
    /// Any other reuse: the token was copied, so revoke its family.
    Reused,
}

/// The rule for `presented`, given the tokens that replaced it. A spent token gets grace only
/// while its one successor is unused and within [`GRACE_SECS`] of being spent: a second grace
/// use finds two successors, one of them spent, and a token two generations back finds its
/// successor used. Tokens are bound to the device of their login, so the new pair goes to the
/// same device as the lost one.
pub fn judge(presented: &RefreshToken, successors: &[RefreshToken], now: i64) -> Verdict {
    let Some(used_at) = presented.used_at else {
        return if presented.expires_at <= now {
            Verdict::Expired
        } else {
            Verdict::Fresh
        };
    };
    match successors {
        [next] if next.used_at.is_none() && now.saturating_sub(used_at) <= GRACE_SECS => {
            Verdict::Grace {
                lost: next.token_hash.clone(),
            }
        }
        _ => Verdict::Reused,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(id: u8, used_at: Option<i64>, replaces: Option<u8>) -> RefreshToken {
        RefreshToken {
            token_hash: vec![id; 32],
            device_id: "phone".into(),
            family: "fam".into(),
            expires_at: 1_000,
            used_at,
            replaces: replaces.map(|r| vec![r; 32]),
        }
    }

    #[test]
    fn a_minted_token_is_stored_only_as_its_hash() {
        let minted = mint(10).expect("mint");
        assert_eq!(minted.text.len(), 43, "32 bytes of unpadded base64url");
        assert_eq!(minted.stored.token_hash, hash(&minted.text));
        assert_ne!(minted.stored.token_hash, minted.text.as_bytes());
        assert_eq!(minted.stored.expires_at, 10);
    }

    #[test]
    fn an_unused_token_is_spent_unless_expired() {
        assert_eq!(judge(&token(1, None, None), &[], 500), Verdict::Fresh);
        assert_eq!(judge(&token(1, None, None), &[], 1_000), Verdict::Expired);
    }

    #[test]
    fn a_spent_token_gets_grace_only_within_the_window_while_its_one_successor_is_unused() {
        let spent = token(1, Some(100), None);
        let next = token(2, None, Some(1));
        assert_eq!(
            judge(&spent, std::slice::from_ref(&next), 100 + GRACE_SECS),
            Verdict::Grace { lost: vec![2; 32] }
        );
        assert_eq!(
            judge(&spent, std::slice::from_ref(&next), 101 + GRACE_SECS),
            Verdict::Reused,
            "after the window"
        );
        assert_eq!(
            judge(&spent, &[token(2, Some(110), Some(1))], 120),
            Verdict::Reused,
            "its successor was used"
        );
        assert_eq!(
            judge(
                &spent,
                &[token(2, Some(110), Some(1)), token(3, None, Some(1))],
                120
            ),
            Verdict::Reused,
            "a second grace use"
        );
        assert_eq!(
            judge(&spent, &[], 120),
            Verdict::Reused,
            "no successor: spent unseen by a grace use, or spent before successors named it"
        );
    }
}
