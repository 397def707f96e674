//! The budget of sync work in flight across all requests: each push and pull reserves its
//! share before its frame is read, so the server's memory follows the budget, not the number
//! of phones that sync at once.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The budget when nothing else is configured: two phones pushing a day's work (100 reports)
/// are judged at once, which keeps two cores busy, or one full pull page is read beside a
/// phone's push. More wait their turn, which costs them time rather than the server memory: in
/// W1 half of the old 8 MiB took 4 MB off the server's peak and no time off its upload, and
/// W4's syncs were no slower (`BENCHMARKS.md`).
pub const DEFAULT_BYTES: usize = 4 * MIB;

/// What a push may hold per byte of its frame while it is judged: the frame, its decompressed
/// body, the decoded changes, the stored reports loaded and their new state. In W1 twenty
/// pushes of 96 KB at once raised the server's memory by about 33 MB, some 17 bytes per byte
/// of frame (`BENCHMARKS.md`).
pub const PUSH_EXPANSION: usize = 16;

/// The most a pull page lists, in stored bytes, whatever budget the client asks for.
pub const MAX_PAGE_BYTES: u32 = MIB as u32;

/// What a pull may hold per byte of its page: the stored bytes read, the answer's body and its
/// compressed frame.
pub const PULL_EXPANSION: usize = 3;

const MIB: usize = 1024 * 1024;

/// Bytes of the budget are counted in KiB, the unit of the semaphore's permits.
const UNIT: usize = 1024;

/// Shares of the budget. Cheap to clone; clones share the budget.
#[derive(Clone)]
pub struct Budget {
    permits: Arc<Semaphore>,
    units: u32,
}

impl Budget {
    pub fn new(bytes: usize) -> Budget {
        let units = u32::try_from(bytes.div_ceil(UNIT))
            .unwrap_or(u32::MAX)
            .max(1);
        Budget {
            permits: Arc::new(Semaphore::new(units as usize)),
            units,
        }
    }

    /// Waits until `bytes` of the budget are free, and holds them until the permit is dropped.
    /// Work larger than the whole budget waits for all of it: it runs alone rather than never.
    pub async fn reserve(&self, bytes: usize) -> OwnedSemaphorePermit {
        let units = u32::try_from(bytes.div_ceil(UNIT))
            .unwrap_or(u32::MAX)
            .clamp(1, self.units);
        self.permits
            .clone()
            .acquire_many_owned(units)
            .await
            .expect("the budget's semaphore is never closed")
    }

    /// A pull page's share: what it may hold while it is read and encoded, from the byte budget
    /// the client asked for, capped at [`MAX_PAGE_BYTES`].
    pub async fn reserve_page(&self, byte_budget: u32) -> OwnedSemaphorePermit {
        let page = byte_budget.min(MAX_PAGE_BYTES) as usize;
        self.reserve(page.saturating_mul(PULL_EXPANSION)).await
    }

    /// Bytes of the budget free now.
    pub fn available(&self) -> usize {
        self.permits.available_permits() * UNIT
    }
}

impl Default for Budget {
    fn default() -> Self {
        Budget::new(DEFAULT_BYTES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_waits_until_its_share_of_the_budget_is_free() {
        let budget = Budget::new(10 * UNIT);
        let first = budget.reserve(6 * UNIT).await;
        assert_eq!(budget.available(), 4 * UNIT);
        let waiting = tokio::spawn({
            let budget = budget.clone();
            async move { budget.reserve(5 * UNIT).await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "5 KiB do not fit in the 4 KiB free");
        drop(first);
        let second = waiting.await.expect("reserved once the first is done");
        assert_eq!(budget.available(), 5 * UNIT);
        drop(second);
        assert_eq!(budget.available(), 10 * UNIT);
    }

    #[tokio::test]
    async fn work_larger_than_the_budget_runs_alone() {
        let budget = Budget::new(10 * UNIT);
        let all = budget.reserve(1 << 30).await;
        assert_eq!(budget.available(), 0);
        drop(all);
        let _small = budget.reserve(0).await;
        assert_eq!(budget.available(), 9 * UNIT, "even nothing takes one unit");
    }
}
