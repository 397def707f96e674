//! Ledgers (台账): the reports of one kind, period and org unit as a spreadsheet (CSV or XLSX),
//! one row per report with the fields of every version of the kind in the reader's language
//! (`Registry::span`), and the log entries (mediation steps, visits) as a second sheet or a
//! second CSV. A plain function over a store and a scope, so the export endpoint and the
//! `gridsync` command line share it.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Write;

use gridsync_core::DocId;
use gridsync_core::schema::{FieldDef, FieldType, Label, REDACTED, Registry, Schema};
use rust_xlsxwriter::{Format as CellFormat, Workbook, Worksheet, XlsxError};
use serde_json::Value;

use crate::scope::Scope;
use crate::stats::Day;
use crate::store::facts::LedgerQuery;
use crate::store::{DocumentRow, OrgUnit, Store, StoreError};

/// Reports read from the store at a time.
const PAGE: i64 = 500;

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("writing the spreadsheet: {0}")]
    Xlsx(#[from] XlsxError),
    #[error("writing the CSV: {0}")]
    Csv(#[from] csv::Error),
    #[error("writing the ledger: {0}")]
    Io(#[from] std::io::Error),
    #[error("unknown report kind {0:?}")]
    UnknownKind(String),
    #[error("reports of kind {0} have no log")]
    NoLog(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Xlsx,
}

impl Format {
    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Xlsx => "xlsx",
        }
    }

    pub fn media_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Zh,
    En,
}

impl Lang {
    fn pick(self, label: &Label) -> &str {
        match self {
            Lang::Zh => &label.zh,
            Lang::En => &label.en,
        }
    }

    fn text(self, zh: &'static str, en: &'static str) -> &'static str {
        match self {
            Lang::Zh => zh,
            Lang::En => en,
        }
    }
}

/// Which table a CSV ledger holds: an XLSX holds both, as two sheets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Reports,
    Log,
}

/// What to export.
#[derive(Debug, Clone)]
pub struct Request {
    pub kind: String,
    pub org: OrgUnit,
    pub from: Option<Day>,
    pub to: Option<Day>,
    pub format: Format,
    pub lang: Lang,
    /// For CSV; an XLSX holds both parts.
    pub part: Part,
    /// Whether the reader may see personal data; without it sensitive values read `***`.
    pub clearance: bool,
}

/// What a ledger held: the reports written, for the audit log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Written {
    pub reports: Vec<DocId>,
    pub restricted: bool,
}

/// Writes the ledger `req` asks for, of the reports in `scope`, to `out`.
pub async fn write(
    store: &dyn Store,
    registry: &Registry,
    scope: &Scope,
    req: &Request,
    out: &mut (dyn Write + Send),
) -> Result<Written, LedgerError> {
    // Every version's fields, retired versions included: a ledger lists the reports of each.
    let schema = registry
        .span(&req.kind)
        .ok_or_else(|| LedgerError::UnknownKind(req.kind.clone()))?;
    let schema = &schema;
    if req.format == Format::Csv && req.part == Part::Log && schema.log.is_none() {
        return Err(LedgerError::NoLog(req.kind.clone()));
    }
    let names: HashMap<String, String> = store
        .org_units()
        .await?
        .into_iter()
        .map(|u| (u.id, u.name))
        .collect();
    let table = Table {
        schema,
        registry,
        lang: req.lang,
        clearance: req.clearance,
        names,
    };
    let mut sink = match req.format {
        Format::Csv => {
            // A byte-order mark, so that Excel reads the file as UTF-8 rather than GBK.
            out.write_all("\u{feff}".as_bytes())?;
            Sink::Csv(Box::new(csv::Writer::from_writer(out)), req.part)
        }
        Format::Xlsx => Sink::Xlsx(Box::new(Sheets::new(schema, req.lang)?), out),
    };
    sink.header(Part::Reports, &table.report_header())?;
    if schema.log.is_some() {
        sink.header(Part::Log, &table.log_header())?;
    }
    let mut written = Written {
        reports: Vec::new(),
        restricted: matches!(
            schema.access,
            gridsync_core::schema::Access::Restricted { .. }
        ),
    };
    let mut query = LedgerQuery {
        kind: req.kind.clone(),
        org_path: req.org.path.clone(),
        from: req.from.map(|d| d.to_string()),
        to: req.to.map(|d| d.to_string()),
        after: None,
        limit: PAGE,
    };
    loop {
        let rows = store.ledger_page(scope, &query).await?;
        for row in &rows {
            let attachments = store.attachments_of(&row.id).await?;
            let projection = table.readable(row);
            sink.row(
                Part::Reports,
                &table.report_row(row, &projection, &attachments),
            )?;
            for entry in table.log_rows(row, &projection) {
                sink.row(Part::Log, &entry)?;
            }
            written.reports.push(row.id);
        }
        match rows.last() {
            Some(last) if rows.len() as i64 == PAGE => query.after = Some(last.id.to_string()),
            _ => break,
        }
    }
    sink.finish()?;
    Ok(written)
}

