//! `gridsync schema`: `check` judges a form file without a database (its own consistency, and,
//! for a new version of a built-in kind, the version rules) and shows what it means, as a short
//! summary or as the schema JSON it would publish; `publish`, `retire` and `list` manage the
//! database's schema registry, through the same rules and audit as the API.

use std::fmt::Write;
use std::path::Path;

use gridsync_core::schema::{Access, FieldDef, Label, Registry, Schema};

use super::{Error, Result, say};
use crate::catalogue::{self, Actor};
use crate::forms;
use crate::store::{SchemaState, Store};

/// Prints a summary of the form at `file`, or its schema JSON; a form with problems is an error
/// listing them all, and so is a new version of a built-in kind that breaks the version rules.
pub fn check(file: &Path, print_json: bool) -> Result<()> {
    let (schema, _) = forms::load(file)?;
    forms::check_versions(&schema, &Registry::builtin())?;
    if print_json {
        let json = serde_json::to_string_pretty(&schema)
            .map_err(|e| Error::Invalid(format!("the schema could not be printed: {e}")))?;
        say(&json);
    } else {
        say(summary(&schema).trim_end());
    }
    Ok(())
}

/// The command line has no account: the audit log says it was the command line.
const ACTOR: Actor<'static> = Actor {
    user: None,
    device: None,
    via: "command line",
};

/// Keeps and publishes the form at `file`; publishing the very version that is published
/// already changes nothing.
pub async fn publish(store: &dyn Store, file: &Path) -> Result<()> {
    let (schema, format) = forms::load(file)?;
    let (kind, version) = (schema.kind.as_str(), schema.version);
    if let Some(row) = store.stored_schema(kind, version).await?
        && row.state != SchemaState::Draft
        && row.schema()? == schema
    {
        say(&format!(
            "{kind} version {version} is {} already",
            row.state.as_str()
        ));
        return Ok(());
    }
    catalogue::save_draft(store, &schema, format.as_str(), ACTOR).await?;
    catalogue::publish(store, kind, version, ACTOR).await?;
    say(&format!(
        "published {kind} version {version} ({}): phones get it at their next sync",
        schema.label.zh
    ));
    Ok(())
}

/// Retires the version `form` names: a form file, or a kind id with `version`.
pub async fn retire(store: &dyn Store, form: &str, version: Option<u32>) -> Result<()> {
    let (kind, version) = match version {
        Some(version) => (form.to_owned(), version),
        None if Path::new(form).is_file() => {
            let (schema, _) = forms::load(Path::new(form))?;
            (schema.kind, schema.version)
        }
        None => {
            return Err(Error::Invalid(format!(
                "`{form}` is not a form file; to name a kind, give its version too: \
                 gridsync schema retire {form} --version N"
            )));
        }
    };
    catalogue::retire(store, &kind, version, ACTOR).await?;
    say(&format!(
        "retired {kind} version {version}: no new reports use it; its reports stay readable"
    ));
    Ok(())
}

/// Prints the registry, one version per line.
pub async fn list(store: &dyn Store) -> Result<()> {
    let mut out = String::new();
    for row in store.schemas().await? {
        let title = row.schema().map(|s| label(&s.label)).unwrap_or_default();
        let _ = writeln!(
            out,
            "{:<28} v{:<3} {:<9} {:<7} {title}",
            row.kind,
            row.version,
            row.state.as_str(),
            row.source
        );
    }
    say(out.trim_end());
    Ok(())
}

/// The form as an office reads it: the kind, who may see it, then each field.
fn summary(schema: &Schema) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} version {}: {}",
        schema.kind,
        schema.version,
        label(&schema.label)
    );
    let access = match &schema.access {
        Access::Scope if schema.anonymous => "anonymous".to_owned(),
        Access::Scope => "scope".to_owned(),
        Access::Restricted { assigned_field } => format!("restricted to `{assigned_field}`"),
    };
    let _ = writeln!(out, "access: {access}");
    if let Some(status) = &schema.status_field {
        let _ = writeln!(out, "status field: {status}");
    }
    fields(&mut out, &schema.fields, "");
    if let Some(log) = &schema.log {
        let _ = writeln!(out, "log {}: {}", log.id, label(&log.label));
        fields(&mut out, &log.fields, "  ");
    }
    for rule in &schema.rules {
        let _ = writeln!(
            out,
            "rule {}: {} in {}",
            rule.code,
            rule.field,
            rule.any_of.join(", ")
        );
    }
    out
}

fn fields(out: &mut String, defs: &[FieldDef], indent: &str) {
    for def in defs {
        let mut traits = vec![def.ty.to_string()];
        if def.required {
            traits.push("required".into());
        }
        if let Some(when) = &def.required_when {
            traits.push(format!(
                "required when {} is {}",
                when.field,
                when.any_of.join(" or ")
            ));
        }
        if def.sensitive {
            traits.push("sensitive".into());
        }
        let _ = writeln!(
            out,
            "{indent}- {} ({}): {}",
            def.id,
            traits.join(", "),
            label(&def.label)
        );
        if !def.choices.is_empty() {
            let choices: Vec<String> = def
                .choices
                .iter()
                .map(|c| format!("{} {}", c.id, c.label.zh))
                .collect();
            let _ = writeln!(out, "{indent}    choices: {}", choices.join(", "));
        }
    }
}

fn label(label: &Label) -> String {
    if label.en.is_empty() {
        label.zh.clone()
    } else {
        format!("{} / {}", label.zh, label.en)
    }
}
