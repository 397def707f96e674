//! Sync messages between phones and the server, their versioned binary frame, compression,
//! decode limits and decode errors.
//!
//! A phone sends [`Push`] (its unacknowledged automerge changes) and gets a [`PushResult`]; it
//! sends [`Pull`] (its cursor and its position in a paged pull) and gets a [`PullResult`]. [`encode`] turns any of them into a
//! frame and [`decode`] / [`decode_with_limits`] turn a frame back into the expected message or a
//! typed [`DecodeError`]; no byte sequence makes them panic. [`scope_digest`] lets client and
//! server compare what they hold without exchanging it.
//!
//! # Frame
//!
//! ```text
//! offset  size  content
//! 0       2     magic b"GS" (0x47 0x53)
//! 2       1     protocol version, 0x02 (PROTOCOL_VERSION)
//! 3       1     message kind: 0x01 Push, 0x02 PushResult, 0x03 Pull, 0x04 PullResult,
//!               0x05 AttestedPush, 0x06 Relay, 0x07 RelayResult
//! 4       1     flags: bit 0 set = the body is zstd-compressed; bits 1..=7 must be 0
//! 5       ..    body: one CBOR value (below), or one zstd frame holding it
//! ```
//!
//! The encoder compresses (zstd level 3) only when the CBOR body is over 256 bytes and the
//! compressed form is smaller; the decoder accepts either form at any size. A compressed body
//! must be exactly one zstd frame that records its content size (zstd's one-shot compressor,
//! which [`encode`] uses, always does): the decoder rejects a declared size over
//! [`Limits::max_body_bytes`] before decompressing anything and then allocates exactly the
//! declared size, so a compression bomb is refused before it costs memory or time. The CBOR value
//! must end exactly where the (decompressed) body ends.
//!
//! # Body
//!
//! CBOR (RFC 8949) written by minicbor's derive with explicit indices. Structs are arrays whose
//! element `i` is the field tagged `#[n(i)]`; enums are "flat" arrays `[variant index, fields..]`.
//! A doc id is a 16-byte byte string (the UUID's bytes, big-endian as in RFC 9562), a hash a
//! 32-byte byte string, a change or snapshot a byte string of the raw automerge bytes. Integers
//! use CBOR's shortest form. Decoders skip array elements past the last known index, so a later
//! minor revision may append fields without a version bump. Every known field is required
//! except those marked `?`: an encoder leaves out such a field at the end of the array while it
//! holds its default (false, 0), and writes it when a later field is written; a decoder reads a
//! missing one as its default.
//!
//! ```text
//! Push          = [docs: [* PushDoc]]
//! PushDoc       = [doc: bytes(16), changes: [* bytes]]
//! PushResult    = [docs: [* PushDocResult], ? hub: text]  ; hub: held by that hub, not central
//! PushDocResult = [doc: bytes(16), outcome: PushOutcome]
//! PushOutcome   = [0, heads: [* bytes(32)]]             ; Acked (heads empty: those pushed)
//!               / [1, missing: [* bytes(32)]]           ; MissingDeps
//!               / [2, code: text, reason: text]         ; Rejected
//!               / [3, code: text, reason: text]         ; Held
//! Pull          = [since: uint, after: uint, byte_budget: uint, resend: [* bytes(16)],
//!                  ? takes_heads: bool]                   ; false is left out
//! PullResult    = [docs: [* PullDoc], evicted: [* bytes(16)], after: uint, more: bool,
//!                  digest: bytes(16), ? rescoped: bool,   ; false is left out at the end
//!                  ? catalogue: uint]                     ; 0 (unknown) is left out
//! PullDoc       = [doc: bytes(16), heads: [* bytes(32)], body: PullBody]   ; heads empty: all in body
//!                                                       ; no changes: listed by heads alone
//! PullBody      = [0, changes: [* bytes]]               ; Changes
//!               / [1, snapshot: bytes]                  ; Snapshot
//! AttestedPush  = [push: Push, device: text, signature: bytes(64)]
//! Relay         = [pushes: [* AttestedPush]]
//! RelayResult   = [pushes: [* RelayedPush]]             ; one per relayed push, in order
//! RelayedPush   = [result: PushResult, ? receipt: text] ; no receipt: nothing was acked
//! ```
//!
//! A change is an automerge change chunk, deflated or not (the hash is the same); senders here
//! send it undeflated, since the frame is compressed whole.
//!
//! The last three are the village office hub's: a phone hands a hub an [`AttestedPush`], its
//! push signed with its device key ([`crate::attest`]), and the hub relays those to central
//! unchanged in a [`Relay`]. Central answers each with its outcomes and a receipt it signed,
//! which the hub hands back to the phone.
//!
//! For example a push of one 100-byte change to one document is 128 bytes:
//!
//! ```text
//! 47 53 02 01 00      frame header: "GS", version 2, kind 1 (Push), flags 0
//! 81                  Push: array(1)
//!   81                  docs: array(1)
//!     82                  PushDoc: array(2)
//!       50 <16 bytes>       doc: bytes(16)
//!       81                  changes: array(1)
//!         58 64 <100 bytes>   bytes(100)
//! ```
//!
//! # Paging
//!
//! A pull is one or more pages. `since` is the server sequence the client had reached when its
//! last pull finished, and stays fixed through every page of the next one: it decides which
//! changes a document needs (those past `since`, or a snapshot when `since` is 0). `after` is the
//! position within the pull: documents whose latest sequence is at or below it were sent on an
//! earlier page. Keeping the two apart is what lets a document on page 3 arrive with all its
//! changes since the last pull, not only those past page 2. When `more` is false the client
//! stores the answer's `after` as its next `since`. An answer whose `after` is below the
//! request's `since` means the server holds less than the client has pulled (it was restored
//! from a backup): the client starts again from that `after`.
//!
//! # Limits
//!
//! [`decode_with_limits`] bounds the frame, the decompressed body and, after decoding, every
//! count and size in the message ([`Limits`]). Memory while decoding stays proportional to the
//! body: minicbor borrows byte strings from the input and never reserves room from a declared
//! length (see the notes in `protocol/cbor.rs`), so each decoded element is paid for by at least one input byte.

