//! Target `protocol_decode`: any bytes as each of the sync messages. Whatever decodes must
//! encode and decode back to itself, and whatever fits tight limits must decode the same under
//! the default ones.

use std::fmt::Debug;

use gridsync_core::protocol::{
    self, AttestedPush, Limits, Message, Pull, PullResult, Push, PushResult, Relay, RelayResult,
};

/// Small enough that inputs of a few KB cross every limit.
pub const TIGHT: Limits = Limits {
    max_frame_bytes: 4096,
    max_body_bytes: 2048,
    max_docs: 4,
    max_changes_per_doc: 4,
    max_change_bytes: 512,
    max_heads: 4,
    max_snapshot_bytes: 1024,
};

pub fn run(data: &[u8]) {
    round_trip::<Push>(data);
    round_trip::<PushResult>(data);
    round_trip::<Pull>(data);
    round_trip::<PullResult>(data);
    round_trip::<AttestedPush>(data);
    round_trip::<Relay>(data);
    round_trip::<RelayResult>(data);
}

fn round_trip<M: Message + PartialEq + Debug>(data: &[u8]) {
    let decoded = protocol::decode::<M>(data);
    if let Ok(tight) = protocol::decode_with_limits::<M>(data, &TIGHT) {
        assert_eq!(
            decoded.as_ref(),
            Ok(&tight),
            "tight limits changed the message"
        );
    }
    let Ok(msg) = decoded else { return };
    let again = protocol::decode::<M>(&protocol::encode(&msg));
    assert_eq!(
        again.as_ref(),
        Ok(&msg),
        "a decoded message changed on re-encoding"
    );
}
