//! What the phone-library tests share: a phone's store written the way a login, a grid fetch
//! and a push answer would leave it, with no server.

// Each test binary uses part of the support, so what one leaves unused is not dead.
#![allow(dead_code)]

use std::path::Path;

use gridsync_core::replica::Rejection;
use gridsync_mobile::client::Client;
use gridsync_mobile::store::{Batch, Grid, GridList, Profile, Session, Store};
use gridsync_mobile::{FieldValue, default_client_config};

/// The user every phone here belongs to.
pub const USER: &str = "user-wang";
/// Nothing listens here: these tests never reach a server.
pub const NOWHERE: &str = "http://127.0.0.1:9";

/// The key of every phone here.
pub const KEY: [u8; 32] = [7; 32];

/// A phone logged in as wang, with `grids` as its fetched grid list (none: an older store).
pub fn phone(dir: &Path, grids: Option<GridList>) -> Client {
    let store = Store::open(dir, &KEY).expect("store");
    store.set_session(Some(&session())).expect("session");
    if let Some(grids) = grids {
        store.set_grids(&grids).expect("grids");
    }
    drop(store);
    open(dir)
}

/// The phone in `dir` opened again, its server out of reach.
pub fn open(dir: &Path) -> Client {
    Client::open(dir, NOWHERE, &KEY, default_client_config()).expect("open")
}

pub fn text(value: &str) -> FieldValue {
    FieldValue::Text {
        value: value.into(),
    }
}

/// wang's session, as a login leaves it.
pub fn session() -> Session {
    Session {
        access_token: "a".into(),
        refresh_token: "r".into(),
        access_expires_at: i64::MAX / 2,
        user: Profile {
            id: USER.into(),
            username: "wang".into(),
            display_name: "Wang".into(),
            role: "grid_worker".into(),
            org_unit_id: "g1".into(),
            scope_path: "/d/t1/v1/g1/".into(),
            clearance: true,
            device_id: "d1".into(),
        },
        offline_grant: None,
        revoked_hubs: Vec::new(),
    }
}

/// The grids `ids` as `user`'s fetched grid list.
pub fn grids_of(user: &str, ids: &[&str]) -> GridList {
    GridList {
        user_id: user.into(),
        whole_district: false,
        grids: ids
            .iter()
            .map(|id| Grid {
                id: (*id).into(),
                name: format!("网格 {id}"),
                path: format!("/d/t1/v1/{id}/"),
            })
            .collect(),
    }
}

/// Marks report `id`, stored in `dir` under `key`, refused with `code` at its current heads,
/// as a push answer would. The phone must be closed.
pub fn mark_refused(dir: &Path, key: &[u8], id: &str, code: &str) {
    let mut store = Store::open(dir, key).expect("store");
    let mut local = store
        .load_doc(&id.parse().expect("id"))
        .expect("load")
        .expect("stored");
    local.rejected = Some(Rejection {
        code: code.into(),
        reason: format!("the server says {code}"),
        heads: local.doc.heads(),
    });
    let mut batch = Batch::default();
    batch.put_doc(store.write_of(&mut local).expect("write"));
    store.commit(batch).expect("commit");
}
