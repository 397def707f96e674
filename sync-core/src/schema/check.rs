//! Consistency checks on a schema definition, so a bad file is refused at load time rather than
//! producing reports nobody can validate, merge or redact correctly.

use std::collections::HashSet;

use super::{Access, Condition, FieldDef, FieldType, Label, Schema, SchemaError};
use crate::attachment::{MAX_SIZE, MEDIA_TYPES};
use crate::conflict::EDITED_AFTER_REMOVAL;
use crate::report::LOG_ENTRY_KEYS;

/// Words in a field id that, in an anonymous kind, mean the field records who the respondent is.
const IDENTIFYING_ID_WORDS: [&str; 10] = [
    "name",
    "surname",
    "phone",
    "mobile",
    "tel",
    "telephone",
    "address",
    "idcard",
    "passport",
    "wechat",
];

/// The same, in a field's Chinese label.
const IDENTIFYING_ZH_WORDS: [&str; 8] = [
    "姓名",
    "名字",
    "电话",
    "手机",
    "身份证",
    "地址",
    "住址",
    "护照",
];

pub(super) fn schema(schema: &Schema) -> Result<(), SchemaError> {
    if schema.kind.is_empty() {
        return Err(SchemaError::EmptyKind);
    }
    id("kind", &schema.kind)?;
    let kind = schema.kind.as_str();
    if schema.version == 0 {
        return Err(SchemaError::InvalidVersion { kind: kind.into() });
    }
    label(kind, &schema.label, || "the kind".into())?;
    fields(kind, &schema.fields, "field")?;

    if let Some(status) = &schema.status_field {
        let def = reference(kind, &schema.fields, status, "status_field")?;
        if def.ty != FieldType::SingleChoice {
            return Err(wrong_reference(kind, "status_field", def, "single_choice"));
        }
    }
    if let Access::Restricted { assigned_field } = &schema.access {
        let context = "access.assigned_field";
        let def = reference(kind, &schema.fields, assigned_field, context)?;
        if def.ty != FieldType::PersonRef {
            return Err(wrong_reference(kind, context, def, "person_ref"));
        }
    }
    if let Some(log) = &schema.log {
        id("log", &log.id)?;
        label(kind, &log.label, || format!("log `{}`", log.id))?;
        if let Some(def) = log
            .fields
            .iter()
            .find(|f| LOG_ENTRY_KEYS.contains(&f.id.as_str()))
        {
            return Err(SchemaError::ReservedLogField {
                kind: kind.into(),
                field: def.id.clone(),
            });
        }
        fields(kind, &log.fields, "log field")?;
    }

    let mut codes = HashSet::new();
    for rule in &schema.rules {
        id("rule", &rule.code)?;
        if rule.code == EDITED_AFTER_REMOVAL {
            return Err(SchemaError::ReservedRule {
                kind: kind.into(),
                code: rule.code.clone(),
            });
        }
        if !codes.insert(rule.code.as_str()) {
            return Err(SchemaError::DuplicateRule {
                kind: kind.into(),
                code: rule.code.clone(),
            });
        }
        if schema.log.is_none() {
            return Err(SchemaError::RuleWithoutLog {
                kind: kind.into(),
                code: rule.code.clone(),
            });
        }
        let context = format!("rule `{}`", rule.code);
        let condition = Condition {
            field: rule.field.clone(),
            any_of: rule.any_of.clone(),
        };
        condition_refs(kind, &schema.fields, &condition, &context)?;
        label(kind, &rule.message, || format!("the message of {context}"))?;
    }

    if schema.anonymous {
        anonymous(schema)?;
    }
    Ok(())
}

