//! `gridsync hub enrol` and `gridsync hub run`: a village office PC enrols once with the code an
//! admin was given, then serves the phones of its office network and keeps in contact with the
//! server whenever it answers.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use serde_json::json;

use super::serve::shutdown_signal;
use super::{Error, Result, say};
use crate::auth::grant::{self, HubCertificate};
use crate::auth::secret;
use crate::auth::token::ALGORITHM;
use crate::catalogue::Catalogue;
use crate::clock;
use crate::hub::central::Central;
use crate::hub::identity::{Enrolled, Identity};
use crate::hub::sealing::SealingKey;
use crate::hub::tls::{self, TlsListener};
use crate::hub::trust::Trust;
use crate::hub::{HubError, HubState, phones, upward};
use crate::metrics::Metrics;
use crate::store::{self, Store};
use crate::sync::Ingest;

pub async fn enrol(central_url: &str, code: &str, dir: &Path, key_file: &Path) -> Result<()> {
    if Identity::exists(dir) {
        return Err(HubError::AlreadyEnrolled(dir.to_owned()).into());
    }
    let central = Central::new(central_url)?;
    let key = SealingKey::read_or_create(key_file)?;
    let seed = secret::random_bytes::<32>()?;
    let identity_key = URL_SAFE_NO_PAD.encode(
        ed25519_dalek::SigningKey::from_bytes(&seed)
            .verifying_key()
            .as_bytes(),
    );
    let enrolled: Enrolled = central
        .post_json(
            "/api/v1/hubs/enrol",
            &json!({ "enrolment_code": code.trim(), "identity_key": identity_key }),
            None,
        )
        .await?;
    // The certificate is what phones will check: it must verify with the server's published
    // keys and name this hub and its key.
    let jwks: JwkSet = central.get_json("/.well-known/jwks.json", None).await?;
    let certificate = certificate(&enrolled.certificate, &jwks)?;
    if certificate.sub != enrolled.hub_id || certificate.hkey != identity_key {
        return Err(HubError::BadAnswer("the certificate names another hub or key".into()).into());
    }
    let identity = Identity::new(central.url(), &certificate.iss, enrolled, &seed);
    identity.create(dir, &key)?;
    Trust::load(dir, &identity.issuer)?.update(|c| {
        c.jwks = Some(jwks);
        c.central_time = certificate.iat;
        c.last_contact = clock::now().max(certificate.iat);
    })?;
    // Made and migrated now, so `hub run` starts on a database that is ready.
    open_sealed(dir, &key).await?.close().await;
    say(&format!(
        "Enrolled as hub {} for {} ({}). Start it with: gridsync hub run --dir {} --key-file {}",
        identity.hub_id,
        identity.unit_id,
        identity.unit_path,
        dir.display(),
        key_file.display()
    ));
    Ok(())
}

/// The claims of the hub certificate `jws`, verified with `jwks`.
fn certificate(jws: &str, jwks: &JwkSet) -> Result<HubCertificate> {
    let bad = |why: &str| Error::from(HubError::BadAnswer(format!("the certificate {why}")));
    let header = jsonwebtoken::decode_header(jws).map_err(|_| bad("is no JWS"))?;
    if header.alg != ALGORITHM || header.typ.as_deref() != Some(grant::HUB_TYP) {
        return Err(bad("is of another type"));
    }
    let jwk = header
        .kid
        .and_then(|kid| jwks.find(&kid).cloned())
        .ok_or_else(|| bad("is signed with an unpublished key"))?;
    let key = DecodingKey::from_jwk(&jwk).map_err(|_| bad("names a bad key"))?;
    let mut validation = Validation::new(ALGORITHM);
    validation.set_audience(&[grant::AUDIENCE]);
    validation.set_required_spec_claims(&["iss", "aud", "sub"]);
    validation.validate_exp = false;
    jsonwebtoken::decode::<HubCertificate>(jws, &key, &validation)
        .map(|d| d.claims)
        .map_err(|_| bad("does not verify with the server's keys"))
}

/// The hub's database, sealed under `key` (sealed in place first if it was kept in clear).
async fn open_sealed(dir: &Path, key: &SealingKey) -> Result<Arc<dyn Store>> {
    let path = Identity::database(dir);
    store::open_sealed(&path, key.bytes())
        .await
        .map_err(|source| Error::Open {
            url: path.display().to_string(),
            source,
        })
}

pub async fn run(dir: &Path, key_file: &Path, bind: SocketAddr, every: Duration) -> Result<()> {
    let key = SealingKey::read(key_file)?;
    let identity = Identity::load(dir, &key)?;
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|source| Error::Listen { addr: bind, source })?;
    let store = open_sealed(dir, &key).await?;
    let served = serve(dir, identity, store.clone(), listener, every).await;
    // Closed however serving ended (see `Store::close`).
    store.close().await;
    served
}

/// Serves phones on `listener` from `store` until the process is asked to stop, relaying to
/// central every `every`.
async fn serve(
    dir: &Path,
    identity: Identity,
    store: Arc<dyn Store>,
    listener: tokio::net::TcpListener,
    every: Duration,
) -> Result<()> {
    let catalogue = Arc::new(Catalogue::builtin());
    catalogue.fresh(store.as_ref()).await?;
    let trust = Arc::new(Trust::load(dir, &identity.issuer)?);
    let state = HubState {
        central: Central::new(&identity.central)?,
        identity: Arc::new(identity),
        ingest: Ingest::new(catalogue, Arc::new(Metrics::new()), crate::live::Hub::new()),
        store,
        trust,
        sessions: Arc::default(),
        poke: Arc::default(),
    };
    tokio::spawn(upward::every(state.clone(), every, state.poke.clone()));
    let tls = tls::server_config(&state.identity.seed())?;
    let listener = TlsListener::new(listener, tls).map_err(Error::Serve)?;
    let addr = axum::serve::Listener::local_addr(&listener).map_err(Error::Serve)?;
    let stop = shutdown_signal()?;
    say(&format!(
        "gridsync hub {} ({}) is serving phones on https://{addr}",
        state.identity.hub_id, state.identity.unit_path
    ));
    axum::serve(
        listener,
        phones::routes().with_state(state).into_make_service(),
    )
    .with_graceful_shutdown(stop)
    .await
    .map_err(Error::Serve)
}
