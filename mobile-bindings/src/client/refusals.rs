//! What the phone refuses because the server would refuse it at every push, answered with the
//! server's codes: text holding the NUL character (`invalid_text`) and grids the user may not
//! file reports in (`unknown_grid`, `out_of_scope`).

use gridsync_core::ingest::holds_nul;
use serde_json::{Map, Value as Json};

use super::State;
use crate::error::{ClientError, Result};
use crate::store::GridList;

/// Refuses `value`, about to be written as `what`, when any text in it holds NUL.
pub(super) fn refuse_nul(what: &str, value: &Json) -> Result<()> {
    if holds_nul(value) {
        return Err(nul_text(what));
    }
    Ok(())
}

/// Refuses field values when a name or any text in them holds NUL.
pub(super) fn refuse_nul_values(values: &Map<String, Json>) -> Result<()> {
    for (key, value) in values {
        if key.contains('\0') || holds_nul(value) {
            return Err(nul_text(&format!("{key:?}")));
        }
    }
    Ok(())
}

fn nul_text(what: &str) -> ClientError {
    ClientError::Refused(format!(
        "invalid_text: {what} contains the NUL character, which no report may hold"
    ))
}

/// Refuses a grid `user` may not file a report in, judged by the grid list fetched for them;
/// without one (a store from an older app, or a fetch that failed) the server decides.
pub(super) fn check_grid(state: &mut State, user: &str, grid: &str) -> Result<()> {
    refuse_nul("the grid", &Json::String(grid.to_owned()))?;
    let list = state.store()?.grids()?;
    grid_allowed(list.as_ref().filter(|l| l.user_id == user), grid)
}

fn grid_allowed(list: Option<&GridList>, grid: &str) -> Result<()> {
    let Some(list) = list else {
        return Ok(());
    };
    if list.grids.iter().any(|g| g.id == grid) {
        return Ok(());
    }
    // A user reads the org tree only from their own unit down, so a grid missing from a partial
    // list may exist elsewhere in the district; the server answers `out_of_scope` for those.
    Err(ClientError::Refused(if list.whole_district {
        format!("unknown_grid: grid {grid:?} is not in the org tree")
    } else {
        format!(
            "out_of_scope: grid {grid:?} is not one of the grids you may report in (or does not \
             exist); pick one of grids(), or refresh_grids() if it was added since"
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Grid;
    use serde_json::json;

    fn list(whole_district: bool) -> GridList {
        GridList {
            user_id: "u1".into(),
            whole_district,
            grids: vec![Grid {
                id: "g1".into(),
                name: "一网格".into(),
                path: "/d/t1/v1/g1/".into(),
            }],
        }
    }

    fn code(result: Result<()>) -> String {
        match result {
            Err(ClientError::Refused(message)) => message
                .split_once(':')
                .map(|(code, _)| code.to_owned())
                .unwrap_or(message),
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn a_grid_outside_a_partial_list_is_out_of_scope_and_outside_the_whole_tree_unknown() {
        assert!(grid_allowed(Some(&list(false)), "g1").is_ok());
        assert_eq!(code(grid_allowed(Some(&list(false)), "g2")), "out_of_scope");
        assert_eq!(code(grid_allowed(Some(&list(true)), "g2")), "unknown_grid");
    }

    #[test]
    fn without_a_grid_list_the_server_decides() {
        assert!(grid_allowed(None, "anything").is_ok());
    }

    #[test]
    fn nul_anywhere_in_a_value_or_a_name_is_invalid_text() {
        assert!(refuse_nul("x", &json!({"a": ["fine", 1]})).is_ok());
        assert_eq!(
            code(refuse_nul("x", &json!({"a": ["no\0pe"]}))),
            "invalid_text"
        );
        let mut values = Map::new();
        values.insert("na\0me".into(), json!("v"));
        assert_eq!(code(refuse_nul_values(&values)), "invalid_text");
    }
}