mod cbor;
mod digest;
mod frame;
mod limits;

pub use digest::{doc_digest, scope_digest};
pub use frame::{Message, decode, decode_with_limits, encode};
pub use limits::{DecodeError, Limits};

use limits::{at_most, check_changes};
use minicbor::{Decode, Encode};

/// A report's id, which is also its automerge document's id.
pub type DocId = uuid::Uuid;

/// An automerge change hash.
pub type Hash = [u8; 32];

/// A [`scope_digest`]: 128 bits tell a divergence apart from chance, and a pull answer is often
/// only a few dozen bytes besides it.
pub type Digest = [u8; 16];

/// The frame version this module writes and the only one it reads. Version 2 shortened the
/// digest to 16 bytes and lets heads be left out where the client can tell them.
pub const PROTOCOL_VERSION: u8 = 2;

/// The heads to list for a document in a [`PushOutcome::Acked`] or a [`PullDoc`]: none when
/// every one of them is among `carried`, the hashes of the changes the exchange carried for the
/// document (the client then tells them itself from those changes), otherwise all of them.
pub fn listed_heads<'a>(
    heads: Vec<Hash>,
    carried: impl IntoIterator<Item = &'a [u8]>,
) -> Vec<Hash> {
    let carried: Vec<&[u8]> = carried.into_iter().collect();
    if heads.iter().all(|h| carried.contains(&h.as_slice())) {
        Vec::new()
    } else {
        heads
    }
}

/// The client's changes that the server has not acknowledged yet, by document.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Push {
    #[n(0)]
    pub docs: Vec<PushDoc>,
}

/// Raw automerge changes of one document.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct PushDoc {
    #[cbor(n(0), with = "cbor::doc_id")]
    pub doc: DocId,
    #[cbor(n(1), with = "cbor::byte_strings")]
    pub changes: Vec<Vec<u8>>,
}

/// The server's answer to a [`Push`], one entry per pushed document.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct PushResult {
    #[n(0)]
    pub docs: Vec<PushDocResult>,
    /// Where what this acknowledges is held: `None` at central, or the id of the village office
    /// hub that answered, whose acknowledgement leaves the changes owed to central still.
    #[n(1)]
    pub hub: Option<String>,
}

impl PushResult {
    /// Central's answer with these outcomes.
    pub fn central(docs: Vec<PushDocResult>) -> PushResult {
        PushResult { docs, hub: None }
    }
}

/// What became of one pushed document.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct PushDocResult {
    #[cbor(n(0), with = "cbor::doc_id")]
    pub doc: DocId,
    #[n(1)]
    pub outcome: PushOutcome,
}

