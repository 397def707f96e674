//! Attested pushes: a device's signature holds for exactly the push it signed, through the frame
//! a hub stores and relays, and for nothing a hub could make of it.

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ROOT};
use ed25519_dalek::SigningKey;
use gridsync_core::attest::{self, AttestError};
use gridsync_core::protocol::{self, AttestedPush, DocId, Push, PushDoc};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn push() -> impl Strategy<Value = Push> {
    vec(
        (
            any::<[u8; 16]>().prop_map(DocId::from_bytes),
            vec(vec(any::<u8>(), 1..64), 1..4),
        )
            .prop_map(|(doc, changes)| PushDoc { doc, changes }),
        1..4,
    )
    .prop_map(|docs| Push { docs })
}

/// What a hub might do to a push it was handed before relaying it.
#[derive(Debug, Clone)]
enum Tamper {
    FlipBit(Index, Index, Index, u8),
    AddChange(Index, Vec<u8>),
    DropChange(Index, Index),
    SwapChanges(Index),
    MoveToAnotherDoc(Index, [u8; 16]),
    RenameDevice(String),
}

fn tamper() -> impl Strategy<Value = Tamper> {
    prop_oneof![
        (any::<Index>(), any::<Index>(), any::<Index>(), 0..8u8)
            .prop_map(|(d, c, b, bit)| Tamper::FlipBit(d, c, b, bit)),
        (any::<Index>(), vec(any::<u8>(), 1..32)).prop_map(|(d, c)| Tamper::AddChange(d, c)),
        (any::<Index>(), any::<Index>()).prop_map(|(d, c)| Tamper::DropChange(d, c)),
        any::<Index>().prop_map(Tamper::SwapChanges),
        (any::<Index>(), any::<[u8; 16]>()).prop_map(|(d, id)| Tamper::MoveToAnotherDoc(d, id)),
        "[a-z]{1,12}".prop_map(Tamper::RenameDevice),
    ]
}

/// Applies `tamper`; `false` when it happens to change nothing (a swap of equal changes, say).
fn apply(attested: &mut AttestedPush, tamper: &Tamper) -> bool {
    let before = attested.clone();
    let docs = &mut attested.push.docs;
    let len = docs.len();
    match tamper {
        Tamper::FlipBit(d, c, b, bit) => {
            let doc = &mut docs[d.index(len)];
            let n = doc.changes.len();
            let change = &mut doc.changes[c.index(n)];
            let at = b.index(change.len());
            change[at] ^= 1 << bit;
        }
        Tamper::AddChange(d, change) => {
            let doc = &mut docs[d.index(len)];
            doc.changes.push(change.clone());
        }
        Tamper::DropChange(d, c) => {
            let doc = &mut docs[d.index(len)];
            let n = doc.changes.len();
            doc.changes.remove(c.index(n));
        }
        Tamper::SwapChanges(d) => {
            let doc = &mut docs[d.index(len)];
            doc.changes.reverse();
        }
        Tamper::MoveToAnotherDoc(d, id) => {
            docs[d.index(len)].doc = DocId::from_bytes(*id);
        }
        Tamper::RenameDevice(name) => attested.device = name.clone(),
    }
    *attested != before
}

proptest! {
    #[test]
    fn a_signed_push_verifies_after_the_frame_a_hub_stores_and_relays(push in push()) {
        let key = key(1);
        let signed = attest::sign(&key, "phone-1", push);
        let relayed: AttestedPush = protocol::decode(&protocol::encode(&signed)).unwrap();
        prop_assert_eq!(attest::verify(&relayed, &key.verifying_key()), Ok(()));
    }

    #[test]
    fn any_change_a_hub_makes_to_a_signed_push_breaks_its_signature(
        push in push(),
        tamper in tamper(),
    ) {
        let key = key(1);
        let mut attested = attest::sign(&key, "phone-1", push);
        if apply(&mut attested, &tamper) {
            prop_assert_eq!(
                attest::verify(&attested, &key.verifying_key()),
                Err(AttestError::BadSignature)
            );
        }
    }
}

#[test]
fn a_push_signed_by_another_key_does_not_verify_under_the_devices_key() {
    let push = Push {
        docs: vec![PushDoc {
            doc: DocId::from_bytes([9; 16]),
            changes: vec![vec![1, 2, 3]],
        }],
    };
    let forged = attest::sign(&key(2), "phone-1", push);
    assert_eq!(
        attest::verify(&forged, &key(1).verifying_key()),
        Err(AttestError::BadSignature)
    );
}

#[test]
fn the_heads_of_pushed_changes_are_those_no_other_depends_on() {
    let mut doc = AutoCommit::new();
    doc.put(ROOT, "a", 1).unwrap();
    let first = doc.commit().unwrap();
    let mut fork = doc.fork();
    doc.put(ROOT, "b", 2).unwrap();
    let left = doc.commit().unwrap();
    fork.put(ROOT, "c", 3).unwrap();
    let right = fork.commit().unwrap();
    let bytes = |d: &mut AutoCommit, h| d.get_change_by_hash(&h).unwrap().raw_bytes().to_vec();
    let changes = vec![
        bytes(&mut doc, first),
        bytes(&mut doc, left),
        bytes(&mut fork, right),
    ];

    let mut heads = attest::heads(&changes).unwrap();
    heads.sort();
    let mut expected = vec![left.0, right.0];
    expected.sort();
    assert_eq!(heads, expected);
    assert_eq!(attest::heads(&changes[..1]).unwrap(), vec![first.0]);
}

#[test]
fn a_session_answer_holds_for_its_hub_and_nonce_only() {
    let key = key(1);
    let answer = attest::sign_challenge(&key, "hub-1", b"nonce-1");
    let public = key.verifying_key();
    assert_eq!(
        attest::verify_challenge(&public, "hub-1", b"nonce-1", &answer),
        Ok(())
    );
    for (hub, nonce) in [("hub-2", b"nonce-1"), ("hub-1", b"nonce-2")] {
        assert_eq!(
            attest::verify_challenge(&public, hub, nonce, &answer),
            Err(AttestError::BadSignature)
        );
    }
    // A push signature never passes for a session answer, nor the other way round.
    let push = Push { docs: vec![] };
    let signed = attest::sign(&key, "hub-1", push);
    assert_eq!(
        attest::verify_challenge(&public, "hub-1", b"", &signed.signature),
        Err(AttestError::BadSignature)
    );
}
