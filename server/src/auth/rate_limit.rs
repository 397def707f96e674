//! Login throttling that slows a guesser without letting them lock the account's owner out.
//!
//! Per client address (the real one, behind trusted proxies): at most `max_failures` failures
//! within `window`, whatever the usernames. Per account: after `max_failures` failures in a row
//! every further attempt waits, first `window / 16`, doubling with each failure up to `window`.
//! A device already registered to the user is judged on its own failures only, so the owner's
//! phone logs in while a stranger's guesses keep the account waiting for new devices. Kept in
//! memory, so each server node counts on its own.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Past this many tracked keys of a kind, stale ones are swept on the next attempt.
const SWEEP_ABOVE: usize = 10_000;

/// Who an attempt is judged as, for the per-account backoff.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Account {
    /// Attempts from devices not registered to the user, and for usernames nobody has (which
    /// must look the same).
    NewDevice(String),
    /// Attempts from one device registered to the user.
    Device { username: String, device_id: String },
}

/// Failures in a row of one account key, and when the last attempt was admitted.
#[derive(Debug, Clone, Copy)]
struct Backoff {
    failures: u32,
    last: Instant,
}

#[derive(Default)]
struct Counts {
    addrs: HashMap<IpAddr, VecDeque<Instant>>,
    accounts: HashMap<Account, Backoff>,
}

pub struct LoginLimiter {
    max_failures: u32,
    window: Duration,
    counts: Mutex<Counts>,
}

/// An admitted attempt. It already counts as a failure of its account, so that a burst of
/// parallel guesses gets no more tries than the same guesses one after another; say how it
/// went with [`Admitted::succeeded`] or [`Admitted::failed`].
#[must_use]
pub struct Admitted<'a> {
    limiter: &'a LoginLimiter,
    account: Account,
    addr: Option<IpAddr>,
    at: Instant,
}

impl Admitted<'_> {
    /// A correct password: the account key it was judged by starts over. The address keeps
    /// its count: one valid account must not let its holder reset the limit while guessing
    /// others' passwords.
    pub fn succeeded(self) {
        self.limiter.lock().accounts.remove(&self.account);
    }

    /// A wrong password or an unknown username: the address counts it too.
    pub fn failed(self) {
        if let Some(addr) = self.addr {
            let limiter = self.limiter;
            let mut counts = limiter.lock();
            let times = counts.addrs.entry(addr).or_default();
            times.push_back(self.at);
            // Only the last `max_failures` decide anything.
            while times.len() > limiter.max_failures as usize {
                times.pop_front();
            }
        }
    }
}

impl LoginLimiter {
    pub fn new(max_failures: u32, window: Duration) -> Self {
        LoginLimiter {
            max_failures: max_failures.max(1),
            window,
            counts: Mutex::new(Counts::default()),
        }
    }

