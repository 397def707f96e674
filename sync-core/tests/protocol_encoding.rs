//! The sync protocol's wire format: round trips, the documented layout, compression, typed
//! decode errors, limits, bounded decompression, panic-freedom on hostile bytes, scope digests
//! and the size overhead of a typical push.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Write as _;

use gridsync_core::protocol::{
    self, AttestedPush, DecodeError, Digest, DocId, Hash, Limits, Message, Pull, PullBody, PullDoc,
    PullResult, Push, PushDoc, PushDocResult, PushOutcome, PushResult, Relay, RelayResult,
    RelayedPush,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use sha2::{Digest as _, Sha256};

// ---------------------------------------------------------------------------------------------
// Largest single allocation made by the current thread, to prove bombs are refused cheaply.

struct TrackLargest;

thread_local! {
    static LARGEST_ALLOCATION: Cell<usize> = const { Cell::new(0) };
}

fn note_allocation(size: usize) {
    // `try_with` because the allocator may run while this thread's locals are being torn down.
    let _ = LARGEST_ALLOCATION.try_with(|largest| largest.set(largest.get().max(size)));
}

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for TrackLargest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation(layout.size());
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: TrackLargest = TrackLargest;

/// Runs `f` and returns its result with the largest allocation this thread made meanwhile.
fn largest_allocation_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST_ALLOCATION.with(|largest| largest.set(0));
    let result = f();
    (result, LARGEST_ALLOCATION.with(Cell::get))
}

// ---------------------------------------------------------------------------------------------
// Helpers.

const MIB: usize = 1024 * 1024;

fn doc(n: u8) -> DocId {
    DocId::from_bytes([n; 16])
}

/// Bytes that zstd cannot shrink, reproducibly.
fn incompressible(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    let mut block: [u8; 32] = Sha256::digest(b"gridsync").into();
    while out.len() < len {
        out.extend_from_slice(&block);
        block = Sha256::digest(block).into();
    }
    out.truncate(len);
    out
}

fn push_of(docs: usize) -> Push {
    Push {
        docs: (0..docs)
            .map(|i| PushDoc {
                doc: DocId::from_u128(i as u128),
                changes: vec![vec![7; 10]],
            })
            .collect(),
    }
}

fn sample_pull_result() -> PullResult {
    PullResult {
        docs: vec![
            PullDoc {
                doc: doc(1),
                heads: vec![[1; 32], [2; 32]],
                body: PullBody::Changes(vec![vec![9; 40], vec![8; 3]]),
            },
            PullDoc {
                doc: doc(2),
                heads: vec![[3; 32]],
                body: PullBody::Snapshot(vec![5; 70]),
            },
        ],
        evicted: vec![doc(3)],
        after: 77,
        more: true,
        digest: [4; 16],
        rescoped: false,
        catalogue: 0,
    }
}

fn frame(kind: u8, flags: u8, body: &[u8]) -> Vec<u8> {
    let mut frame = vec![b'G', b'S', protocol::PROTOCOL_VERSION, kind, flags];
    frame.extend_from_slice(body);
    frame
}

/// Whether `f` came out compressed (flags byte, bit 0).
fn is_compressed(f: &[u8]) -> bool {
    f[4] & 1 == 1
}

/// Feeds `bytes` to every message type's decoder; only a panic can fail this.
fn decode_as_every_kind(bytes: &[u8]) {
    let _ = protocol::decode::<Push>(bytes);
    let _ = protocol::decode::<PushResult>(bytes);
    let _ = protocol::decode::<Pull>(bytes);
    let _ = protocol::decode::<PullResult>(bytes);
    let _ = protocol::decode::<AttestedPush>(bytes);
    let _ = protocol::decode::<Relay>(bytes);
    let _ = protocol::decode::<RelayResult>(bytes);
}

// ---------------------------------------------------------------------------------------------
// Strategies.

fn doc_id() -> impl Strategy<Value = DocId> {
    any::<[u8; 16]>().prop_map(DocId::from_bytes)
}

fn hash() -> impl Strategy<Value = Hash> {
    any::<[u8; 32]>()
}

fn hashes() -> impl Strategy<Value = Vec<Hash>> {
    vec(hash(), 0..4)
}

/// Short random bytes, longer random bytes (incompressible) and long runs (compressible), so
/// both the plain and the zstd path run.
fn raw_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        vec(any::<u8>(), 0..48),
        vec(any::<u8>(), 200..400),
        (any::<u8>(), 0..1500usize).prop_map(|(byte, len)| vec![byte; len]),
    ]
}

fn changes() -> impl Strategy<Value = Vec<Vec<u8>>> {
    vec(raw_bytes(), 0..4)
}

fn push() -> impl Strategy<Value = Push> {
    vec(
        (doc_id(), changes()).prop_map(|(doc, changes)| PushDoc { doc, changes }),
        0..4,
    )
    .prop_map(|docs| Push { docs })
}

fn push_outcome() -> impl Strategy<Value = PushOutcome> {
    prop_oneof![
        hashes().prop_map(|heads| PushOutcome::Acked { heads }),
        hashes().prop_map(|missing| PushOutcome::MissingDeps { missing }),
        (".{0,16}", ".{0,300}").prop_map(|(code, reason)| PushOutcome::Rejected { code, reason }),
    ]
}

