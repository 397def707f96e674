//! What a grid worker's edits look like: a dispute check filled in at the door, then followed
//! for weeks with mediation steps and status changes. Every edit is valid under the schema, so
//! the server takes all of them.

use gridsync_core::DocId;
use gridsync_core::report::{Editor, ReportDoc};
use serde_json::{Map, Value, json};

/// A new dispute check in `grid` with its first form saved: two changes, as on a phone.
pub fn new_dispute(grid: &str, user: &str, at: i64) -> anyhow::Result<ReportDoc> {
    let editor = Editor::new(user, at);
    let mut doc = ReportDoc::create(DocId::new_v4(), "dispute_check", 1, grid, &editor)?;
    let form = json!({
        "category": "neighbour",
        "parties": "张三；李四",
        "description": "邻里之间因宅基地边界的围墙发生争执，双方多次口角。",
        "place": "村东头",
        "found_on": "2026-10-01",
        "risk_level": "medium",
        "mediation_track": "people",
        "status": "reported",
    });
    doc.set_fields(&object(form), &editor)?;
    Ok(doc)
}

/// The `n`th follow-up edit of a report: a mediation step on even turns, a change of status,
/// risk or follow-up date on odd ones.
pub fn follow_up(doc: &mut ReportDoc, n: usize, user: &str, at: i64) -> anyhow::Result<()> {
    let editor = Editor::new(user, at);
    let day = 1 + n % 28;
    if n.is_multiple_of(2) {
        doc.append_log(
            &object(json!({
                "date": format!("2026-10-{day:02}"),
                "mediator": user,
                "method": format!("第 {} 次上门调解，双方到场。", n / 2 + 1),
                "outcome": "双方同意再协商。",
            })),
            &editor,
        )?;
    } else {
        let risk = ["low", "medium", "high"][n % 3];
        doc.set_fields(
            &object(json!({
                "status": "mediating",
                "risk_level": risk,
                "next_follow_up": format!("2026-11-{day:02}"),
            })),
            &editor,
        )?;
    }
    Ok(())
}

/// One small field change: what a sustained-load device sends every few seconds.
pub fn touch(doc: &mut ReportDoc, n: u64, user: &str, at: i64) -> anyhow::Result<()> {
    doc.set_field(
        "place",
        &json!(format!("村东头 {n} 号")),
        &Editor::new(user, at),
    )?;
    Ok(())
}

/// The fields of a `json!({...})` literal.
fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}