    /// Admits a login attempt for `username` from `addr`, `known_device` being the device it
    /// comes from when that is registered to the user and not revoked; or `Err(wait)`, how long
    /// until an attempt would be admitted. Decided before the password is checked, so an
    /// account waiting out its backoff gives a guesser nothing to learn.
    pub fn admit(
        &self,
        username: &str,
        known_device: Option<&str>,
        addr: Option<IpAddr>,
    ) -> Result<Admitted<'_>, Duration> {
        self.admit_at(Instant::now(), username, known_device, addr)
    }

    fn admit_at(
        &self,
        now: Instant,
        username: &str,
        known_device: Option<&str>,
        addr: Option<IpAddr>,
    ) -> Result<Admitted<'_>, Duration> {
        let account = match known_device {
            Some(device_id) => Account::Device {
                username: username.to_owned(),
                device_id: device_id.to_owned(),
            },
            None => Account::NewDevice(username.to_owned()),
        };
        let addr = addr.map(addr_key);
        let mut counts = self.lock();
        self.sweep(&mut counts, now);
        let addr_wait = addr.and_then(|a| self.addr_wait(counts.addrs.get(&a)?, now));
        let backoff = counts
            .accounts
            .get(&account)
            .copied()
            .filter(|b| !self.forgotten(b, now));
        let account_wait = backoff.and_then(|b| self.account_wait(&b, now));
        if let Some(wait) = addr_wait.max(account_wait) {
            return Err(wait);
        }
        let failures = backoff.map_or(0, |b| b.failures).saturating_add(1);
        counts.accounts.insert(
            account.clone(),
            Backoff {
                failures,
                last: now,
            },
        );
        Ok(Admitted {
            limiter: self,
            account,
            addr,
            at: now,
        })
    }

    /// How long the address waits: until the oldest of its last `max_failures` failures leaves
    /// the window, when all of them are in it.
    fn addr_wait(&self, times: &VecDeque<Instant>, now: Instant) -> Option<Duration> {
        let recent: Vec<_> = times
            .iter()
            .filter(|t| now.duration_since(**t) < self.window)
            .collect();
        (recent.len() >= self.max_failures as usize)
            .then(|| self.window.saturating_sub(now.duration_since(*recent[0])))
    }

    /// How long an account key waits before its next attempt.
    fn account_wait(&self, b: &Backoff, now: Instant) -> Option<Duration> {
        let until = b.last + self.backoff(b.failures)?;
        (until > now).then(|| until - now)
    }

    /// The wait after `failures` in a row: none below `max_failures`, then `window / 16`,
    /// doubling with each failure, at most `window`.
    fn backoff(&self, failures: u32) -> Option<Duration> {
        let doublings = failures.checked_sub(self.max_failures)?.min(16);
        Some(
            (self.window / 16)
                .saturating_mul(1 << doublings)
                .min(self.window),
        )
    }

    /// A key quiet for a whole window past the end of its wait starts over.
    fn forgotten(&self, b: &Backoff, now: Instant) -> bool {
        let waited = self.backoff(b.failures).unwrap_or_default();
        now.duration_since(b.last) >= waited + self.window
    }

    fn sweep(&self, counts: &mut Counts, now: Instant) {
        if counts.addrs.len() > SWEEP_ABOVE {
            counts.addrs.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|t| now.duration_since(*t) < self.window)
            });
        }
        if counts.accounts.len() > SWEEP_ABOVE {
            counts.accounts.retain(|_, b| !self.forgotten(b, now));
        }
    }

    fn lock(&self) -> MutexGuard<'_, Counts> {
        // Counts are advisory; after a panic elsewhere they are still good enough to use.
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The address a client is counted under: an IPv6 client holds a whole /64 as easily as one
/// address, so it is counted per /64.
fn addr_key(addr: IpAddr) -> IpAddr {
    match addr.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & (u128::MAX << 64))),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(160);
    const FIRST: Duration = Duration::from_secs(10);

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().expect("address"))
    }

    fn fail(limiter: &LoginLimiter, now: Instant, user: &str, dev: Option<&str>, addr: &str) {
        limiter
            .admit_at(now, user, dev, ip(addr))
            .expect("admitted")
            .failed();
    }

    #[test]
    fn an_account_waits_after_its_failures_and_the_wait_doubles_up_to_the_window() {
        let limiter = LoginLimiter::new(3, WINDOW);
        let t0 = Instant::now();
        for i in 0..3 {
            fail(&limiter, t0, "alice", None, &format!("192.0.2.{i}"));
        }
        let wait = limiter
            .admit_at(t0, "alice", None, ip("198.51.100.1"))
            .err()
            .expect("the account waits, from any address");
        assert_eq!(wait, FIRST);
        let mut at = t0;
        for (i, expected) in [20, 40, 80, 160, 160].into_iter().enumerate() {
            at += limiter
                .admit_at(at, "alice", None, None)
                .err()
                .expect("waiting");
            fail(&limiter, at, "alice", None, &format!("198.51.100.{i}"));
            assert_eq!(
                limiter.admit_at(at, "alice", None, None).err(),
                Some(Duration::from_secs(expected))
            );
        }
    }

    #[test]
    fn a_known_device_is_judged_by_its_own_failures_only() {
        let limiter = LoginLimiter::new(3, WINDOW);
        let now = Instant::now();
        for _ in 0..3 {
            fail(&limiter, now, "alice", None, "192.0.2.1");
        }
        assert!(limiter.admit_at(now, "alice", None, None).is_err());
        limiter
            .admit_at(now, "alice", Some("phone"), ip("198.51.100.1"))
            .expect("her phone passes")
            .succeeded();
        assert!(
            limiter.admit_at(now, "alice", None, None).is_err(),
            "a success on her phone does not reset the stranger's backoff"
        );
        for _ in 0..3 {
            fail(&limiter, now, "alice", Some("phone"), "198.51.100.1");
        }
        assert!(
            limiter.admit_at(now, "alice", Some("phone"), None).is_err(),
            "whoever holds the phone is slowed down too"
        );
        assert!(limiter.admit_at(now, "alice", Some("laptop"), None).is_ok());
    }

    #[test]
    fn an_address_waits_after_its_failures_whatever_the_usernames() {
        let limiter = LoginLimiter::new(3, WINDOW);
        let now = Instant::now();
        for i in 0..3 {
            fail(&limiter, now, &format!("guess{i}"), None, "203.0.113.7");
        }
        let wait = limiter
            .admit_at(now, "bob", Some("phone"), ip("203.0.113.7"))
            .err()
            .expect("the address waits");
        assert_eq!(wait, WINDOW);
        assert!(
            limiter
                .admit_at(now, "bob", None, ip("203.0.113.8"))
                .is_ok()
        );
        assert!(
            limiter
                .admit_at(now + WINDOW, "bob", None, ip("203.0.113.7"))
                .is_ok(),
            "failures leave the window"
        );
    }

    #[test]
    fn an_ipv6_client_is_counted_per_64() {
        let limiter = LoginLimiter::new(2, WINDOW);
        let now = Instant::now();
        fail(&limiter, now, "a", None, "2001:db8:1:2::1");
        fail(&limiter, now, "b", None, "2001:db8:1:2:ffff::9");
        assert!(
            limiter
                .admit_at(now, "c", None, ip("2001:db8:1:2::77"))
                .is_err()
        );
        assert!(
            limiter
                .admit_at(now, "c", None, ip("2001:db8:1:3::1"))
                .is_ok()
        );
    }

    #[test]
    fn parallel_attempts_get_no_more_tries_than_sequential_ones() {
        let limiter = LoginLimiter::new(3, WINDOW);
        let now = Instant::now();
        let admitted: Vec<_> = (0..10)
            .filter_map(|_| limiter.admit_at(now, "alice", None, None).ok())
            .collect();
        assert_eq!(admitted.len(), 3);
    }

    #[test]
    fn a_success_starts_the_account_over_but_not_the_address() {
        let limiter = LoginLimiter::new(2, WINDOW);
        let now = Instant::now();
        fail(&limiter, now, "alice", None, "192.0.2.1");
        limiter
            .admit_at(now, "alice", None, ip("192.0.2.1"))
            .expect("admitted")
            .succeeded();
        fail(&limiter, now, "alice", None, "192.0.2.2");
        assert!(
            limiter.admit_at(now, "alice", None, None).is_ok(),
            "one failure since the success"
        );
        fail(&limiter, now, "mallory", None, "192.0.2.1");
        assert!(limiter.admit_at(now, "x", None, ip("192.0.2.1")).is_err());
    }

    #[test]
    fn an_account_quiet_for_a_window_past_its_wait_starts_over() {
        let limiter = LoginLimiter::new(2, WINDOW);
        let t0 = Instant::now();
        for _ in 0..2 {
            fail(&limiter, t0, "alice", None, "192.0.2.1");
        }
        // Still counted one window on: a guesser who waits out each backoff keeps doubling it.
        let later = t0 + FIRST;
        fail(&limiter, later, "alice", None, "192.0.2.2");
        assert_eq!(
            limiter.admit_at(later, "alice", None, None).err(),
            Some(FIRST * 2)
        );
        let quiet = later + FIRST * 2 + WINDOW;
        fail(&limiter, quiet, "alice", None, "192.0.2.3");
        assert!(
            limiter.admit_at(quiet, "alice", None, None).is_ok(),
            "one failure since it started over"
        );
    }
}