/// An anonymous kind must not be able to hold who the respondent is; the canvasser (a person_ref
/// to a user) is fine, because that is the worker, not the respondent.
fn anonymous(schema: &Schema) -> Result<(), SchemaError> {
    let kind = schema.kind.as_str();
    let all = schema
        .fields
        .iter()
        .chain(schema.log.iter().flat_map(|l| l.fields.iter()));
    for def in all {
        if def.ty == FieldType::Attachment {
            return Err(SchemaError::AttachmentInAnonymousKind {
                kind: kind.into(),
                field: def.id.clone(),
            });
        }
        if def.sensitive {
            return Err(SchemaError::SensitiveFieldInAnonymousKind {
                kind: kind.into(),
                field: def.id.clone(),
            });
        }
        let words: Vec<&str> = def.id.split('_').collect();
        let id_word = IDENTIFYING_ID_WORDS
            .iter()
            .find(|w| words.contains(w))
            .map(|w| format!("its id contains `{w}`"));
        let id_number = words
            .windows(2)
            .any(|w| w == ["id", "number"] || w == ["id", "card"])
            .then(|| "its id names an ID number".to_owned());
        let zh_word = IDENTIFYING_ZH_WORDS
            .iter()
            .find(|w| def.label.zh.contains(**w))
            .map(|w| format!("its label contains {w}"));
        if let Some(why) = id_word.or(id_number).or(zh_word) {
            return Err(SchemaError::IdentifyingFieldInAnonymousKind {
                kind: kind.into(),
                field: def.id.clone(),
                why,
            });
        }
    }
    Ok(())
}

/// Checks one scope of fields: the kind's top-level fields, or its log's fields.
fn fields(kind: &str, defs: &[FieldDef], what: &str) -> Result<(), SchemaError> {
    let mut ids = HashSet::new();
    for def in defs {
        id("field", &def.id)?;
        if !ids.insert(def.id.as_str()) {
            return Err(SchemaError::DuplicateField {
                kind: kind.into(),
                field: def.id.clone(),
            });
        }
        label(kind, &def.label, || format!("{what} `{}`", def.id))?;
        if let Some(hint) = &def.hint {
            label(kind, hint, || format!("the hint of {what} `{}`", def.id))?;
        }
        choices(kind, def)?;
        constraints(kind, def)?;
        if let Some(condition) = &def.required_when {
            let context = format!("required_when of {what} `{}`", def.id);
            if condition.field == def.id {
                return Err(SchemaError::InvalidConstraint {
                    kind: kind.into(),
                    field: def.id.clone(),
                    reason: "required_when cannot refer to the field itself".into(),
                });
            }
            condition_refs(kind, defs, condition, &context)?;
        }
    }
    Ok(())
}

fn choices(kind: &str, def: &FieldDef) -> Result<(), SchemaError> {
    if !def.ty.has_choices() {
        if def.choices.is_empty() {
            return Ok(());
        }
        return Err(SchemaError::UnexpectedChoices {
            kind: kind.into(),
            field: def.id.clone(),
            ty: def.ty,
        });
    }
    if def.choices.is_empty() {
        return Err(SchemaError::MissingChoices {
            kind: kind.into(),
            field: def.id.clone(),
            ty: def.ty,
        });
    }
    let mut ids = HashSet::new();
    for choice in &def.choices {
        // Choice ids may start with a digit: the canvass scale is "1" to "5".
        if choice.id.is_empty() || !choice.id.bytes().all(is_id_byte) {
            return Err(SchemaError::InvalidId {
                what: "choice",
                id: choice.id.clone(),
            });
        }
        if !ids.insert(choice.id.as_str()) {
            return Err(SchemaError::DuplicateChoice {
                kind: kind.into(),
                field: def.id.clone(),
                choice: choice.id.clone(),
            });
        }
        label(kind, &choice.label, || {
            format!("choice `{}` of field `{}`", choice.id, def.id)
        })?;
    }
    Ok(())
}

fn constraints(kind: &str, def: &FieldDef) -> Result<(), SchemaError> {
    let invalid = |reason: String| {
        Err(SchemaError::InvalidConstraint {
            kind: kind.into(),
            field: def.id.clone(),
            reason,
        })
    };
    let numeric = matches!(def.ty, FieldType::Integer | FieldType::Decimal);
    for (name, bound) in [("min", def.min), ("max", def.max)] {
        if bound.is_some() && !numeric {
            return invalid(format!("{name} applies to integer and decimal fields only"));
        }
    }
    if let (Some(min), Some(max)) = (def.min, def.max)
        && min > max
    {
        return invalid(format!("min {min} is greater than max {max}"));
    }
    match def.max_len {
        Some(_) if def.ty != FieldType::Text => {
            invalid("max_len applies to text fields only".into())
        }
        Some(0) => invalid("max_len 0 would refuse every value".into()),
        _ => Ok(()),
    }?;
    if let Some(index) = &def.index {
        if def.ty != FieldType::SingleChoice {
            return invalid("only a single_choice question can feed an index".into());
        }
        id("index", index)?;
    }
    attachment(def).map_or(Ok(()), invalid)
}

