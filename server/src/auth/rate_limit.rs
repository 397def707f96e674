//! Login throttling: at most so many failed logins per username and per client address within a
//! sliding window. Kept in memory, so each server node counts on its own.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Past this many tracked keys, stale ones are swept on the next failure.
const SWEEP_ABOVE: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    User(String),
    Addr(IpAddr),
}

pub struct LoginLimiter {
    max_failures: usize,
    window: Duration,
    failures: Mutex<HashMap<Key, VecDeque<Instant>>>,
}

impl LoginLimiter {
    pub fn new(max_failures: u32, window: Duration) -> Self {
        LoginLimiter {
            max_failures: usize::try_from(max_failures).unwrap_or(usize::MAX).max(1),
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(wait)` when the username or the address has used up its failures; `wait` is how long
    /// until the oldest of them leaves the window.
    pub fn check(&self, username: &str, addr: Option<IpAddr>) -> Result<(), Duration> {
        let now = Instant::now();
        let failures = self.lock();
        let wait = keys(username, addr)
            .filter_map(|key| {
                let times = failures.get(&key)?;
                let recent: Vec<_> = times
                    .iter()
                    .filter(|t| now.duration_since(**t) < self.window)
                    .collect();
                (recent.len() >= self.max_failures)
                    .then(|| self.window.saturating_sub(now.duration_since(*recent[0])))
            })
            .max();
        match wait {
            Some(wait) => Err(wait),
            None => Ok(()),
        }
    }

    pub fn record_failure(&self, username: &str, addr: Option<IpAddr>) {
        let now = Instant::now();
        let mut failures = self.lock();
        if failures.len() > SWEEP_ABOVE {
            failures.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|t| now.duration_since(*t) < self.window)
            });
        }
        for key in keys(username, addr) {
            let times = failures.entry(key).or_default();
            times.push_back(now);
            // Only the last `max_failures` decide anything.
            while times.len() > self.max_failures {
                times.pop_front();
            }
        }
    }

    /// A correct password clears the username's count. The address keeps its count: one valid
    /// account must not let its holder reset the limit while guessing others' passwords.
    pub fn record_success(&self, username: &str) {
        self.lock().remove(&Key::User(username.to_owned()));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, VecDeque<Instant>>> {
        // Counts are advisory; after a panic elsewhere they are still good enough to use.
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn keys(username: &str, addr: Option<IpAddr>) -> impl Iterator<Item = Key> {
    std::iter::once(Key::User(username.to_owned())).chain(addr.map(Key::Addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADDR: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));

    #[test]
    fn the_limit_blocks_the_username_from_any_address_and_the_address_for_any_username() {
        let limiter = LoginLimiter::new(2, Duration::from_secs(60));
        limiter.record_failure("alice", ADDR);
        assert!(limiter.check("alice", ADDR).is_ok());
        limiter.record_failure("alice", ADDR);
        let wait = limiter.check("alice", None).expect_err("username blocked");
        assert!(wait <= Duration::from_secs(60) && wait > Duration::from_secs(50));
        assert!(limiter.check("bob", ADDR).is_err(), "address blocked");
        assert!(limiter.check("bob", None).is_ok());
    }

    #[test]
    fn a_success_clears_the_username_but_not_the_address() {
        let limiter = LoginLimiter::new(1, Duration::from_secs(60));
        limiter.record_failure("alice", ADDR);
        limiter.record_success("alice");
        assert!(limiter.check("alice", None).is_ok());
        assert!(limiter.check("alice", ADDR).is_err());
    }

    #[test]
    fn failures_leave_the_window() {
        let limiter = LoginLimiter::new(1, Duration::from_millis(1));
        limiter.record_failure("alice", None);
        std::thread::sleep(Duration::from_millis(5));
        assert!(limiter.check("alice", None).is_ok());
    }
}
