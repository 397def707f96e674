//! `gridsync schema check`: judges a form file without a database (its own consistency, and, for
//! a new version of a built-in kind, the version rules) and shows what it means, as a short
//! summary or as the schema JSON it would publish.

use std::fmt::Write;
use std::path::Path;

use gridsync_core::schema::{Access, FieldDef, Label, Registry, Schema};

use super::{Error, Result, say};
use crate::forms;

/// Prints a summary of the form at `file`, or its schema JSON; a form with problems is an error
/// listing them all, and so is a new version of a built-in kind that breaks the version rules.
pub fn check(file: &Path, print_json: bool) -> Result<()> {
    let schema = forms::load(file)?;
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
