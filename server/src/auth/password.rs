//! Password hashing with argon2id (default parameters), stored as PHC strings. Hashing is slow
//! by design, so it runs on the blocking pool and never stalls the async workers, one hash at a
//! time: each holds 19 MiB, and a morning's logins at once must not take the server's memory.
//! Before each, the heap gives back the free pages it kept (`heap::return_free_pages`).

use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use tokio::sync::Semaphore;

use super::{AuthError, Result};

/// Longer input is refused before hashing: argon2 would accept it, but nobody types it.
pub const MAX_LEN: usize = 1024;

/// One hash at a time. A login takes a few tens of milliseconds of one core, so a queue of them
/// clears quickly, and sync keeps the other cores meanwhile.
static TURN: Semaphore = Semaphore::const_new(1);

pub async fn hash(password: String) -> Result<String> {
    in_turn(move || hash_now(&password)).await
}

/// Whether `password` matches `stored`. With no stored hash (an unknown user) it checks against a
/// fixed hash anyway and answers false, so that an unknown username takes as long as a wrong
/// password and the answer time tells nothing about which usernames exist.
pub async fn verify(password: String, stored: Option<String>) -> Result<bool> {
    in_turn(move || match stored {
        Some(phc) => Ok(verify_now(&password, &phc)),
        None => {
            let decoy = decoy_hash()?;
            verify_now(&password, decoy);
            Ok(false)
        }
    })
    .await
}

/// Runs `work` on the blocking pool when no other hash runs, once the heap has given back its
/// free pages.
async fn in_turn<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    let _turn = TURN
        .acquire()
        .await
        .map_err(|e| AuthError::Password(e.to_string()))?;
    tokio::task::spawn_blocking(move || {
        crate::heap::return_free_pages();
        work()
    })
    .await
    .map_err(|e| AuthError::Password(e.to_string()))?
}

fn hash_now(password: &str) -> Result<String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Password(e.to_string()))
}

/// A stored hash that cannot be parsed never matches.
fn verify_now(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

fn decoy_hash() -> Result<&'static str> {
    static DECOY: OnceLock<String> = OnceLock::new();
    if let Some(h) = DECOY.get() {
        return Ok(h);
    }
    let h = hash_now("gridsync decoy password")?;
    Ok(DECOY.get_or_init(|| h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_is_an_argon2id_phc_string_that_verifies_only_its_password() {
        let h = hash("correct horse".into()).await.expect("hash");
        assert!(h.starts_with("$argon2id$"));
        assert!(
            verify("correct horse".into(), Some(h.clone()))
                .await
                .expect("verify")
        );
        assert!(!verify("wrong".into(), Some(h)).await.expect("verify"));
    }

    #[tokio::test]
    async fn an_unknown_user_or_a_broken_hash_never_verifies() {
        assert!(!verify("x".into(), None).await.expect("verify"));
        assert!(
            !verify("x".into(), Some("not a phc".into()))
                .await
                .expect("verify")
        );
    }
}
