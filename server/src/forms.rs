//! Forms as an office writes them, a schema JSON file or an XLSForm-like workbook, read into one
//! checked [`Schema`] so that both formats are judged by the same rules.

pub mod xlsx;

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use gridsync_core::schema::{Breaking, Registry, Schema, SchemaError, breaking_changes};

/// The example form kept in the repository (`examples/forms/anti_fraud_visit.xlsx`, 反诈宣传入户):
/// the demo publishes it, and the tests publish it as an office would.
pub const EXAMPLE_XLSX: &[u8] = include_bytes!("../../examples/forms/anti_fraud_visit.xlsx");

/// The largest form file read, in bytes. Real forms are tens of kilobytes; the bound keeps a
/// wrong file (a video, a database) from being read into memory whole.
pub const MAX_BYTES: u64 = 8 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum FormError {
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: the file is larger than a form can be ({MAX_BYTES} bytes)", path.display())]
    TooLarge { path: PathBuf },
    #[error("{}: a form is a .json schema or an .xlsx workbook", path.display())]
    UnknownFormat { path: PathBuf },
    #[error(transparent)]
    Json(#[from] SchemaError),
    #[error(transparent)]
    Xlsx(#[from] xlsx::XlsxError),
    /// A new version that would change what reports of earlier versions mean.
    #[error(
        "version {version} of {kind} would change what its earlier reports mean:{}",
        changes.iter().map(|c| format!("\n  {c}")).collect::<String>()
    )]
    Breaking {
        kind: String,
        version: u32,
        changes: Vec<Breaking>,
    },
}

/// Checks `schema` against the versions of its kind that `known` holds, by the version rules
/// ([`breaking_changes`]). A schema equal to one of them is that version, not a new one.
pub fn check_versions(schema: &Schema, known: &Registry) -> Result<(), FormError> {
    let earlier: Vec<&Schema> = known.all().filter(|s| s.kind == schema.kind).collect();
    if earlier.contains(&schema) {
        return Ok(());
    }
    let changes = breaking_changes(earlier, schema);
    if changes.is_empty() {
        Ok(())
    } else {
        Err(FormError::Breaking {
            kind: schema.kind.clone(),
            version: schema.version,
            changes,
        })
    }
}

/// The two ways to write a form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Xlsx,
}

impl Format {
    /// The `source` the registry records.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Xlsx => "xlsx",
        }
    }
}

/// Reads and checks the form at `path`; its extension, .json or .xlsx, decides the format.
pub fn load(path: &Path) -> Result<(Schema, Format), FormError> {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let format = match extension.as_deref() {
        Some("json") => Format::Json,
        Some("xlsx") => Format::Xlsx,
        _ => {
            return Err(FormError::UnknownFormat {
                path: path.to_owned(),
            });
        }
    };
    Ok((parse(&read_bounded(path)?, format)?, format))
}

/// Reads and checks a form from its bytes.
pub fn parse(bytes: &[u8], format: Format) -> Result<Schema, FormError> {
    match format {
        Format::Json => {
            let text = std::str::from_utf8(bytes).map_err(|e| {
                SchemaError::InvalidJson(format!("the file is not UTF-8 text ({e})"))
            })?;
            Ok(Schema::from_json(text)?)
        }
        Format::Xlsx => Ok(xlsx::read(bytes)?),
    }
}

/// One problem of a form, for an answer that lists them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct FormProblem {
    /// Where, in a workbook: `sheet!cell (column header)`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub place: Option<String>,
    /// `form` (the workbook), `schema` (the definition), or a version rule's code
    /// (`field_removed`, `type_changed`, …).
    pub code: String,
    pub message: String,
}

impl FormError {
    /// Each problem on its own, with its place in the workbook when it has one.
    pub fn problems(&self) -> Vec<FormProblem> {
        let one = |code: &str, message: String| FormProblem {
            place: None,
            code: code.to_owned(),
            message,
        };
        match self {
            FormError::Xlsx(xlsx::XlsxError::Problems(problems)) => problems
                .iter()
                .map(|p| FormProblem {
                    place: Some(p.place.to_string()),
                    code: "form".to_owned(),
                    message: p.message.clone(),
                })
                .collect(),
            FormError::Json(e) => vec![one("schema", e.to_string())],
            FormError::Breaking { changes, .. } => changes
                .iter()
                .map(|c| one(c.code(), c.to_string()))
                .collect(),
            other => vec![one("form", other.to_string())],
        }
    }
}

/// Reads at most one byte more than [`MAX_BYTES`], so a file that grows while it is read is
/// still refused rather than read whole.
fn read_bounded(path: &Path) -> Result<Vec<u8>, FormError> {
    let failed = |source| FormError::Read {
        path: path.to_owned(),
        source,
    };
    let mut bytes = Vec::new();
    File::open(path)
        .map_err(failed)?
        .take(MAX_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(failed)?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(FormError::TooLarge {
            path: path.to_owned(),
        });
    }
    Ok(bytes)
}