fn push_result() -> impl Strategy<Value = PushResult> {
    vec(
        (doc_id(), push_outcome()).prop_map(|(doc, outcome)| PushDocResult { doc, outcome }),
        0..12,
    )
    .prop_flat_map(|docs| {
        proptest::option::of("[a-z0-9]{1,32}").prop_map(move |hub| PushResult {
            docs: docs.clone(),
            hub,
        })
    })
}

fn pull() -> impl Strategy<Value = Pull> {
    (
        any::<u64>(),
        any::<u64>(),
        any::<u32>(),
        vec(doc_id(), 0..24),
        any::<bool>(),
    )
        .prop_map(|(since, after, byte_budget, resend, takes_heads)| Pull {
            since,
            after,
            byte_budget,
            resend,
            takes_heads,
        })
}

fn pull_body() -> impl Strategy<Value = PullBody> {
    prop_oneof![
        changes().prop_map(PullBody::Changes),
        raw_bytes().prop_map(PullBody::Snapshot),
    ]
}

fn pull_result() -> impl Strategy<Value = PullResult> {
    let pull_doc = (doc_id(), hashes(), pull_body()).prop_map(|(doc, heads, body)| PullDoc {
        doc,
        heads,
        body,
    });
    (
        vec(pull_doc, 0..4),
        vec(doc_id(), 0..12),
        any::<u64>(),
        any::<bool>(),
        any::<[u8; 16]>(),
        any::<bool>(),
        any::<u64>(),
    )
        .prop_map(
            |(docs, evicted, after, more, digest, rescoped, catalogue)| PullResult {
                docs,
                evicted,
                after,
                more,
                digest,
                rescoped,
                catalogue,
            },
        )
}

fn attested_push() -> impl Strategy<Value = AttestedPush> {
    (push(), "[a-z0-9-]{0,40}", vec(any::<u8>(), 64)).prop_map(|(push, device, signature)| {
        AttestedPush {
            push,
            device,
            signature: signature.try_into().unwrap(),
        }
    })
}

fn relay() -> impl Strategy<Value = Relay> {
    vec(attested_push(), 0..4).prop_map(|pushes| Relay { pushes })
}

fn relay_result() -> impl Strategy<Value = RelayResult> {
    vec(
        (push_result(), proptest::option::of("[A-Za-z0-9._-]{0,200}"))
            .prop_map(|(result, receipt)| RelayedPush { result, receipt }),
        0..4,
    )
    .prop_map(|pushes| RelayResult { pushes })
}

fn any_frame() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        push().prop_map(|m| protocol::encode(&m)),
        push_result().prop_map(|m| protocol::encode(&m)),
        pull().prop_map(|m| protocol::encode(&m)),
        pull_result().prop_map(|m| protocol::encode(&m)),
        attested_push().prop_map(|m| protocol::encode(&m)),
        relay().prop_map(|m| protocol::encode(&m)),
        relay_result().prop_map(|m| protocol::encode(&m)),
    ]
}

#[derive(Debug, Clone)]
enum Mutation {
    FlipBit(Index, u8),
    SetByte(Index, u8),
    Insert(Index, u8),
    Delete(Index),
    Truncate(Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), 0..8u8).prop_map(|(i, bit)| Mutation::FlipBit(i, bit)),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::SetByte(i, b)),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<Index>().prop_map(Mutation::Delete),
        any::<Index>().prop_map(Mutation::Truncate),
    ]
}

fn mutate(bytes: &mut Vec<u8>, mutation: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    match mutation {
        Mutation::FlipBit(i, bit) => {
            let at = i.index(bytes.len());
            bytes[at] ^= 1 << bit;
        }
        Mutation::SetByte(i, b) => {
            let at = i.index(bytes.len());
            bytes[at] = *b;
        }
        Mutation::Insert(i, b) => bytes.insert(i.index(bytes.len() + 1), *b),
        Mutation::Delete(i) => {
            bytes.remove(i.index(bytes.len()));
        }
        Mutation::Truncate(i) => bytes.truncate(i.index(bytes.len())),
    }
}

/// The frame's body as CBOR, decompressed if it was compressed.
fn cbor_body(f: &[u8]) -> Vec<u8> {
    if is_compressed(f) {
        zstd::bulk::decompress(&f[5..], 64 * MIB).unwrap()
    } else {
        f[5..].to_vec()
    }
}

// ---------------------------------------------------------------------------------------------
// Round trips.

proptest! {
    #[test]
    fn push_round_trips(msg in push()) {
        prop_assert_eq!(protocol::decode::<Push>(&protocol::encode(&msg)), Ok(msg));
    }

    #[test]
    fn push_result_round_trips(msg in push_result()) {
        prop_assert_eq!(protocol::decode::<PushResult>(&protocol::encode(&msg)), Ok(msg));
    }

    #[test]
    fn pull_round_trips(msg in pull()) {
        prop_assert_eq!(protocol::decode::<Pull>(&protocol::encode(&msg)), Ok(msg));
    }

    #[test]
    fn pull_result_round_trips(msg in pull_result()) {
        prop_assert_eq!(protocol::decode::<PullResult>(&protocol::encode(&msg)), Ok(msg));
    }

    #[test]
    fn attested_push_round_trips(msg in attested_push()) {
        prop_assert_eq!(protocol::decode::<AttestedPush>(&protocol::encode(&msg)), Ok(msg));
    }

    #[test]
    fn relay_round_trips(msg in relay()) {
        prop_assert_eq!(protocol::decode::<Relay>(&protocol::encode(&msg)), Ok(msg));
    }

    #[test]
    fn relay_result_round_trips(msg in relay_result()) {
        prop_assert_eq!(protocol::decode::<RelayResult>(&protocol::encode(&msg)), Ok(msg));
    }
}

