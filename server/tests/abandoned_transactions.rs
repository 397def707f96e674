//! A request cancelled midway, as a handler is when its client hangs up, leaves no connection
//! of the store inside a transaction: one left so would hold SQLite's write lock against every
//! other process, and on Postgres would swallow the statements run on it later, writes that
//! never commit and a pull's lock that never ends.

mod support;

use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::task::Poll;
use std::time::{Duration, Instant};

use sqlx::Connection;
use sqlx::sqlite::SqliteConnectOptions;
use support::*;

on_both_test_stores!(a_transaction_abandoned_while_it_opens_is_ended_and_holds_nothing);

async fn a_transaction_abandoned_while_it_opens_is_ended_and_holds_nothing(t: &TestStore) {
    let store = t.store.as_ref();
    seed_org(store).await;
    // Which poll sends the BEGIN depends on the pool and the machine, so the opening is given
    // up after each number of polls in turn, a moment apart as a network's would be.
    for polls in 1..=6 {
        for _ in 0..4 {
            let openings: [Pin<Box<dyn Future<Output = ()> + Send + '_>>; 3] = [
                Box::pin(async { drop(store.begin_read().await) }),
                Box::pin(async { drop(store.begin_ingest().await) }),
                Box::pin(async { drop(store.begin_pull().await) }),
            ];
            for mut opening in openings {
                for _ in 0..polls {
                    let polled = std::future::poll_fn(|cx| Poll::Ready(opening.as_mut().poll(cx)));
                    if polled.await.is_ready() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_micros(50)).await;
                }
                drop(opening);
                let since = Instant::now();
                while left_inside_a_transaction(&t.url).await {
                    assert!(
                        since.elapsed() < Duration::from_secs(2),
                        "an opening given up after {polls} polls left its transaction open"
                    );
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }
    }
}

/// Whether a connection of the store sits inside a transaction, asked beside the store: on
/// SQLite, whether the write lock is taken; on Postgres, whether a connection is idle in one.
async fn left_inside_a_transaction(url: &str) -> bool {
    if url.starts_with("sqlite:") {
        let options = SqliteConnectOptions::from_str(url)
            .expect("sqlite url")
            .busy_timeout(Duration::ZERO);
        let mut conn = sqlx::SqliteConnection::connect_with(&options)
            .await
            .expect("connect sqlite");
        let taken = sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut conn)
            .await
            .is_err();
        if !taken {
            sqlx::query("ROLLBACK")
                .execute(&mut conn)
                .await
                .expect("rollback");
        }
        taken
    } else {
        let mut conn = sqlx::PgConnection::connect(url)
            .await
            .expect("connect postgres");
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = current_database() \
             AND state LIKE 'idle in transaction%')",
        )
        .fetch_one(&mut conn)
        .await
        .expect("pg_stat_activity")
    }
}
