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

/// A small deterministic generator (xorshift), so that every run makes the same reports.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    /// A day of 2026 (the 1st to the 28th of a month), as YYYY-MM-DD.
    fn day(&mut self) -> String {
        format!("2026-{:02}-{:02}", 1 + self.below(12), 1 + self.below(28))
    }
}

/// Report `n` of a district's usual mix, made by `user` in `grid`: every tenth a drug-control
/// case, three in ten dispute checks, the rest satisfaction canvass interviews; answers and
/// dates spread over 2026 so that statistics have something to count.
pub fn any_report(rng: &mut Rng, n: usize, grid: &str, user: &str) -> anyhow::Result<ReportDoc> {
    let editor = Editor::new(user, 1_000 + n as i64);
    let scale = ["1", "2", "3", "4", "4", "5", "5", "5", "dont_know"];
    let (kind, fields, log) = match n % 10 {
        0 => {
            let visits = (0..rng.below(4))
                .map(|_| {
                    json!({"date": rng.day(), "visitor": user,
                           "test": rng.pick(&["none", "urine", "hair"]),
                           "test_result": "negative", "next_visit_due": rng.day()})
                })
                .collect();
            let status = rng.pick(&["active", "active", "active", "relapsed", "completed"]);
            let fields = json!({"subject_name": "某某", "subject_id_number": "110101199001011234",
                "programme": rng.pick(&["community_rehabilitation", "community_detox"]),
                "programme_start": rng.day(), "assigned_worker": user, "status": status});
            ("drug_control_case", fields, visits)
        }
        1..=3 => {
            let found = rng.day();
            let status = rng.pick(&["reported", "mediating", "resolved", "resolved", "referred"]);
            let mut fields = json!({"category": rng.pick(&["neighbour", "family_marriage",
                    "land_property", "labour_wages", "contract_debt", "other"]),
                "parties": "张三、李四", "description": "纠纷情况", "found_on": found,
                "risk_level": rng.pick(&["low", "medium", "high"]), "status": status,
                "next_follow_up": rng.day()});
            if status == "resolved" {
                fields["resolved_on"] = json!(rng.day().max(found));
                fields["agreement"] = json!("和解");
            }
            let steps = (0..rng.below(3))
                .map(|_| json!({"date": rng.day(), "mediator": user, "method": "上门调解"}))
                .collect();
            ("dispute_check", fields, steps)
        }
        _ => {
            let worries: Vec<&str> = ["fraud", "disputes", "public_order", "traffic"]
                .into_iter()
                .filter(|_| rng.below(4) == 0)
                .collect();
            let fields = json!({"household_type": "local_resident", "canvasser": user,
                "interviewed_at": format!("{}T10:00:00+08:00", rng.day()),
                "safety_overall": rng.pick(&scale), "safety_night": rng.pick(&scale),
                "satisfaction_police": rng.pick(&scale), "satisfaction_courts": rng.pick(&scale),
                "satisfaction_mediation": rng.pick(&scale),
                "satisfaction_services": rng.pick(&scale), "worries": worries});
            ("satisfaction_canvass", fields, Vec::new())
        }
    };
    let mut doc = ReportDoc::create(DocId::new_v4(), kind, 1, grid, &editor)?;
    doc.set_fields(&object(fields), &editor)?;
    for entry in log {
        doc.append_log(&object(entry), &editor)?;
    }
    Ok(doc)
}

/// The fields of a `json!({...})` literal.
fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}