#[test]
fn encoder_compresses_large_compressible_bodies_only() {
    let small = Push {
        docs: vec![PushDoc {
            doc: doc(1),
            changes: vec![vec![0; 200]],
        }],
    };
    let large = Push {
        docs: vec![PushDoc {
            doc: doc(1),
            changes: vec![vec![0; 2000]],
        }],
    };
    let incompressible = Push {
        docs: vec![PushDoc {
            doc: doc(1),
            changes: vec![incompressible(2000)],
        }],
    };

    let small_frame = protocol::encode(&small);
    let large_frame = protocol::encode(&large);
    let incompressible_frame = protocol::encode(&incompressible);

    assert!(
        !is_compressed(&small_frame),
        "a body of 256 bytes or less is sent as is"
    );
    assert!(is_compressed(&large_frame));
    assert!(large_frame.len() < 200);
    assert!(
        !is_compressed(&incompressible_frame),
        "compression must pay for itself"
    );
    assert_eq!(protocol::decode::<Push>(&small_frame), Ok(small));
    assert_eq!(protocol::decode::<Push>(&large_frame), Ok(large));
    assert_eq!(
        protocol::decode::<Push>(&incompressible_frame),
        Ok(incompressible)
    );
}

#[test]
fn decoder_accepts_a_compressed_body_of_any_size() {
    let msg = Pull {
        since: 1,
        after: 1,
        byte_budget: 2,
        resend: vec![],
        takes_heads: false,
    };
    let plain = protocol::encode(&msg);
    let compressed = frame(
        Pull::KIND,
        1,
        &zstd::bulk::compress(&plain[5..], 3).unwrap(),
    );
    assert_eq!(protocol::decode::<Pull>(&compressed), Ok(msg));
}

// ---------------------------------------------------------------------------------------------
// The documented layout.

#[test]
fn push_wire_layout_matches_the_module_docs() {
    let msg = Push {
        docs: vec![PushDoc {
            doc: doc(0x11),
            changes: vec![vec![0xAB; 100]],
        }],
    };
    let mut expected = vec![0x47, 0x53, 0x02, 0x01, 0x00, 0x81, 0x81, 0x82, 0x50];
    expected.extend([0x11; 16]);
    expected.extend([0x81, 0x58, 0x64]);
    expected.extend([0xAB; 100]);
    assert_eq!(protocol::encode(&msg), expected);
}

#[test]
fn every_message_wire_layout_matches_the_module_docs() {
    let pull = Pull {
        since: 42,
        after: 50,
        byte_budget: 65_536,
        resend: vec![doc(1)],
        takes_heads: false,
    };
    let mut expected = vec![0x47, 0x53, 0x02, 0x03, 0x00];
    expected.extend([
        0x84, 0x18, 0x2A, 0x18, 0x32, 0x1A, 0x00, 0x01, 0x00, 0x00, 0x81, 0x50,
    ]);
    expected.extend([1; 16]);
    assert_eq!(protocol::encode(&pull), expected);
    // A client that takes heads alone adds the flag; a server from before it reads the first
    // four fields and ignores the fifth, and this one reads a pull without it as `false`.
    let mut expected = vec![0x47, 0x53, 0x02, 0x03, 0x00];
    expected.extend([
        0x85, 0x18, 0x2A, 0x18, 0x32, 0x1A, 0x00, 0x01, 0x00, 0x00, 0x81, 0x50,
    ]);
    expected.extend([1; 16]);
    expected.push(0xF5);
    let takes_heads = Pull {
        takes_heads: true,
        ..pull.clone()
    };
    assert_eq!(protocol::encode(&takes_heads), expected);
    assert_eq!(protocol::decode::<Pull>(&expected), Ok(takes_heads));

    let result = PushResult {
        docs: vec![
            PushDocResult {
                doc: doc(1),
                outcome: PushOutcome::Acked {
                    heads: vec![[2; 32]],
                },
            },
            PushDocResult {
                doc: doc(1),
                outcome: PushOutcome::MissingDeps { missing: vec![] },
            },
            PushDocResult {
                doc: doc(1),
                outcome: PushOutcome::Rejected {
                    code: "x".into(),
                    reason: "".into(),
                },
            },
        ],
        hub: None,
    };
    let mut expected = vec![0x47, 0x53, 0x02, 0x02, 0x00, 0x81, 0x83];
    expected.extend([0x82, 0x50]);
    expected.extend([1; 16]);
    expected.extend([0x82, 0x00, 0x81, 0x58, 0x20]);
    expected.extend([2; 32]);
    expected.extend([0x82, 0x50]);
    expected.extend([1; 16]);
    expected.extend([0x82, 0x01, 0x80]);
    expected.extend([0x82, 0x50]);
    expected.extend([1; 16]);
    expected.extend([0x83, 0x02, 0x61, b'x', 0x60]);
    assert_eq!(protocol::encode(&result), expected);

    let result = PullResult {
        docs: vec![PullDoc {
            doc: doc(1),
            heads: vec![],
            body: PullBody::Snapshot(vec![0xCD; 2]),
        }],
        evicted: vec![],
        after: 5,
        more: false,
        digest: [3; 16],
        rescoped: false,
        catalogue: 0,
    };
    let mut expected = vec![0x47, 0x53, 0x02, 0x04, 0x00, 0x85, 0x81, 0x83, 0x50];
    expected.extend([1; 16]);
    expected.extend([0x80, 0x82, 0x01, 0x42, 0xCD, 0xCD]);
    expected.extend([0x80, 0x05, 0xF4, 0x50]);
    expected.extend([3; 16]);
    assert_eq!(protocol::encode(&result), expected);
}

