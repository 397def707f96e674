//! `gridsync serve`: migrate, create the first admin (or the demo district), listen, and stop
//! gracefully on SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::sync::Arc;

use super::settings::Settings;
use super::{Error, Open, Result, demo, open, say};
use crate::auth::bootstrap::{self, FirstAdmin};
use crate::http::{AppState, app};
use crate::store::{Store, StoreError};

/// The first admin's password, read from the environment only: a command-line flag would show
/// it to every user of the machine in the process list.
pub const ADMIN_PASSWORD_ENV: &str = "GRIDSYNC_ADMIN_PASSWORD";

pub async fn serve(settings: &Settings, with_demo: bool) -> Result<()> {
    let db = settings.db.as_str();
    // Bind before the database is touched, so a port in use leaves a new database unmade.
    let listener = tokio::net::TcpListener::bind(settings.bind)
        .await
        .map_err(|source| Error::Listen {
            addr: settings.bind,
            source,
        })?;
    let store = open(db, Open::Migrate).await?;
    let outcome = serve_on(settings, with_demo, listener, store.clone()).await;
    // Also after a failed start: see `with_store`.
    store.close().await;
    outcome
}

async fn serve_on(
    settings: &Settings,
    with_demo: bool,
    listener: tokio::net::TcpListener,
    store: Arc<dyn Store>,
) -> Result<()> {
    let db = settings.db.as_str();
    let state = AppState::new(store.clone(), settings.api.clone()).await?;
    let live = crate::live::across_nodes(db, state.live.clone())
        .await
        .map_err(StoreError::from)?;
    let state = state.with_live(live);
    if with_demo {
        if store.count_users().await? == 0 {
            demo::fill(store.as_ref(), &state.ingest, demo::DEFAULT_SEED).await?;
        } else {
            say("The database has users already: --demo adds nothing to it.");
        }
    }
    let password = std::env::var(ADMIN_PASSWORD_ENV)
        .ok()
        .filter(|p| !p.is_empty());
    if let Some(admin) = bootstrap::first_start(store.as_ref(), password).await? {
        announce(&admin);
    }
    tokio::spawn(crate::collect::every(
        store,
        crate::config::ORPHAN_COLLECTION_EVERY,
    ));
    let addr = listener.local_addr().map_err(Error::Serve)?;
    let stop = shutdown_signal()?;
    say(&format!("gridsync is serving on http://{addr}"));
    tracing::info!(
        %addr,
        db = %crate::store::redacted_url(db),
        trusted_proxies = %settings.api.trusted_proxies,
        "serving"
    );
    axum::serve(
        listener,
        app(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(stop)
    .await
    .map_err(Error::Serve)?;
    tracing::info!("stopped");
    Ok(())
}

fn announce(admin: &FirstAdmin) {
    match &admin.generated_password {
        Some(password) => say(&format!(
            "First start: created the account `{}` (district admin).\n\
             Log in with username `{}` and password `{password}`\n\
             This password is shown only this once; keep it safe.",
            admin.username, admin.username
        )),
        None => say(&format!(
            "First start: created the account `{}` (district admin) with the password from \
             {ADMIN_PASSWORD_ENV}.",
            admin.username
        )),
    }
}

/// Listens for SIGINT and SIGTERM from the call on, and resolves on the first; the server then
/// stops accepting and finishes what is in flight. The handlers are set here, not when the future
/// is first polled: axum polls it on a task of its own, which may not have run yet when a signal
/// sent just after "serving" arrives, and SIGTERM's default action would kill the process with
/// its database open.
pub(super) fn shutdown_signal() -> Result<impl Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt()).map_err(Error::Serve)?;
        let mut terminate = signal(SignalKind::terminate()).map_err(Error::Serve)?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            tracing::info!("shutting down: finishing requests in flight");
        })
    }
    #[cfg(not(unix))]
    Ok(async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
        tracing::info!("shutting down: finishing requests in flight");
    })
}
