//! The periodic collection that `gridsync serve` runs: abandoned uploads, links of attachments
//! that reports detached, and blobs no report links to, once older than [`ORPHAN_GRACE`].

use std::sync::Arc;
use std::time::Duration;

use crate::clock;
use crate::config::ORPHAN_GRACE;
use crate::store::{OrphansCollected, Result, Store};

/// One collection: everything orphaned for longer than the grace period.
pub async fn once(store: &dyn Store) -> Result<OrphansCollected> {
    let grace = i64::try_from(ORPHAN_GRACE.as_secs()).unwrap_or(i64::MAX);
    store
        .collect_orphans(clock::now().saturating_sub(grace))
        .await
}

/// Collects every `period`, forever; a failed round is logged and the next one tries again.
pub async fn every(store: Arc<dyn Store>, period: Duration) {
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match once(store.as_ref()).await {
            Ok(c) if c == OrphansCollected::default() => {}
            Ok(c) => tracing::info!(
                uploads = c.uploads,
                links = c.links,
                blobs = c.blobs,
                "collected orphaned attachments"
            ),
            Err(e) => tracing::warn!(error = %e, "collecting orphaned attachments failed"),
        }
    }
}