#[test]
fn relay_messages_wire_layout_matches_the_module_docs() {
    let attested = AttestedPush {
        push: Push { docs: vec![] },
        device: "d".into(),
        signature: [7; 64],
    };
    let mut expected = vec![0x47, 0x53, 0x02, 0x05, 0x00, 0x83, 0x81, 0x80, 0x61, b'd'];
    expected.extend([0x58, 0x40]);
    expected.extend([7; 64]);
    assert_eq!(protocol::encode(&attested), expected);

    let relay = Relay {
        pushes: vec![attested],
    };
    let mut expected = vec![0x47, 0x53, 0x02, 0x06, 0x00, 0x81, 0x81];
    expected.extend(&protocol::encode(&relay.pushes[0])[5..]);
    assert_eq!(protocol::encode(&relay), expected);

    // A hub's acknowledgement names the hub after the outcomes; central's leaves it out.
    let from_hub = PushResult {
        docs: vec![],
        hub: Some("h1".into()),
    };
    let expected = vec![0x47, 0x53, 0x02, 0x02, 0x00, 0x82, 0x80, 0x62, b'h', b'1'];
    assert_eq!(protocol::encode(&from_hub), expected);
    assert_eq!(
        protocol::encode(&PushResult::central(vec![])),
        [0x47, 0x53, 0x02, 0x02, 0x00, 0x81, 0x80]
    );

    // The receipt is left out when there is none, and read back as none.
    let result = RelayResult {
        pushes: vec![
            RelayedPush {
                result: PushResult::central(vec![]),
                receipt: None,
            },
            RelayedPush {
                result: PushResult::central(vec![]),
                receipt: Some("r".into()),
            },
        ],
    };
    let expected = vec![
        0x47, 0x53, 0x02, 0x07, 0x00, 0x81, 0x82, 0x81, 0x81, 0x80, 0x82, 0x81, 0x80, 0x61, b'r',
    ];
    assert_eq!(protocol::encode(&result), expected);
    assert_eq!(protocol::decode::<RelayResult>(&expected), Ok(result));
}

