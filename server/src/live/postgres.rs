//! Live updates between nodes sharing one Postgres: each node NOTIFYs what its commits
//! changed on one channel and LISTENs there for the other nodes' commits, which it hands to its
//! own hub. Its own notices come back too and are dropped: its clients were poked at commit.

use std::time::Duration;

use serde::Deserialize;
use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};
use tokio::sync::mpsc;

use super::{Changed, Hub, Touched};

/// The channel every node listens on.
pub const CHANNEL: &str = "gridsync_changed";

/// Postgres refuses a NOTIFY payload of 8000 bytes or more; a commit touching more places
/// than fit is told in several notices.
const MAX_PAYLOAD: usize = 7900;

/// Commits waiting to be told to the other nodes. When Postgres cannot keep up, later ones are
/// dropped (and logged): a poke is a hint, and clients pull on reconnecting anyway.
const OUTBOX: usize = 1024;

/// How long to wait before listening again after the listener failed to reconnect.
const RETRY_AFTER: Duration = Duration::from_secs(2);

/// One notice on [`CHANNEL`], as [`encode`] writes it.
#[derive(Debug, Deserialize)]
struct Notice {
    node: String,
    touched: Vec<Touched>,
}

/// Starts listening for the other nodes' commits on `url` and returns `hub` set to tell them
/// its own. Fails when Postgres cannot be reached now; later connection losses are retried.
pub async fn connect(url: &str, hub: Hub) -> sqlx::Result<Hub> {
    let mut listener = PgListener::connect(url).await?;
    listener.listen(CHANNEL).await?;
    let pool = PgPoolOptions::new().max_connections(1).connect(url).await?;
    let (outbox, rx) = mpsc::channel(OUTBOX);
    let hub = Hub {
        outbox: Some(outbox),
        ..hub
    };
    tokio::spawn(tell(pool, hub.node.clone(), rx));
    tokio::spawn(listen(listener, hub.clone()));
    Ok(hub)
}

/// Sends each commit of this node to the other nodes.
async fn tell(pool: PgPool, node: String, mut rx: mpsc::Receiver<Changed>) {
    while let Some(changed) = rx.recv().await {
        for payload in notices(&node, changed.touched) {
            if let Err(e) = sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANNEL)
                .bind(&payload)
                .execute(&pool)
                .await
            {
                tracing::warn!(error = %e, "could not tell the other nodes of a commit");
            }
        }
    }
}

/// Hands the other nodes' commits to this node's hub, for as long as the process runs.
async fn listen(mut listener: PgListener, hub: Hub) {
    loop {
        match listener.try_recv().await {
            Ok(Some(notification)) => {
                match serde_json::from_str::<Notice>(notification.payload()) {
                    Ok(notice) if notice.node == hub.node => {}
                    Ok(notice) => hub.deliver(Changed {
                        touched: notice.touched,
                    }),
                    Err(e) => {
                        tracing::warn!(error = %e, "a notice on {CHANNEL} is not ours; ignored")
                    }
                }
            }
            // sqlx has reconnected and listens again; what was told meanwhile is lost.
            Ok(None) => {
                tracing::warn!("the connection listening for other nodes was lost; reconnected")
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for other nodes; retrying");
                tokio::time::sleep(RETRY_AFTER).await;
            }
        }
    }
}

/// The payloads telling `touched`, each under [`MAX_PAYLOAD`] bytes.
fn notices(node: &str, touched: Vec<Touched>) -> Vec<String> {
    let overhead = encode(node, &[]).len();
    let mut payloads = Vec::new();
    let mut batch: Vec<Touched> = Vec::new();
    let mut size = overhead;
    for t in touched {
        // Its JSON and the comma before it.
        let len = serde_json::to_string(&t).map_or(0, |j| j.len()) + 1;
        if size + len > MAX_PAYLOAD && !batch.is_empty() {
            payloads.push(encode(node, &batch));
            batch.clear();
            size = overhead;
        }
        batch.push(t);
        size += len;
    }
    if !batch.is_empty() {
        payloads.push(encode(node, &batch));
    }
    payloads
}

fn encode(node: &str, touched: &[Touched]) -> String {
    serde_json::json!({ "node": node, "touched": touched }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_touching_many_places_is_told_in_notices_that_postgres_accepts() {
        let touched: Vec<Touched> = (0..500)
            .map(|i| Touched {
                seq: i,
                org_path: format!("/district/township-{i}/village-{i}/grid-{i}/"),
                restricted: i % 2 == 0,
                assigned_to: Some(format!("user-{i:032}")),
            })
            .collect();
        let payloads = notices("n1", touched.clone());
        assert!(payloads.len() > 1);
        let mut told = Vec::new();
        for p in &payloads {
            assert!(p.len() <= MAX_PAYLOAD, "{} bytes", p.len());
            let notice: Notice = serde_json::from_str(p).expect("a notice");
            assert_eq!(notice.node, "n1");
            told.extend(notice.touched);
        }
        assert_eq!(told, touched);
    }
}
