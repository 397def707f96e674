//! The grids the user may file reports in: fetched from `GET /api/v1/org` when a session starts,
//! by `refresh_grids`, and by a sync that finds none for the user; kept sealed in the store, and
//! offered to the app's grid picker.

use serde::Deserialize;

use super::Client;
use super::answers::{parse_json, unexpected};
use crate::error::{ClientError, Result};
use crate::model::{GridInfo, UserInfo};
use crate::store::{Grid, GridList};
use crate::transport::Traffic;

/// The part of `GET /api/v1/org` the phone reads: the caller's unit and every unit under it
/// (the whole tree for a district admin).
#[derive(Deserialize)]
struct OrgTree {
    units: Vec<OrgUnit>,
}

#[derive(Deserialize)]
struct OrgUnit {
    id: String,
    parent_id: Option<String>,
    level: String,
    name: String,
    path: String,
}

impl Client {
    /// Fetches the grids of the logged-in user's scope and keeps them; call it after the
    /// office changed the user's place or the org tree.
    pub fn refresh_grids(&self) -> Result<Vec<GridInfo>> {
        self.fetch_grids(&mut Traffic::default())
    }

    pub(super) fn fetch_grids(&self, traffic: &mut Traffic) -> Result<Vec<GridInfo>> {
        let user_id = self.lock().user()?.id.clone();
        let answer = self.authorized(traffic, |token, t| {
            self.transport.get("/api/v1/org", Some(token), t)
        })?;
        if !answer.ok() {
            return Err(unexpected(&answer));
        }
        let tree: OrgTree = parse_json(&answer)?;
        let list = GridList {
            user_id,
            whole_district: tree.units.iter().any(|u| u.parent_id.is_none()),
            grids: tree
                .units
                .into_iter()
                .filter(|u| u.level == "grid")
                .map(|u| Grid {
                    id: u.id,
                    name: u.name,
                    path: u.path,
                })
                .collect(),
        };
        self.lock().store()?.set_grids(&list)?;
        Ok(infos(&list))
    }

    /// The grids a new report may use, ordered by path; empty while no list has been fetched for
    /// this user (then any grid is accepted here and the server decides).
    pub fn grids(&self) -> Result<Vec<GridInfo>> {
        let mut state = self.lock();
        let user = state.editor()?.user;
        Ok(state
            .store()?
            .grids()?
            .filter(|l| l.user_id == user)
            .map(|l| infos(&l))
            .unwrap_or_default())
    }

    /// Fetches the grids at the end of a login. The login itself succeeded and its session is
    /// stored, so a list that cannot be fetched now is not an error: the next sync fetches it,
    /// and until then the server decides.
    pub(super) fn grids_after_login(&self, info: UserInfo) -> Result<UserInfo> {
        match self.refresh_grids() {
            Ok(_) | Err(ClientError::Network(_) | ClientError::Server(_)) => Ok(info),
            Err(e) => Err(e),
        }
    }

    /// Fetches the grids when the store has none for the logged-in user: a store from an older
    /// app, or a login whose fetch failed.
    pub(super) fn fetch_grids_if_missing(&self, traffic: &mut Traffic) -> Result<()> {
        let missing = {
            let mut state = self.lock();
            let user = state.user()?.id.clone();
            state.store()?.grids()?.is_none_or(|l| l.user_id != user)
        };
        if missing {
            self.fetch_grids(traffic)?;
        }
        Ok(())
    }
}

fn infos(list: &GridList) -> Vec<GridInfo> {
    let mut grids: Vec<GridInfo> = list
        .grids
        .iter()
        .map(|g| GridInfo {
            id: g.id.clone(),
            name: g.name.clone(),
            path: g.path.clone(),
        })
        .collect();
    grids.sort_by(|a, b| a.path.cmp(&b.path));
    grids
}