/// A catalogue digest after an unset `rescoped` flag writes `false` in the flag's place, and an
/// idle pull answer carrying it stays a few dozen bytes.
#[test]
fn a_catalogue_digest_is_written_after_an_unset_rescoped_flag_and_read_back() {
    let result = PullResult {
        docs: vec![],
        evicted: vec![],
        after: 5,
        more: false,
        digest: [3; 16],
        rescoped: false,
        catalogue: 0x0102_0304_0506_0708,
    };
    let encoded = protocol::encode(&result);
    let mut expected = vec![
        0x47, 0x53, 0x02, 0x04, 0x00, 0x87, 0x80, 0x80, 0x05, 0xF4, 0x50,
    ];
    expected.extend([3; 16]);
    expected.extend([0xF4, 0x1B, 1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(encoded, expected);
    assert!(encoded.len() < 50, "{} bytes", encoded.len());
    assert_eq!(protocol::decode::<PullResult>(&encoded).unwrap(), result);

    let rescoped = PullResult {
        rescoped: true,
        catalogue: u64::MAX,
        ..result
    };
    let again = protocol::decode::<PullResult>(&protocol::encode(&rescoped)).unwrap();
    assert_eq!(again, rescoped);
}

/// A server from before the catalogue sends no index 6: the phone reads 0, "unknown".
#[test]
fn a_pull_answer_without_a_catalogue_reads_as_catalogue_zero() {
    for rescoped in [None, Some(0xF5)] {
        let mut body = vec![
            if rescoped.is_some() { 0x86 } else { 0x85 },
            0x80,
            0x80,
            0x05,
            0xF4,
        ];
        body.push(0x50);
        body.extend([3; 16]);
        body.extend(rescoped);
        let decoded = protocol::decode::<PullResult>(&frame(4, 0, &body)).unwrap();
        assert_eq!(decoded.catalogue, 0);
        assert_eq!(decoded.rescoped, rescoped.is_some());
        // Written back, it is byte for byte what such a server sent.
        assert_eq!(protocol::encode(&decoded), frame(4, 0, &body));
    }
}

#[test]
fn typical_push_overhead_is_small() {
    let change = incompressible(100);
    let msg = Push {
        docs: vec![PushDoc {
            doc: doc(1),
            changes: vec![change.clone()],
        }],
    };
    let encoded = protocol::encode(&msg);
    let overhead = encoded.len() - change.len();
    eprintln!(
        "push of 1 doc with 1 change of {} bytes: {} bytes on the wire, {overhead} bytes overhead \
         (5 header + 3 array heads + 17 doc id + 1 changes head + 2 byte-string head)",
        change.len(),
        encoded.len()
    );
    let pull = protocol::encode(&Pull {
        since: 123_456,
        after: 123_456,
        byte_budget: 1 << 20,
        resend: vec![],
        takes_heads: false,
    });
    eprintln!("pull with a cursor and no resends: {} bytes", pull.len());
    assert!(overhead <= 28, "overhead grew to {overhead} bytes");
}

// ---------------------------------------------------------------------------------------------
// Typed errors.

#[test]
fn bad_magic_is_rejected() {
    let mut f = protocol::encode(&push_of(1));
    f[0] = b'X';
    assert_eq!(protocol::decode::<Push>(&f), Err(DecodeError::BadMagic));
}

#[test]
fn unsupported_version_is_rejected() {
    let mut f = protocol::encode(&push_of(1));
    for version in [1, 3] {
        f[2] = version;
        assert_eq!(
            protocol::decode::<Push>(&f),
            Err(DecodeError::UnsupportedVersion(version))
        );
    }
}

#[test]
fn push_frame_decoded_as_pull_is_wrong_kind() {
    let f = protocol::encode(&push_of(1));
    assert_eq!(
        protocol::decode::<Pull>(&f),
        Err(DecodeError::WrongKind {
            expected: 3,
            found: 1
        })
    );
}

#[test]
fn unknown_flag_bits_are_rejected() {
    let mut f = protocol::encode(&push_of(1));
    f[4] = 0b1000_0000;
    assert_eq!(
        protocol::decode::<Push>(&f),
        Err(DecodeError::UnknownFlags(0b1000_0000))
    );
}

#[test]
fn frame_shorter_than_the_header_is_too_short() {
    let f = protocol::encode(&push_of(1));
    for len in 0..5 {
        assert_eq!(
            protocol::decode::<Push>(&f[..len]),
            Err(DecodeError::TooShort)
        );
    }
}

#[test]
fn truncated_body_is_malformed() {
    let f = protocol::encode(&push_of(2));
    for len in 5..f.len() {
        assert!(
            matches!(
                protocol::decode::<Push>(&f[..len]),
                Err(DecodeError::Malformed(_))
            ),
            "truncated to {len} bytes"
        );
    }
}

#[test]
fn trailing_bytes_after_the_message_are_rejected() {
    let mut f = protocol::encode(&push_of(1));
    f.push(0);
    assert_eq!(
        protocol::decode::<Push>(&f),
        Err(DecodeError::TrailingBytes)
    );

    let mut body = cbor_body(&protocol::encode(&push_of(1)));
    body.push(0);
    let compressed = frame(Push::KIND, 1, &zstd::bulk::compress(&body, 3).unwrap());
    assert_eq!(
        protocol::decode::<Push>(&compressed),
        Err(DecodeError::TrailingBytes)
    );
}

#[test]
fn bytes_after_the_zstd_frame_are_rejected() {
    let body = cbor_body(&protocol::encode(&push_of(1)));
    let mut zstd_frame = zstd::bulk::compress(&body, 3).unwrap();
    let second = zstd::bulk::compress(&[], 3).unwrap();
    zstd_frame.extend_from_slice(&second);
    assert!(matches!(
        protocol::decode::<Push>(&frame(Push::KIND, 1, &zstd_frame)),
        Err(DecodeError::Decompress(_))
    ));
}

#[test]
fn garbage_marked_compressed_is_a_decompress_error() {
    let f = frame(Push::KIND, 1, b"definitely not zstd");
    assert!(matches!(
        protocol::decode::<Push>(&f),
        Err(DecodeError::Decompress(_))
    ));
}

#[test]
fn frame_over_max_frame_bytes_is_rejected_before_decoding() {
    let f = protocol::encode(&push_of(3));
    let limits = Limits {
        max_frame_bytes: f.len() - 1,
        ..Limits::DEFAULT
    };
    assert_eq!(
        protocol::decode_with_limits::<Push>(&f, &limits),
        Err(DecodeError::FrameTooLarge {
            len: f.len(),
            limit: f.len() - 1
        })
    );
}

#[test]
fn plain_body_over_max_body_bytes_is_rejected() {
    let f = protocol::encode(&push_of(3));
    let limits = Limits {
        max_body_bytes: f.len() - 6,
        ..Limits::DEFAULT
    };
    assert_eq!(
        protocol::decode_with_limits::<Push>(&f, &limits),
        Err(DecodeError::BodyTooLarge { limit: f.len() - 6 })
    );
}

#[test]
fn compressed_body_over_max_body_bytes_is_rejected() {
    let msg = Push {
        docs: vec![PushDoc {
            doc: doc(1),
            changes: vec![vec![0; 10_000]],
        }],
    };
    let f = protocol::encode(&msg);
    assert!(is_compressed(&f));
    let limits = Limits {
        max_body_bytes: 5_000,
        ..Limits::DEFAULT
    };
    assert_eq!(
        protocol::decode_with_limits::<Push>(&f, &limits),
        Err(DecodeError::BodyTooLarge { limit: 5_000 })
    );
}

/// One GiB of zeros, compressed chunk by chunk so the test never holds it.
fn zstd_of_a_gib_of_zeros(declare_size: bool) -> Vec<u8> {
    const GIB: u64 = 1 << 30;
    let zeros = vec![0u8; MIB];
    let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
    if declare_size {
        encoder.set_pledged_src_size(Some(GIB)).unwrap();
    } else {
        encoder.include_contentsize(false).unwrap();
    }
    for _ in 0..GIB / MIB as u64 {
        encoder.write_all(&zeros).unwrap();
    }
    encoder.finish().unwrap()
}

#[test]
fn zstd_bomb_is_body_too_large_without_allocating_it() {
    let bomb = frame(Push::KIND, 1, &zstd_of_a_gib_of_zeros(true));
    assert!(bomb.len() < 100 * 1024, "the bomb is {} bytes", bomb.len());

    let (result, largest) = largest_allocation_during(|| protocol::decode::<Push>(&bomb));
    assert_eq!(
        result,
        Err(DecodeError::BodyTooLarge {
            limit: Limits::DEFAULT.max_body_bytes
        })
    );
    assert!(
        largest < 64 * 1024,
        "largest allocation was {largest} bytes"
    );
}

#[test]
fn zstd_frame_without_content_size_is_refused_without_decompressing() {
    let bomb = frame(Push::KIND, 1, &zstd_of_a_gib_of_zeros(false));
    let (result, largest) = largest_allocation_during(|| protocol::decode::<Push>(&bomb));
    assert!(
        matches!(result, Err(DecodeError::Decompress(_))),
        "{result:?}"
    );
    assert!(
        largest < 64 * 1024,
        "largest allocation was {largest} bytes"
    );
}

/// Rewrites the content size a one-shot zstd frame declares, to lie about it.
fn with_declared_size(zstd_frame: &[u8], declared: u64) -> Vec<u8> {
    let descriptor = zstd_frame[4];
    let single_segment = descriptor & 0b0010_0000 != 0;
    assert_eq!(descriptor & 0b11, 0, "no dictionary id expected");
    assert_eq!(descriptor >> 6, 1, "a 2-byte content size field expected");
    let at = 5 + usize::from(!single_segment);
    let mut lying = zstd_frame.to_vec();
    let field = u16::try_from(declared - 256).unwrap().to_le_bytes();
    lying[at..at + 2].copy_from_slice(&field);
    lying
}

#[test]
fn zstd_frame_that_lies_about_its_content_size_is_a_decompress_error() {
    let msg = Push {
        docs: vec![PushDoc {
            doc: doc(1),
            changes: vec![vec![1; 2000]],
        }],
    };
    let honest = protocol::encode(&msg);
    assert!(is_compressed(&honest));
    let true_size = cbor_body(&honest).len() as u64;
    for declared in [true_size - 1, true_size + 1, 300] {
        let lying = frame(Push::KIND, 1, &with_declared_size(&honest[5..], declared));
        let (result, largest) = largest_allocation_during(|| protocol::decode::<Push>(&lying));
        assert!(
            matches!(result, Err(DecodeError::Decompress(_))),
            "declared {declared}: {result:?}"
        );
        assert!(
            largest <= 64 * 1024,
            "largest allocation was {largest} bytes"
        );
    }
}

#[test]
fn more_docs_than_max_docs_is_limit_exceeded() {
    let f = protocol::encode(&push_of(Limits::DEFAULT.max_docs + 1));
    assert_eq!(
        protocol::decode::<Push>(&f),
        Err(DecodeError::LimitExceeded {
            what: "docs",
            limit: Limits::DEFAULT.max_docs
        })
    );
    let at_the_limit = protocol::encode(&push_of(Limits::DEFAULT.max_docs));
    assert!(protocol::decode::<Push>(&at_the_limit).is_ok());
}

#[test]
fn every_limit_is_enforced_on_decode_and_by_check_limits() {
    let tight = Limits {
        max_frame_bytes: MIB,
        max_body_bytes: MIB,
        max_docs: 1,
        max_changes_per_doc: 1,
        max_change_bytes: 4,
        max_heads: 1,
        max_snapshot_bytes: 4,
    };
    let exceeded = |what, limit| Err(DecodeError::LimitExceeded { what, limit });

    fn both<M: Message>(msg: &M, limits: &Limits) -> Result<(), DecodeError> {
        let on_decode = protocol::decode_with_limits::<M>(&protocol::encode(msg), limits).map(drop);
        assert_eq!(on_decode, msg.check_limits(limits));
        on_decode
    }

    let push = |docs: usize, changes: usize, change_len: usize| Push {
        docs: (0..docs)
            .map(|i| PushDoc {
                doc: doc(i as u8),
                changes: vec![vec![0; change_len]; changes],
            })
            .collect(),
    };
    assert_eq!(both(&push(1, 1, 4), &tight), Ok(()));
    assert_eq!(both(&push(2, 1, 4), &tight), exceeded("docs", 1));
    assert_eq!(both(&push(1, 2, 4), &tight), exceeded("changes per doc", 1));
    assert_eq!(both(&push(1, 1, 5), &tight), exceeded("change bytes", 4));
    let twice = Push {
        docs: vec![push(1, 1, 4).docs[0].clone(); 2],
    };
    let roomy = Limits {
        max_docs: 2,
        ..tight
    };
    assert_eq!(both(&twice, &roomy), Err(DecodeError::DuplicateDoc(doc(0))));

    let push_result = |outcome| PushResult {
        docs: vec![PushDocResult {
            doc: doc(1),
            outcome,
        }],
        hub: None,
    };
    let two = vec![[1; 32], [2; 32]];
    assert_eq!(
        both(
            &push_result(PushOutcome::Acked { heads: two.clone() }),
            &tight
        ),
        exceeded("heads", 1)
    );
    assert_eq!(
        both(
            &push_result(PushOutcome::MissingDeps {
                missing: two.clone()
            }),
            &tight
        ),
        exceeded("missing deps", 1)
    );

    let pull = Pull {
        since: 0,
        after: 0,
        byte_budget: 0,
        resend: vec![doc(1), doc(2)],
        takes_heads: false,
    };
    assert_eq!(both(&pull, &tight), exceeded("resend docs", 1));

    let pull_result = |heads: Vec<Hash>, body, evicted| PullResult {
        docs: vec![PullDoc {
            doc: doc(1),
            heads,
            body,
        }],
        evicted,
        after: 0,
        more: false,
        digest: [0; 16],
        rescoped: false,
        catalogue: 0,
    };
    let one = vec![[1; 32]];
    let fine = PullBody::Snapshot(vec![0; 4]);
    assert_eq!(
        both(&pull_result(one.clone(), fine.clone(), vec![]), &tight),
        Ok(())
    );
    assert_eq!(
        both(&pull_result(two, fine.clone(), vec![]), &tight),
        exceeded("heads", 1)
    );
    assert_eq!(
        both(
            &pull_result(one.clone(), fine, vec![doc(1), doc(2)]),
            &tight
        ),
        exceeded("evicted docs", 1)
    );
    assert_eq!(
        both(
            &pull_result(one.clone(), PullBody::Snapshot(vec![0; 5]), vec![]),
            &tight
        ),
        exceeded("snapshot bytes", 4)
    );
    assert_eq!(
        both(
            &pull_result(one.clone(), PullBody::Changes(vec![vec![0; 5]]), vec![]),
            &tight
        ),
        exceeded("change bytes", 4)
    );
    assert_eq!(
        both(
            &pull_result(one, PullBody::Changes(vec![vec![], vec![]]), vec![]),
            &tight
        ),
        exceeded("changes per doc", 1)
    );
    let mut two_docs = sample_pull_result();
    two_docs.docs.truncate(2);
    assert_eq!(
        two_docs.check_limits(&Limits {
            max_docs: 1,
            ..Limits::DEFAULT
        }),
        exceeded("docs", 1)
    );
}

/// CBOR for a `PushResult` with one `Acked` document whose single head is `head`.
fn push_result_with_head(head: &[u8]) -> Vec<u8> {
    let mut e = minicbor::Encoder::new(Vec::new());
    e.array(1).unwrap().array(1).unwrap().array(2).unwrap();
    e.bytes(&[1; 16]).unwrap();
    e.array(2).unwrap().u8(0).unwrap().array(1).unwrap();
    e.bytes(head).unwrap();
    frame(PushResult::KIND, 0, &e.into_writer())
}

#[test]
fn hash_of_31_bytes_is_malformed() {
    assert!(protocol::decode::<PushResult>(&push_result_with_head(&[7; 32])).is_ok());
    for len in [0, 31, 33] {
        assert!(
            matches!(
                protocol::decode::<PushResult>(&push_result_with_head(&vec![7; len])),
                Err(DecodeError::Malformed(_))
            ),
            "a head of {len} bytes"
        );
    }
}

#[test]
fn doc_id_of_15_bytes_is_malformed() {
    let mut e = minicbor::Encoder::new(Vec::new());
    e.array(4)
        .unwrap()
        .u8(0)
        .unwrap()
        .u8(0)
        .unwrap()
        .u8(0)
        .unwrap();
    e.array(1).unwrap().bytes(&[1; 15]).unwrap();
    let f = frame(Pull::KIND, 0, &e.into_writer());
    assert!(matches!(
        protocol::decode::<Pull>(&f),
        Err(DecodeError::Malformed(_))
    ));
}

#[test]
fn missing_field_is_malformed() {
    // A Pull with since, after and byte_budget but no resend list.
    let f = frame(Pull::KIND, 0, &[0x83, 0x00, 0x00, 0x00]);
    assert!(matches!(
        protocol::decode::<Pull>(&f),
        Err(DecodeError::Malformed(_))
    ));
}

#[test]
fn unknown_trailing_fields_are_skipped_for_forward_compatibility() {
    // A Pull with a sixth element a later minor revision might add.
    let mut body = vec![0x86, 0x01, 0x01, 0x02, 0x80, 0xF5];
    body.extend([0x82, 0x61, b'x', 0xF5]);
    let f = frame(Pull::KIND, 0, &body);
    assert_eq!(
        protocol::decode::<Pull>(&f),
        Ok(Pull {
            since: 1,
            after: 1,
            byte_budget: 2,
            resend: vec![],
            takes_heads: true,
        })
    );
}

#[test]
fn huge_declared_array_length_fails_without_allocating_for_it() {
    // Push = [docs: array of 2^63 - 1 elements] followed by nothing.
    let f = frame(
        Push::KIND,
        0,
        &[0x81, 0x9B, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF],
    );
    let (result, largest) = largest_allocation_during(|| protocol::decode::<Push>(&f));
    assert!(
        matches!(result, Err(DecodeError::Malformed(_))),
        "{result:?}"
    );
    assert!(largest < 4096, "largest allocation was {largest} bytes");
}

// ---------------------------------------------------------------------------------------------
// Hostile bytes never panic.

fn header_then_random() -> impl Strategy<Value = Vec<u8>> {
    (1..=4u8, 0..=1u8, vec(any::<u8>(), 0..200))
        .prop_map(|(kind, flags, body)| frame(kind, flags, &body))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn decoding_random_bytes_never_panics(
        bytes in prop_oneof![vec(any::<u8>(), 0..200), header_then_random()]
    ) {
        decode_as_every_kind(&bytes);
    }

    #[test]
    fn decoding_mutated_frames_never_panics(
        mut f in any_frame(),
        mutations in vec(mutation(), 1..4),
    ) {
        for m in &mutations {
            mutate(&mut f, m);
        }
        decode_as_every_kind(&f);
    }

    /// Mutating the CBOR under the compression reaches the CBOR decoder through the zstd path.
    #[test]
    fn decoding_mutated_bodies_never_panics(
        f in any_frame(),
        mutations in vec(mutation(), 1..4),
        compress in any::<bool>(),
    ) {
        let mut body = cbor_body(&f);
        for m in &mutations {
            mutate(&mut body, m);
        }
        let body = if compress { zstd::bulk::compress(&body, 1).unwrap() } else { body };
        let mut reframed = f[..5].to_vec();
        reframed[4] = u8::from(compress);
        reframed.extend_from_slice(&body);
        decode_as_every_kind(&reframed);
    }
}

// ---------------------------------------------------------------------------------------------
// Scope digests.

#[test]
fn empty_scope_digests_to_zeros() {
    assert_eq!(protocol::scope_digest([]), [0; 16]);
}

#[test]
fn doc_digest_is_sha256_of_id_then_sorted_heads() {
    let mut hasher = Sha256::new();
    hasher.update([9; 16]);
    hasher.update([1; 32]);
    hasher.update([2; 32]);
    let expected: Hash = hasher.finalize().into();
    assert_eq!(protocol::doc_digest(doc(9), &[[2; 32], [1; 32]]), expected);
    assert_eq!(
        protocol::scope_digest([(doc(9), &[[1; 32], [2; 32]][..])])[..],
        expected[..16],
        "a scope digest keeps the first 16 bytes"
    );
}

#[test]
fn scope_digest_ignores_the_order_of_docs_and_of_heads() {
    let a = [[1; 32], [2; 32]];
    let a_reversed = [[2; 32], [1; 32]];
    let b = [[3; 32]];
    assert_eq!(
        protocol::scope_digest([(doc(1), &a[..]), (doc(2), &b[..])]),
        protocol::scope_digest([(doc(2), &b[..]), (doc(1), &a_reversed[..])]),
    );
}

#[test]
fn scope_digest_changes_when_a_head_changes() {
    let before = [[1; 32], [2; 32]];
    let after = [[1; 32], [3; 32]];
    let other = [[4; 32]];
    assert_ne!(
        protocol::scope_digest([(doc(1), &before[..]), (doc(2), &other[..])]),
        protocol::scope_digest([(doc(1), &after[..]), (doc(2), &other[..])]),
    );
    assert_ne!(
        protocol::scope_digest([(doc(1), &before[..])]),
        protocol::scope_digest([(doc(1), &before[..1])]),
    );
}

/// XOR of two digests, or of a digest and the first 16 bytes of a document's digest.
fn xor(a: Digest, b: &[u8]) -> Digest {
    std::array::from_fn(|i| a[i] ^ b[i])
}

proptest! {
    #[test]
    fn scope_digest_of_a_union_is_the_xor_of_its_parts(
        a in vec((doc_id(), hashes()), 0..5),
        b in vec((doc_id(), hashes()), 0..5),
    ) {
        let digest = |docs: &[(DocId, Vec<Hash>)]| {
            protocol::scope_digest(docs.iter().map(|(doc, heads)| (*doc, heads.as_slice())))
        };
        let union: Vec<_> = a.iter().chain(&b).cloned().collect();
        prop_assert_eq!(digest(&union), xor(digest(&a), &digest(&b)));
    }

    #[test]
    fn moving_one_docs_heads_updates_the_scope_digest_incrementally(
        docs in vec((doc_id(), hashes()), 1..5),
        new_heads in hashes(),
    ) {
        let digest = |docs: &[(DocId, Vec<Hash>)]| {
            protocol::scope_digest(docs.iter().map(|(doc, heads)| (*doc, heads.as_slice())))
        };
        let (moved, old_heads) = docs[0].clone();
        let mut after = docs.clone();
        after[0].1 = new_heads.clone();
        let incremental = xor(
            xor(digest(&docs), &protocol::doc_digest(moved, &old_heads)),
            &protocol::doc_digest(moved, &new_heads),
        );
        prop_assert_eq!(digest(&after), incremental);
    }
}