/// What is wrong with the attachment constraints of `def`, if anything.
fn attachment(def: &FieldDef) -> Option<String> {
    if def.ty != FieldType::Attachment {
        return (!def.media_types.is_empty() || def.max_size.is_some())
            .then(|| "media_types and max_size apply to attachment fields only".into());
    }
    if def.required || def.required_when.is_some() {
        // A draft is saved before its photos exist; requiring them would hold every draft invalid.
        return Some("an attachment field cannot be required".into());
    }
    if def.media_types.is_empty() {
        return Some("an attachment field must list its media_types".into());
    }
    if let Some(unknown) = def
        .media_types
        .iter()
        .find(|m| !MEDIA_TYPES.contains(&m.as_str()))
    {
        return Some(format!(
            "media type {unknown} is not one of {}",
            MEDIA_TYPES.join(", ")
        ));
    }
    match def.max_size {
        None => Some("an attachment field must give its max_size in bytes".into()),
        Some(0) => Some("max_size 0 would refuse every attachment".into()),
        Some(n) if n > MAX_SIZE => Some(format!("max_size may be at most {MAX_SIZE} bytes")),
        Some(_) => None,
    }
}

/// A condition (required_when or a rule) must name a choice field of the same scope and list
/// only its declared choices, so that a typo cannot silently make it never hold.
fn condition_refs(
    kind: &str,
    defs: &[FieldDef],
    condition: &Condition,
    context: &str,
) -> Result<(), SchemaError> {
    let target = reference(kind, defs, &condition.field, context)?;
    if !target.ty.has_choices() {
        return Err(wrong_reference(
            kind,
            context,
            target,
            "single_choice or multiple_choice",
        ));
    }
    if condition.any_of.is_empty() {
        return Err(SchemaError::EmptyAnyOf {
            kind: kind.into(),
            context: context.into(),
        });
    }
    if let Some(missing) = condition.any_of.iter().find(|c| target.choice(c).is_none()) {
        return Err(SchemaError::UnknownChoiceReference {
            kind: kind.into(),
            context: context.into(),
            field: target.id.clone(),
            choice: missing.clone(),
        });
    }
    Ok(())
}

fn reference<'a>(
    kind: &str,
    defs: &'a [FieldDef],
    field: &str,
    context: &str,
) -> Result<&'a FieldDef, SchemaError> {
    defs.iter()
        .find(|d| d.id == field)
        .ok_or_else(|| SchemaError::UnknownFieldReference {
            kind: kind.into(),
            context: context.into(),
            field: field.into(),
        })
}

fn wrong_reference(
    kind: &str,
    context: &str,
    def: &FieldDef,
    expected: &'static str,
) -> SchemaError {
    SchemaError::WrongReferenceType {
        kind: kind.into(),
        context: context.into(),
        field: def.id.clone(),
        actual: def.ty,
        expected,
    }
}

/// Ids become JSON keys, automerge map keys, problem paths and spreadsheet columns, so they stay
/// plain: lowercase ASCII, digits and underscores, starting with a letter.
fn id(what: &'static str, id: &str) -> Result<(), SchemaError> {
    let starts_with_letter = id.bytes().next().is_some_and(|b| b.is_ascii_lowercase());
    if starts_with_letter && id.bytes().all(is_id_byte) {
        Ok(())
    } else {
        Err(SchemaError::InvalidId {
            what,
            id: id.into(),
        })
    }
}

fn is_id_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'
}

/// The Chinese label is what users read, so it must be there; English may be left empty.
fn label(kind: &str, label: &Label, what: impl FnOnce() -> String) -> Result<(), SchemaError> {
    if label.zh.trim().is_empty() {
        return Err(SchemaError::MissingLabel {
            kind: kind.into(),
            what: what(),
        });
    }
    Ok(())
}