/// Whether the server committed a pushed document's changes.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(flat)]
pub enum PushOutcome {
    /// Committed; `heads` are the server's heads of the document now, or empty when they are
    /// exactly the heads of what the client pushed (nobody else changed the document).
    #[n(0)]
    Acked {
        #[cbor(n(0), with = "cbor::hashes")]
        heads: Vec<Hash>,
    },
    /// The server lacks these dependencies (send them and their ancestors too); nothing of the
    /// document was applied.
    #[n(1)]
    MissingDeps {
        #[cbor(n(0), with = "cbor::hashes")]
        missing: Vec<Hash>,
    },
    /// Refused for good, e.g. `code` "invalid_change" or "unknown_grid".
    #[n(2)]
    Rejected {
        #[n(0)]
        code: String,
        #[n(1)]
        reason: String,
    },
    /// Stored as held work, not applied: the pusher may no longer write this report (`code`
    /// "out_of_scope": a case reassigned or a worker moved while the phone was offline). Someone
    /// who owns the report now merges or declines it; the phone need not send these changes again.
    #[n(3)]
    Held {
        #[n(0)]
        code: String,
        #[n(1)]
        reason: String,
    },
}

/// A request for one page of the documents in the client's scope that changed past `since`.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Pull {
    /// Where the client's last complete pull ended; 0 for a client that holds nothing.
    #[n(0)]
    pub since: u64,
    /// Documents at or below this sequence were sent on earlier pages of this pull.
    #[n(1)]
    pub after: u64,
    /// Roughly how many bytes of changes and snapshots the answer may carry.
    #[n(2)]
    pub byte_budget: u32,
    /// Documents the client wants whole, because changes arrived without their history.
    #[cbor(n(3), with = "cbor::doc_ids")]
    pub resend: Vec<DocId>,
    /// The client takes a document listed by its heads alone (an empty change list) as one it
    /// holds up to those heads, and asks for it whole (`resend`) when it does not. A pull from
    /// zero then lists that way the documents whose heads the calling device wrote itself,
    /// instead of sending back as snapshots what it just pushed.
    #[cbor(n(4), skip_if = "cbor::is_false")]
    pub takes_heads: bool,
}

/// One page of the client's scope past its cursor.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct PullResult {
    #[n(0)]
    pub docs: Vec<PullDoc>,
    /// Documents that left the client's scope, or were asked for but are not in it; the client
    /// drops them.
    #[cbor(n(1), with = "cbor::doc_ids")]
    pub evicted: Vec<DocId>,
    /// The position for the next page; the client's next `since` once `more` is false.
    #[n(2)]
    pub after: u64,
    /// Another page follows (documents, or resends that did not fit the budget).
    #[n(3)]
    pub more: bool,
    /// [`scope_digest`] of the whole scope as the server holds it.
    #[cbor(n(4), with = "minicbor::bytes")]
    pub digest: Digest,
    /// The caller's scope changed since its last pull (a new grid or role): this answer starts
    /// the pull over from zero, and the client drops what it holds that it has delivered.
    #[cbor(n(5), skip_if = "cbor::is_false")]
    pub rescoped: bool,
    /// The digest of the server's catalogue of report kinds (every published and retired
    /// version); a phone that holds another one fetches the catalogue before applying the page.
    /// 0 means unknown (a server from before the catalogue): the phone does nothing about it.
    #[cbor(n(6), skip_if = "cbor::is_zero")]
    pub catalogue: u64,
}

/// What changed in one document.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct PullDoc {
    #[cbor(n(0), with = "cbor::doc_id")]
    pub doc: DocId,
    /// The server's heads of the document after applying `body`; empty when every one of them
    /// is in the body (always, for a snapshot), so the client can tell them itself. With an
    /// empty change list, the document is listed by its heads alone (see [`Pull::takes_heads`]).
    #[cbor(n(1), with = "cbor::hashes")]
    pub heads: Vec<Hash>,
    #[n(2)]
    pub body: PullBody,
}

impl PullDoc {
    /// Listed by its heads alone: the server believes the client holds the document up to them.
    pub fn heads_only(&self) -> bool {
        matches!(&self.body, PullBody::Changes(c) if c.is_empty()) && !self.heads.is_empty()
    }
}

/// A document's new content: raw changes, or the whole document when that is cheaper.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(flat)]
pub enum PullBody {
    #[n(0)]
    Changes(#[cbor(n(0), with = "cbor::byte_strings")] Vec<Vec<u8>>),
    /// A saved automerge document.
    #[n(1)]
    Snapshot(#[cbor(n(0), with = "minicbor::bytes")] Vec<u8>),
}

/// A push signed by the phone that made it, as a phone hands it to a village office hub and the
/// hub relays it to central. `signature` is the device key's Ed25519 signature over
/// [`crate::attest::digest`] of `device` and `push`.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct AttestedPush {
    #[n(0)]
    pub push: Push,
    /// The id of the device whose key signed.
    #[n(1)]
    pub device: String,
    #[cbor(n(2), with = "minicbor::bytes")]
    pub signature: [u8; 64],
}

/// What a hub hands up to central: the pushes phones made to it, each as the phone signed it.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Relay {
    #[n(0)]
    pub pushes: Vec<AttestedPush>,
}