/// How reports become rows.
struct Table<'a> {
    schema: &'a Schema,
    registry: &'a Registry,
    lang: Lang,
    clearance: bool,
    names: HashMap<String, String>,
}

impl Table<'_> {
    fn report_header(&self) -> Vec<String> {
        let l = self.lang;
        let mut h: Vec<String> = [
            l.text("编号", "ID"),
            l.text("乡镇（街道）", "Township or street"),
            l.text("村（社区）", "Village or community"),
            l.text("网格", "Grid"),
        ]
        .map(str::to_owned)
        .to_vec();
        h.extend(columns(&self.schema.fields).map(|f| l.pick(&f.label).to_owned()));
        h.extend(
            [
                l.text("审核状态", "Review state"),
                l.text("创建人", "Created by"),
                l.text("创建时间", "Created at"),
                l.text("更新时间", "Updated at"),
                l.text("附件", "Attachments"),
            ]
            .map(str::to_owned),
        );
        h
    }

    fn log_header(&self) -> Vec<String> {
        let l = self.lang;
        let mut h = vec![
            l.text("报告编号", "Report ID").to_owned(),
            l.text("记录编号", "Entry ID").to_owned(),
        ];
        if let Some(log) = &self.schema.log {
            h.extend(columns(&log.fields).map(|f| l.pick(&f.label).to_owned()));
        }
        h.push(l.text("记录人", "Recorded by").to_owned());
        h.push(l.text("记录时间", "Recorded at").to_owned());
        h
    }

    /// The projection as this reader may see it.
    fn readable(&self, row: &DocumentRow) -> Value {
        let mut projection = row.projection.clone();
        if !self.clearance {
            match self.registry.get(&row.kind, row.schema_version) {
                Some(schema) => schema.redact(&mut projection),
                None => projection = serde_json::json!({"fields": {}, "log": []}),
            }
        }
        projection
    }

    fn report_row(
        &self,
        row: &DocumentRow,
        projection: &Value,
        attachments: &[crate::store::Attachment],
    ) -> Vec<Cell> {
        // org_path is /district/township/village/grid/.
        let ids: Vec<&str> = row.org_path.split('/').filter(|s| !s.is_empty()).collect();
        let name = |i: usize| {
            ids.get(i)
                .map(|id| {
                    self.names
                        .get(*id)
                        .cloned()
                        .unwrap_or_else(|| (*id).to_owned())
                })
                .unwrap_or_default()
        };
        let mut cells: Vec<Cell> = [row.id.to_string(), name(1), name(2), name(3)]
            .map(Cell::Text)
            .to_vec();
        // A column of a field the report's own version lacks stays blank, whatever the document
        // holds: the form the report was written on never asked it.
        let own = self.registry.get(&row.kind, row.schema_version);
        cells.extend(columns(&self.schema.fields).map(|f| {
            if own.is_some_and(|s| s.field(&f.id).is_none()) {
                return Cell::Text(String::new());
            }
            self.cell(f, &projection["fields"][f.id.as_str()])
        }));
        cells.extend(
            [
                self.review_state(&row.review_state).to_owned(),
                row.created_by.clone(),
                gridsync_core::time::rfc3339(row.created_at),
                gridsync_core::time::rfc3339(row.updated_at),
                self.attachments_cell(projection, attachments),
            ]
            .map(Cell::Text),
        );
        cells
    }

    /// One line per attachment: its name as the report names it (when it does), media type and
    /// sha256 of what the server holds, then those the report names whose bytes have not
    /// arrived yet, marked so.
    fn attachments_cell(
        &self,
        projection: &Value,
        uploaded: &[crate::store::Attachment],
    ) -> String {
        let named: Vec<&Value> = projection["attachments"]
            .as_array()
            .map(|a| a.iter().collect())
            .unwrap_or_default();
        let name_of = |hash: &str| {
            named
                .iter()
                .find(|a| a["sha256"].as_str() == Some(hash))
                .and_then(|a| a["name"].as_str())
        };
        let mut lines: Vec<String> = uploaded
            .iter()
            .map(|a| match name_of(&a.hash) {
                Some(name) => format!("{name} {} sha256:{}", a.media_type, a.hash),
                None => format!("{} sha256:{}", a.media_type, a.hash),
            })
            .collect();
        let pending = self.lang.text("（未上传）", " (not uploaded yet)");
        lines.extend(named.iter().filter_map(|a| {
            let hash = a["sha256"].as_str()?;
            if uploaded.iter().any(|u| u.hash == hash) {
                return None;
            }
            let name = a["name"].as_str().unwrap_or_default();
            let media = a["media_type"].as_str().unwrap_or_default();
            Some(format!("{name} {media} sha256:{hash}{pending}"))
        }));
        lines.join("\n")
    }

    fn log_rows(&self, row: &DocumentRow, projection: &Value) -> Vec<Vec<Cell>> {
        let Some(log) = &self.schema.log else {
            return Vec::new();
        };
        let entries = projection["log"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let own = self.registry.get(&row.kind, row.schema_version);
        entries
            .iter()
            .map(|e| {
                let mut cells = vec![Cell::Text(row.id.to_string()), Cell::Text(plain(&e["id"]))];
                cells.extend(columns(&log.fields).map(|f| {
                    if own.is_some_and(|s| s.log_field(&f.id).is_none()) {
                        return Cell::Text(String::new());
                    }
                    self.cell(f, &e[f.id.as_str()])
                }));
                cells.push(Cell::Text(plain(&e["created_by"])));
                cells.push(Cell::Text(plain(&e["created_at"])));
                cells
            })
            .collect()
    }

    fn review_state<'s>(&self, state: &'s str) -> &'s str {
        let l = self.lang;
        match state {
            "received" => l.text("已接收", "Received"),
            "needs_attention" => l.text("需关注", "Needs attention"),
            "approved" => l.text("已通过", "Approved"),
            other => other,
        }
    }

    /// A value as a reader wants it: choice labels rather than ids, yes/no, plain text; the
    /// value of a number field as a number.
    fn cell(&self, def: &FieldDef, value: &Value) -> Cell {
        if value.as_str() == Some(REDACTED) {
            return Cell::Text(REDACTED.to_owned());
        }
        let label = |id: &str| {
            def.choice(id)
                .map(|c| self.lang.pick(&c.label).to_owned())
                .unwrap_or_else(|| id.to_owned())
        };
        let text = match (def.ty, value) {
            (FieldType::Integer | FieldType::Decimal, Value::Number(n)) => {
                return Cell::Number(n.to_string());
            }
            (FieldType::SingleChoice, Value::String(id)) => label(id),
            (FieldType::MultipleChoice, Value::Array(ids)) => ids
                .iter()
                .map(|v| v.as_str().map(label).unwrap_or_else(|| v.to_string()))
                .collect::<Vec<_>>()
                .join(self.lang.text("、", ", ")),
            (FieldType::Boolean, Value::Bool(b)) => if *b {
                self.lang.text("是", "yes")
            } else {
                self.lang.text("否", "no")
            }
            .to_owned(),
            _ => plain(value),
        };
        Cell::Text(text)
    }
}

