//! `gridsync org import FILE.csv`: the org tree and where users work, from a spreadsheet.
//!
//! Every row is checked against the file and the database before anything is written, so a bad
//! row (reported with its line number) imports nothing. A unit already stored is renamed if its
//! name changed and otherwise left alone, and a user already placed at the unit is not touched,
//! so importing the same file twice changes nothing.

use std::collections::HashMap;
use std::path::Path;

use serde_json::json;

use super::{Error, Result, say};
use crate::clock;
use crate::http::org::{MAX_NAME_CHARS, valid_unit_id};
use crate::http::users::levels_for;
use crate::http::users::stranded_cases;
use crate::http::validate::check_name;
use crate::store::{AuditEntry, Level, OrgUnit, Store, User, UserPatch};

/// The header every import file starts with.
pub const COLUMNS: [&str; 5] = ["id", "parent_id", "level", "name", "users"];

/// One checked row: what to write for it.
#[derive(Debug)]
pub struct Row {
    unit: OrgUnit,
    /// Whether the unit is stored already, and under which name.
    stored_name: Option<String>,
    /// Users to place at the unit (those not already there).
    moves: Vec<User>,
}

pub async fn import(store: &dyn Store, file: &Path) -> Result<()> {
    let text = std::fs::read(file).map_err(|source| Error::Io {
        path: file.to_owned(),
        source,
    })?;
    let rows = check(store.org_units().await?, store.users().await?, &text)?;
    // A move that would strand a case assigned to the user imports nothing, like a bad row.
    let mut stranded = Vec::new();
    for row in &rows {
        for user in &row.moves {
            let cases = stranded_cases(store, user, user.role, &row.unit.path).await?;
            if !cases.is_empty() {
                stranded.push(format!(
                    "{} would no longer see the cases assigned to them ({}): assign them to \
                     someone else first",
                    user.username,
                    cases.join(", ")
                ));
            }
        }
    }
    if !stranded.is_empty() {
        return Err(Error::Invalid(stranded.join("; ")));
    }
    let bar = indicatif::ProgressBar::new(rows.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} rows {msg}")
            .expect("the template is valid"),
    );
    let (mut created, mut renamed, mut placed) = (0, 0, 0);
    for row in &rows {
        match &row.stored_name {
            None => {
                store.insert_org_unit(&row.unit).await?;
                created += 1;
            }
            Some(name) if *name != row.unit.name => {
                store.rename_org_unit(&row.unit.id, &row.unit.name).await?;
                renamed += 1;
            }
            Some(_) => {}
        }
        for user in &row.moves {
            let patch = UserPatch {
                org_unit_id: Some(row.unit.id.clone()),
                ..UserPatch::default()
            };
            store.update_user(&user.id, &patch, clock::now()).await?;
            placed += 1;
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    store
        .audit(&AuditEntry {
            at: clock::now(),
            user_id: None,
            device_id: None,
            action: "org_import".into(),
            doc_id: None,
            detail: json!({
                "file": file.display().to_string(),
                "rows": rows.len(),
                "created": created,
                "renamed": renamed,
                "users_placed": placed,
                "via": "command line",
            }),
        })
        .await?;
    say(&format!(
        "{} rows: {created} units created, {renamed} renamed, {placed} users placed \
         (their phones deliver what they hold, then pull the new scope)",
        rows.len()
    ));
    Ok(())
}

/// Checks every row of `text` against the units and users stored now; the rows to write, or
/// every problem found, each with its line number.
pub fn check(units: Vec<OrgUnit>, users: Vec<User>, text: &[u8]) -> Result<Vec<Row>> {
    let stored: HashMap<String, OrgUnit> = units.into_iter().map(|u| (u.id.clone(), u)).collect();
    let root = stored.values().find(|u| u.parent_id.is_none()).cloned();
    let users: HashMap<String, User> = users.into_iter().map(|u| (u.username.clone(), u)).collect();

    let mut reader = csv::ReaderBuilder::new().from_reader(text);
    let header = reader
        .headers()
        .map_err(|e| Error::Import(vec![format!("line 1: {e}")]))?
        .clone();
    if header.iter().map(str::trim).ne(COLUMNS) {
        return Err(Error::Import(vec![format!(
            "line 1: the header must be `{}`",
            COLUMNS.join(",")
        )]));
    }
    let mut problems = Vec::new();
    let mut rows: Vec<Row> = Vec::new();
    // Units of the file by id, with their line, so children may follow their parents.
    let mut seen: HashMap<String, (u64, OrgUnit)> = HashMap::new();
    let mut placed: HashMap<String, u64> = HashMap::new();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                problems.push(format!("line {line}: {}", csv_problem(&e)));
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line());
        let field = |i: usize| record.get(i).unwrap_or("").trim();
        let mut bad = |why: String| problems.push(format!("line {line}: {why}"));
        let (id, parent_id, level, name, people) =
            (field(0), field(1), field(2), field(3), field(4));
        if !valid_unit_id(id) {
            bad(format!(
                "id `{id}` must be 1 to 64 characters of a-z, 0-9 and '-'"
            ));
            continue;
        }
        if let Some((first, _)) = seen.get(id) {
            bad(format!("unit {id} is already on line {first}"));
            continue;
        }
        let Ok(level) = Level::parse(level) else {
            bad(format!(
                "level `{level}` must be district, township, street, village, community or grid"
            ));
            continue;
        };
        if check_name("name", name, MAX_NAME_CHARS).is_err() {
            bad(format!(
                "name must be 1 to {MAX_NAME_CHARS} characters, not blank, without control \
                 characters"
            ));
            continue;
        }
        let parent = if parent_id.is_empty() {
            None
        } else {
            seen.get(parent_id)
                .map(|(_, u)| u)
                .or_else(|| stored.get(parent_id))
        };
        let path = match (level, parent_id.is_empty(), parent) {
            (Level::District, true, _) => {
                if let Some(root) = root.as_ref().filter(|r| r.id != id) {
                    bad(format!(
                        "the database's district is {}; a district has one root",
                        root.id
                    ));
                    continue;
                }
                format!("/{id}/")
            }
            (Level::District, false, _) => {
                bad("a district has no parent_id".into());
                continue;
            }
            (_, true, _) => {
                bad(format!("a {} needs a parent_id", level.as_str()));
                continue;
            }
            (_, false, None) => {
                bad(format!(
                    "parent {parent_id} is neither in the database nor on an earlier line"
                ));
                continue;
            }
            (_, false, Some(parent)) => {
                if level.tier() != parent.level.tier() + 1 {
                    bad(format!(
                        "a {} cannot be placed under the {} {parent_id}: the tree goes district \
                         → township | street → village | community → grid",
                        level.as_str(),
                        parent.level.as_str()
                    ));
                    continue;
                }
                format!("{}{id}/", parent.path)
            }
        };
        let unit = OrgUnit {
            id: id.into(),
            parent_id: (!parent_id.is_empty()).then(|| parent_id.to_owned()),
            level,
            name: name.into(),
            path,
        };
        let stored_name = match stored.get(id) {
            Some(old) if old.parent_id != unit.parent_id || old.level != unit.level => {
                bad(format!(
                    "unit {id} is stored as a {} under {}; units are never moved or re-levelled",
                    old.level.as_str(),
                    old.parent_id.as_deref().unwrap_or("nothing")
                ));
                continue;
            }
            Some(old) => Some(old.name.clone()),
            None => None,
        };
        let mut moves = Vec::new();
        for username in people.split_whitespace() {
            let Some(user) = users.get(username) else {
                bad(format!(
                    "there is no user {username} (create it with `gridsync user add`)"
                ));
                continue;
            };
            if let Some(first) = placed.insert(username.to_owned(), line) {
                bad(format!("user {username} is already placed on line {first}"));
                continue;
            }
            if !levels_for(user.role).contains(&level) {
                bad(format!(
                    "user {username} is a {} and cannot work at a {}",
                    user.role,
                    level.as_str()
                ));
                continue;
            }
            if user.org_unit_id != id {
                moves.push(user.clone());
            }
        }
        seen.insert(id.to_owned(), (line, unit.clone()));
        rows.push(Row {
            unit,
            stored_name,
            moves,
        });
    }
    if !problems.is_empty() {
        return Err(Error::Import(problems));
    }
    Ok(rows)
}

fn csv_problem(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("expected {expected_len} columns, found {len}"),
        csv::ErrorKind::Utf8 { .. } => "not UTF-8 text: save the file as UTF-8 CSV".into(),
        _ => e.to_string(),
    }
}
