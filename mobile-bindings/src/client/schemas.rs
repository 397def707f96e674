//! The report kinds the phone knows, for drawing forms, and validation: of a whole report, of
//! a value while the user types, and of a value about to be written.

use gridsync_core::DocId;
use gridsync_core::schema::{ProblemCode, Schema};
use gridsync_core::task;
use serde_json::Value as Json;

use super::{Client, parse_id};
use crate::error::{ClientError, Result};
use crate::model::{self, FieldValue, KindSchema, ValidationProblem};

impl Client {
    /// The latest version of each kind that new reports may use (retired versions are not).
    /// Task kinds are left out: the office sets tasks, a phone files no new one.
    pub fn schemas(&self) -> Vec<KindSchema> {
        self.registry()
            .kinds()
            .filter(|s| !task::is_task_kind(&s.kind))
            .map(model::kind_schema)
            .collect()
    }

    pub fn schema(&self, kind: &str) -> Result<KindSchema> {
        Ok(model::kind_schema(&self.schema_of(kind)?))
    }

    /// The version of `kind` that new reports use.
    pub(super) fn schema_of(&self, kind: &str) -> Result<Schema> {
        self.registry()
            .latest(kind)
            .cloned()
            .ok_or_else(|| ClientError::NotFound(format!("no report kind `{kind}`")))
    }

    pub(super) fn schema_of_doc(&self, id: &DocId) -> Result<Schema> {
        let meta = {
            let mut state = self.lock();
            let local = state.local(id)?;
            local.doc.meta()?
        };
        self.registry()
            .get(&meta.kind, meta.schema_version)
            .cloned()
            .ok_or_else(|| {
                ClientError::NotFound(format!(
                    "this phone has no form for {} version {}; sync to fetch it, or update the app",
                    meta.kind, meta.schema_version
                ))
            })
    }

    /// Every problem of a report against its schema (empty when it is complete and valid).
    pub fn validate_report(&self, id: &str) -> Result<Vec<ValidationProblem>> {
        let id = parse_id(id)?;
        let projection = {
            let mut state = self.lock();
            let local = state.local(&id)?;
            local.doc.to_json()?
        };
        Ok(self
            .registry()
            .validate(&projection)
            .iter()
            .map(model::problem)
            .collect())
    }

    /// The problems of one value for a field of `kind` (a log field when `log` is true), for a
    /// form to show while the user types.
    pub fn validate_value(
        &self,
        kind: &str,
        field: &str,
        log: bool,
        value: Option<FieldValue>,
    ) -> Result<Vec<ValidationProblem>> {
        let schema = self.schema_of(kind)?;
        let json = value
            .as_ref()
            .map(model::value_to_json)
            .transpose()?
            .unwrap_or(Json::Null);
        let problems = if log {
            schema.validate_log_field(field, &json)
        } else {
            schema.validate_field(field, &json)
        };
        Ok(problems.iter().map(model::problem).collect())
    }
}

/// Refuses a value with problems, except a missing required value: drafts may be incomplete.
pub(super) fn check_value(problems: Vec<gridsync_core::schema::Problem>) -> Result<()> {
    let serious: Vec<String> = problems
        .iter()
        .filter(|p| p.code != ProblemCode::Required)
        .map(ToString::to_string)
        .collect();
    if serious.is_empty() {
        return Ok(());
    }
    if problems.iter().any(|p| p.code == ProblemCode::UnknownField) {
        return Err(ClientError::NotFound(serious.join("; ")));
    }
    Err(ClientError::Validation(serious.join("; ")))
}