/// One cell of a ledger row.
#[derive(Debug, Clone, PartialEq)]
enum Cell {
    /// Text, which may come from anyone who wrote the report (or named an attachment).
    Text(String),
    /// A number the server writes from a number field's JSON number.
    Number(String),
}

impl Cell {
    fn as_str(&self) -> &str {
        match self {
            Cell::Text(s) | Cell::Number(s) => s,
        }
    }

    /// The cell as a CSV field: text that a spreadsheet would read as a formula is defused.
    fn for_csv(&self) -> Cow<'_, str> {
        match self {
            Cell::Text(s) => defuse(s),
            Cell::Number(s) => Cow::Borrowed(s),
        }
    }
}

/// Text that Excel, WPS or LibreOffice could run as a formula when they open a CSV file (it
/// starts with `=`, `+`, `-`, `@`, a tab or a carriage return), prefixed with a single quote
/// as OWASP recommends ("CSV Injection"): the spreadsheet shows the text, quote included, and
/// runs nothing. The CSV writer then quotes the field as any other.
fn defuse(text: &str) -> Cow<'_, str> {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        Cow::Owned(format!("'{text}"))
    } else {
        Cow::Borrowed(text)
    }
}

/// A JSON value as cell text: strings as they are, nothing for null, other values as JSON.
fn plain(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

enum Sink<'w> {
    /// The CSV writer and the one part it holds.
    Csv(Box<csv::Writer<&'w mut (dyn Write + Send)>>, Part),
    /// The sheets, written to the output once complete.
    Xlsx(Box<Sheets>, &'w mut (dyn Write + Send)),
}

impl Sink<'_> {
    fn header(&mut self, part: Part, cells: &[String]) -> Result<(), LedgerError> {
        match self {
            Sink::Csv(w, only) if *only == part => {
                w.write_record(cells.iter().map(|c| defuse(c).into_owned()))?
            }
            Sink::Csv(..) => {}
            Sink::Xlsx(sheets, _) => sheets.header(part, cells)?,
        }
        Ok(())
    }

    fn row(&mut self, part: Part, cells: &[Cell]) -> Result<(), LedgerError> {
        match self {
            Sink::Csv(w, only) if *only == part => {
                w.write_record(cells.iter().map(|c| c.for_csv().into_owned()))?
            }
            Sink::Csv(..) => {}
            Sink::Xlsx(sheets, _) => sheets.row(part, cells)?,
        }
        Ok(())
    }

    fn finish(self) -> Result<(), LedgerError> {
        match self {
            Sink::Csv(mut w, _) => w.flush()?,
            Sink::Xlsx(sheets, out) => out.write_all(&sheets.finish()?)?,
        }
        Ok(())
    }
}

/// The two sheets of an XLSX ledger: reports, and log entries when the kind has a log.
struct Sheets {
    reports: Worksheet,
    log: Option<Worksheet>,
    rows: [u32; 2],
    bold: CellFormat,
}

impl Sheets {
    fn new(schema: &Schema, lang: Lang) -> Result<Sheets, XlsxError> {
        let mut reports = Worksheet::new();
        reports.set_name(sheet_name(lang.pick(&schema.label)))?;
        let log = match &schema.log {
            Some(log) => {
                let mut sheet = Worksheet::new();
                sheet.set_name(sheet_name(lang.pick(&log.label)))?;
                Some(sheet)
            }
            None => None,
        };
        Ok(Sheets {
            reports,
            log,
            rows: [0, 0],
            bold: CellFormat::new().set_bold(),
        })
    }

    fn sheet(&mut self, part: Part) -> Option<(&mut Worksheet, &mut u32)> {
        match part {
            Part::Reports => Some((&mut self.reports, &mut self.rows[0])),
            Part::Log => self.log.as_mut().map(|s| (s, &mut self.rows[1])),
        }
    }

    fn header(&mut self, part: Part, cells: &[String]) -> Result<(), XlsxError> {
        let bold = self.bold.clone();
        if let Some((sheet, row)) = self.sheet(part) {
            for (col, text) in cells.iter().enumerate() {
                let col = column(col);
                sheet.write_string_with_format(*row, col, text, &bold)?;
                sheet.set_column_width(col, 16)?;
            }
            sheet.set_freeze_panes(1, 0)?;
            *row += 1;
        }
        Ok(())
    }

    /// Every cell as a string cell, never a formula: XLSX keeps text and formulas apart, so
    /// nothing needs defusing here.
    fn row(&mut self, part: Part, cells: &[Cell]) -> Result<(), XlsxError> {
        if let Some((sheet, row)) = self.sheet(part) {
            for (col, cell) in cells.iter().enumerate() {
                let text = cell.as_str();
                if !text.is_empty() {
                    sheet.write_string(*row, column(col), text)?;
                }
            }
            *row += 1;
        }
        Ok(())
    }

    fn finish(self) -> Result<Vec<u8>, XlsxError> {
        let mut book = Workbook::new();
        book.push_worksheet(self.reports);
        if let Some(log) = self.log {
            book.push_worksheet(log);
        }
        book.save_to_buffer()
    }
}

/// A column index as the XLSX writer takes it; a schema has far fewer than 16,384 fields.
fn column(i: usize) -> u16 {
    u16::try_from(i).unwrap_or(u16::MAX)
}

/// A sheet name Excel accepts: at most 31 characters, none of `[]:*?/\`.
fn sheet_name(label: &str) -> String {
    label
        .chars()
        .filter(|c| !"[]:*?/\\".contains(*c))
        .take(31)
        .collect()
}

/// The fields that get a column of their own: attachment fields hold no value in the report's
/// fields (the document keeps attachments apart), so the attachments column lists them instead.
fn columns(fields: &[FieldDef]) -> impl Iterator<Item = &FieldDef> {
    fields.iter().filter(|f| f.ty != FieldType::Attachment)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(ty: &str) -> FieldDef {
        serde_json::from_value(serde_json::json!({
            "id": "f", "label": {"zh": "甲", "en": "F"}, "type": ty
        }))
        .expect("a field definition")
    }

    #[test]
    fn numbers_of_number_fields_stay_numbers_while_text_that_looks_like_one_is_defused() {
        let registry = Registry::builtin();
        let table = Table {
            schema: registry.latest("dispute_check").expect("built-in kind"),
            registry: &registry,
            lang: Lang::Zh,
            clearance: true,
            names: HashMap::new(),
        };
        let csv = |ty: &str, value: Value| table.cell(&field(ty), &value).for_csv().into_owned();
        assert_eq!(csv("decimal", serde_json::json!(-3.5)), "-3.5");
        assert_eq!(csv("integer", serde_json::json!(-2)), "-2");
        assert_eq!(csv("integer", serde_json::json!("-2")), "'-2");
        assert_eq!(csv("text", serde_json::json!("-2")), "'-2");
        assert_eq!(csv("text", serde_json::json!("2-1")), "2-1");
    }
}