/// Central's answer to a [`Relay`]: one entry per relayed push, in the same order.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct RelayResult {
    #[n(0)]
    pub pushes: Vec<RelayedPush>,
}

/// What became of one relayed push.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct RelayedPush {
    /// The outcomes, as central would have answered the phone itself.
    #[n(0)]
    pub result: PushResult,
    /// Central's receipt for the documents it acknowledged, which the hub hands to the phone:
    /// a JWS it signed (`typ` `gridsync-receipt+jwt`) naming the device, the push's
    /// [`crate::attest::digest`] and each acknowledged document with the heads central holds.
    /// `None` when no document was acknowledged.
    #[n(1)]
    pub receipt: Option<String>,
}

/// Longest device id an [`AttestedPush`] may name, in bytes.
const MAX_DEVICE_ID_BYTES: usize = 128;

impl frame::sealed::Sealed for Push {}
impl Message for Push {
    const KIND: u8 = 1;

    fn check_limits(&self, limits: &Limits) -> Result<(), DecodeError> {
        at_most("docs", self.docs.len(), limits.max_docs)?;
        let mut seen = std::collections::HashSet::with_capacity(self.docs.len());
        if let Some(doc) = self.docs.iter().find(|d| !seen.insert(d.doc)) {
            return Err(DecodeError::DuplicateDoc(doc.doc));
        }
        self.docs
            .iter()
            .try_for_each(|doc| check_changes(&doc.changes, limits))
    }
}

impl frame::sealed::Sealed for PushResult {}
impl Message for PushResult {
    const KIND: u8 = 2;

    fn check_limits(&self, limits: &Limits) -> Result<(), DecodeError> {
        at_most("docs", self.docs.len(), limits.max_docs)?;
        self.docs.iter().try_for_each(|doc| match &doc.outcome {
            PushOutcome::Acked { heads } => at_most("heads", heads.len(), limits.max_heads),
            // Missing dependencies are changes the client must send, so they are bounded like
            // the changes of one document rather than like its heads.
            PushOutcome::MissingDeps { missing } => {
                at_most("missing deps", missing.len(), limits.max_changes_per_doc)
            }
            PushOutcome::Rejected { .. } | PushOutcome::Held { .. } => Ok(()),
        })
    }
}

impl frame::sealed::Sealed for Pull {}
impl Message for Pull {
    const KIND: u8 = 3;

    fn check_limits(&self, limits: &Limits) -> Result<(), DecodeError> {
        at_most("resend docs", self.resend.len(), limits.max_docs)
    }
}

impl frame::sealed::Sealed for PullResult {}
impl Message for PullResult {
    const KIND: u8 = 4;

    fn check_limits(&self, limits: &Limits) -> Result<(), DecodeError> {
        at_most("docs", self.docs.len(), limits.max_docs)?;
        at_most("evicted docs", self.evicted.len(), limits.max_docs)?;
        self.docs.iter().try_for_each(|doc| {
            at_most("heads", doc.heads.len(), limits.max_heads)?;
            match &doc.body {
                PullBody::Changes(changes) => check_changes(changes, limits),
                PullBody::Snapshot(snapshot) => {
                    at_most("snapshot bytes", snapshot.len(), limits.max_snapshot_bytes)
                }
            }
        })
    }
}

impl frame::sealed::Sealed for AttestedPush {}
impl Message for AttestedPush {
    const KIND: u8 = 5;

    fn check_limits(&self, limits: &Limits) -> Result<(), DecodeError> {
        at_most("device id bytes", self.device.len(), MAX_DEVICE_ID_BYTES)?;
        self.push.check_limits(limits)
    }
}

impl frame::sealed::Sealed for Relay {}
impl Message for Relay {
    const KIND: u8 = 6;

    fn check_limits(&self, limits: &Limits) -> Result<(), DecodeError> {
        let docs = self.pushes.iter().map(|p| p.push.docs.len()).sum();
        at_most("docs", docs, limits.max_docs)?;
        self.pushes.iter().try_for_each(|p| p.check_limits(limits))
    }
}

impl frame::sealed::Sealed for RelayResult {}
impl Message for RelayResult {
    const KIND: u8 = 7;

    fn check_limits(&self, limits: &Limits) -> Result<(), DecodeError> {
        at_most("pushes", self.pushes.len(), limits.max_docs)?;
        self.pushes
            .iter()
            .try_for_each(|p| p.result.check_limits(limits))
    }
}
