//! TLS to the village office hub, pinned to its certified key. The hub presents its enrolled
//! Ed25519 key as a raw public key (RFC 7250), which no certificate authority vouches for:
//! central's certificate of the hub names it instead. The phone's first connection to a hub it
//! has not pinned yet only learns the key the handshake proved ([`HubPin::presented`]); the
//! client sends nothing but a request for a nonce on it, and pins the key once central's
//! certificate names it. From then on only that key is taken.
//!
//! ureq 3 takes no custom certificate verifier, so the TLS layer of the hub's transport is a
//! connector of its own ([`PinnedTls`]) over ureq's (unversioned) transport API.

use std::fmt;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, SubjectPublicKeyInfoDer, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout, Transport,
    TransportAdapter,
};

use crate::error::{ClientError, Result};

/// SubjectPublicKeyInfo (RFC 8410) of an Ed25519 key: this prefix, then the 32-byte key.
const SPKI_ED25519: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];
/// The name the phone gives the hub in TLS; a raw public key carries no names to match.
const HUB_NAME: &str = "gridsync-hub";

/// Which key the hub must prove it holds.
#[derive(Debug, Default)]
pub struct HubPin {
    state: Mutex<Pin>,
}

#[derive(Debug, Default, Clone, Copy)]
enum Pin {
    /// Not known yet: take the key presented, and remember it.
    #[default]
    Learning,
    Learned([u8; 32]),
    Fixed([u8; 32]),
}

impl HubPin {
    /// A pin on the key central certified for the hub (unpadded base64url, as the certificate
    /// names it).
    pub fn fixed(key: &str) -> Result<HubPin> {
        Ok(HubPin {
            state: Mutex::new(Pin::Fixed(key_bytes(key)?)),
        })
    }

    /// The key the hub proved in its last handshake while learning, unpadded base64url.
    pub fn presented(&self) -> Option<String> {
        match *self.lock() {
            Pin::Learned(key) | Pin::Fixed(key) => Some(URL_SAFE_NO_PAD.encode(key)),
            Pin::Learning => None,
        }
    }

    /// Takes only `key` (unpadded base64url) from now on.
    pub fn fix(&self, key: &str) -> Result<()> {
        *self.lock() = Pin::Fixed(key_bytes(key)?);
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pin> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn check(&self, key: [u8; 32]) -> bool {
        let mut state = self.lock();
        match *state {
            Pin::Fixed(pinned) => pinned == key,
            Pin::Learning | Pin::Learned(_) => {
                *state = Pin::Learned(key);
                true
            }
        }
    }
}

fn key_bytes(key: &str) -> Result<[u8; 32]> {
    URL_SAFE_NO_PAD
        .decode(key)
        .ok()
        .and_then(|k| <[u8; 32]>::try_from(k).ok())
        .ok_or_else(|| ClientError::Invalid("a hub key is 32 bytes of base64url".into()))
}

/// The TLS 1.3 client configuration that takes only a raw Ed25519 key `pin` allows.
// rustls 0.23.48 deprecates ring's provider for lacking post-quantum key exchange; ureq's own
// TLS is ring's too, and aws-lc needs a C toolchain on every phone build.
#[allow(deprecated)]
pub fn client_config(pin: Arc<HubPin>) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let algorithms = provider.signature_verification_algorithms;
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("the ring provider speaks TLS 1.3")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedKey { pin, algorithms }))
        .with_no_client_auth();
    Arc::new(config)
}

#[derive(Debug)]
struct PinnedKey {
    pin: Arc<HubPin>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedKey {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let spki = end_entity.as_ref();
        let key = spki
            .strip_prefix(&SPKI_ED25519[..])
            .and_then(|k| <[u8; 32]>::try_from(k).ok())
            .ok_or(rustls::Error::InvalidCertificate(
                rustls::CertificateError::BadEncoding,
            ))?;
        if !self.pin.check(key) {
            return Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        // TLS 1.3 only: the configuration offers no other version.
        Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls12NotOffered,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature_with_raw_key(
            message,
            &SubjectPublicKeyInfoDer::from(cert.as_ref()),
            dss,
            &self.algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }

    fn requires_raw_public_keys(&self) -> bool {
        true
    }
}

/// The TLS layer of the hub's transport: rustls with [`client_config`].
pub struct PinnedTls {
    pub config: Arc<ClientConfig>,
}

impl fmt::Debug for PinnedTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PinnedTls").finish_non_exhaustive()
    }
}

impl<In: Transport> Connector<In> for PinnedTls {
    type Out = Either<In, TlsTransport>;

    fn connect(
        &self,
        details: &ConnectionDetails<'_>,
        chained: Option<In>,
    ) -> std::result::Result<Option<Self::Out>, ureq::Error> {
        let Some(transport) = chained else {
            return Ok(None);
        };
        if !details.needs_tls() || transport.is_tls() {
            return Ok(Some(Either::A(transport)));
        }
        let name = ServerName::try_from(HUB_NAME).map_err(|_| ureq::Error::Tls("hub name"))?;
        let mut conn = ClientConnection::new(self.config.clone(), name)?;
        let mut sock = TransportAdapter::new(transport.boxed(), details.current_time.clone());
        sock.set_timeout(details.timeout);
        conn.complete_io(&mut sock)?;
        Ok(Some(Either::B(TlsTransport {
            buffers: LazyBuffers::new(
                details.config.input_buffer_size(),
                details.config.output_buffer_size(),
            ),
            stream: StreamOwned { conn, sock },
        })))
    }
}

pub struct TlsTransport {
    buffers: LazyBuffers,
    stream: StreamOwned<ClientConnection, TransportAdapter>,
}

impl fmt::Debug for TlsTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsTransport").finish_non_exhaustive()
    }
}

impl Transport for TlsTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(
        &mut self,
        amount: usize,
        timeout: NextTimeout,
    ) -> std::result::Result<(), ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let output = &self.buffers.output()[..amount];
        self.stream.write_all(output)?;
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> std::result::Result<bool, ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let input = self.buffers.input_append_buf();
        let amount = self.stream.read(input)?;
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        self.stream.get_mut().get_mut().is_open()
    }

    fn is_tls(&self) -> bool {
        true
    }
}
