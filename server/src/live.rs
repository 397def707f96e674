//! Live updates: what a committed ingest changed, fanned out to this node's WebSocket clients
//! and, on Postgres, to the other nodes through LISTEN/NOTIFY (`live/postgres.rs`).

pub mod postgres;

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};

use crate::scope::Scope;

/// Where a committed change landed, at its server sequence: enough to decide, without a
/// database read, which scopes gained it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Touched {
    pub seq: i64,
    pub org_path: String,
    pub restricted: bool,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub assigned_to: Option<String>,
}

/// What one commit changed: the reports' places, including the place a moved report left
/// (whose readers pull its eviction).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changed {
    pub touched: Vec<Touched>,
}

impl Changed {
    /// The newest sequence in `scope`, if the commit touched it at all.
    pub fn seq_in(&self, scope: &Scope) -> Option<i64> {
        self.touched
            .iter()
            .filter(|t| scope.allows(&t.org_path, t.restricted, t.assigned_to.as_deref()))
            .map(|t| t.seq)
            .max()
    }
}

/// How many commits a slow subscriber may fall behind before it is told it lagged (and then
/// simply pokes its client with the newest sequence it sees next).
const BACKLOG: usize = 1024;

/// This node's fan-out of committed changes. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Hub {
    /// Tells this node's notices from other nodes' on the shared Postgres channel.
    node: String,
    sender: broadcast::Sender<Changed>,
    /// To the task telling the other nodes, when there are any (Postgres).
    outbox: Option<mpsc::Sender<Changed>>,
}

impl Default for Hub {
    fn default() -> Self {
        Hub::new()
    }
}

impl Hub {
    pub fn new() -> Hub {
        Hub {
            node: uuid::Uuid::new_v4().simple().to_string(),
            sender: broadcast::channel(BACKLOG).0,
            outbox: None,
        }
    }

    /// Tells this node's subscribers and the other nodes what a commit of this node changed.
    pub fn publish(&self, changed: Changed) {
        if changed.touched.is_empty() {
            return;
        }
        if let Some(outbox) = &self.outbox
            && outbox.try_send(changed.clone()).is_err()
        {
            tracing::warn!("too many commits waiting to be told to the other nodes; one dropped");
        }
        self.deliver(changed);
    }

    /// Tells this node's subscribers; nobody listening is not an error.
    fn deliver(&self, changed: Changed) {
        let _ = self.sender.send(changed);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Changed> {
        self.sender.subscribe()
    }
}

/// `hub`, made to travel between the nodes that share the database at `db_url`: through
/// Postgres LISTEN/NOTIFY there; a SQLite database has one node.
pub async fn across_nodes(db_url: &str, hub: Hub) -> sqlx::Result<Hub> {
    if db_url.starts_with("postgres:") || db_url.starts_with("postgresql:") {
        postgres::connect(db_url, hub).await
    } else {
        Ok(hub)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scope::Role;

    fn touched(seq: i64, org_path: &str, restricted: bool, assigned_to: Option<&str>) -> Touched {
        Touched {
            seq,
            org_path: org_path.into(),
            restricted,
            assigned_to: assigned_to.map(Into::into),
        }
    }

    #[test]
    fn a_scope_sees_the_newest_sequence_among_the_places_it_covers_only() {
        let changed = Changed {
            touched: vec![
                touched(5, "/d/t1/v1/g1/", false, None),
                touched(7, "/d/t1/v1/g2/", false, None),
                touched(9, "/d/t1/v1/g1/", true, Some("w2")),
            ],
        };
        let worker = Scope::for_role("w1", Role::GridWorker, "/d/t1/v1/g1/");
        assert_eq!(changed.seq_in(&worker), Some(5));
        let cadre = Scope::for_role("c1", Role::VillageCadre, "/d/t1/v1/");
        assert_eq!(changed.seq_in(&cadre), Some(7));
        let other = Scope::for_role("c2", Role::VillageCadre, "/d/t1/v2/");
        assert_eq!(changed.seq_in(&other), None);
        let admin = Scope::for_role("a", Role::DistrictAdmin, "/d/");
        assert_eq!(changed.seq_in(&admin), Some(9));
    }
}
