//! The server's Prometheus metrics: counters kept as requests run, gauges read from the store
//! when scraped, and their encoding in the text exposition format.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::store::{Result, Store};

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    /// The route template (`/api/v1/reports/{id}`), never the raw path, so that ids do not
    /// multiply the series; `unmatched` for paths no route serves.
    pub route: String,
    /// `2xx`, `4xx`, …
    pub status: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct PoolLabels {
    pub pool: String,
}

/// Every metric the server exports; cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub sync_pushes: Counter,
    pub sync_pulls: Counter,
    pub changes_ingested: Counter,
    pub ingest_retries: Counter,
    pub sync_bytes_in: Counter,
    pub sync_bytes_out: Counter,
    pub live_connections: Gauge,
    pub live_pokes: Counter,
    pub request_seconds: Family<RouteLabels, Histogram>,
    conflicts_open: Gauge,
    pool_max: Family<PoolLabels, Gauge>,
    pool_open: Family<PoolLabels, Gauge>,
    pool_idle: Family<PoolLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("gridsync");
        let sync_pushes = Counter::default();
        registry.register(
            "sync_pushes",
            "Sync pushes answered (POST /api/v1/sync/push)",
            sync_pushes.clone(),
        );
        let sync_pulls = Counter::default();
        registry.register(
            "sync_pulls",
            "Sync pull pages answered (POST /api/v1/sync/pull)",
            sync_pulls.clone(),
        );
        let changes_ingested = Counter::default();
        registry.register(
            "changes_ingested",
            "New automerge changes stored, from phone pushes, office edits and conflict resolutions",
            changes_ingested.clone(),
        );
        let ingest_retries = Counter::default();
        registry.register(
            "ingest_retries",
            "Pushed batches judged again: another write overtook them, inserted one of their new reports first, or deadlocked with them",
            ingest_retries.clone(),
        );
        let sync_bytes_in = Counter::default();
        registry.register_with_unit(
            "sync_received",
            "Bytes of sync request frames (push and pull bodies)",
            Unit::Bytes,
            sync_bytes_in.clone(),
        );
        let sync_bytes_out = Counter::default();
        registry.register_with_unit(
            "sync_sent",
            "Bytes of sync answer frames (push and pull results)",
            Unit::Bytes,
            sync_bytes_out.clone(),
        );
        let live_connections = Gauge::default();
        registry.register(
            "live_connections",
            "WebSocket clients connected to /api/v1/live on this node",
            live_connections.clone(),
        );
        let live_pokes = Counter::default();
        registry.register(
            "live_pokes",
            "`changed` messages sent to WebSocket clients",
            live_pokes.clone(),
        );
        // 1 ms to about 16 s.
        let request_seconds = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 15))
        });
        registry.register_with_unit(
            "http_request_duration",
            "Time to answer an HTTP request, by method, route template and status class",
            Unit::Seconds,
            request_seconds.clone(),
        );
        let conflicts_open = Gauge::default();
        registry.register(
            "conflicts_open",
            "Conflicts and rule flags not yet resolved (read from the database when scraped)",
            conflicts_open.clone(),
        );
        let pool_max = Family::<PoolLabels, Gauge>::default();
        registry.register(
            "db_pool_max_connections",
            "Most connections the database pool may open",
            pool_max.clone(),
        );
        let pool_open = Family::<PoolLabels, Gauge>::default();
        registry.register(
            "db_pool_open_connections",
            "Connections the database pool holds open (idle or in use)",
            pool_open.clone(),
        );
        let pool_idle = Family::<PoolLabels, Gauge>::default();
        registry.register(
            "db_pool_idle_connections",
            "Open connections of the database pool waiting for work",
            pool_idle.clone(),
        );
        Metrics {
            registry,
            sync_pushes,
            sync_pulls,
            changes_ingested,
            ingest_retries,
            sync_bytes_in,
            sync_bytes_out,
            live_connections,
            live_pokes,
            request_seconds,
            conflicts_open,
            pool_max,
            pool_open,
            pool_idle,
        }
    }

    /// Reads the gauges that live in the store, then encodes every metric.
    pub async fn scrape(&self, store: &dyn Store) -> Result<String> {
        self.conflicts_open.set(store.count_open_conflicts().await?);
        for pool in store.pool_use() {
            let labels = PoolLabels {
                pool: pool.pool.to_owned(),
            };
            self.pool_max.get_or_create(&labels).set(pool.max.into());
            self.pool_open.get_or_create(&labels).set(pool.open.into());
            self.pool_idle.get_or_create(&labels).set(pool.idle.into());
        }
        let mut text = String::new();
        encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        Ok(text)
    }
}
