//! New versions of the built-in kinds: any mix of the changes a version may make breaks nothing,
//! and any one change it may not make is named.

use gridsync_core::schema::{
    Breaking, Choice, FieldType, Label, Registry, Schema, breaking_changes,
};
use proptest::prelude::*;

const KINDS: [&str; 3] = ["dispute_check", "drug_control_case", "satisfaction_canvass"];

fn builtin(kind: &str) -> Schema {
    Registry::builtin().latest(kind).expect("built in").clone()
}

fn label(s: &str) -> Label {
    Label {
        zh: s.into(),
        en: s.into(),
    }
}

/// A change a new version may make, applied to the `n`th field (modulo their number).
#[derive(Debug, Clone)]
enum Allowed {
    AddField,
    AddChoice(usize),
    Relabel(usize),
    MakeOptional(usize),
}

/// A change a new version may not make.
#[derive(Debug, Clone)]
enum Forbidden {
    RemoveField(usize),
    ChangeType(usize),
    RemoveChoice(usize),
}

fn allowed() -> impl Strategy<Value = Allowed> {
    prop_oneof![
        Just(Allowed::AddField),
        any::<usize>().prop_map(Allowed::AddChoice),
        any::<usize>().prop_map(Allowed::Relabel),
        any::<usize>().prop_map(Allowed::MakeOptional),
    ]
}

fn forbidden() -> impl Strategy<Value = Forbidden> {
    prop_oneof![
        any::<usize>().prop_map(Forbidden::RemoveField),
        any::<usize>().prop_map(Forbidden::ChangeType),
        any::<usize>().prop_map(Forbidden::RemoveChoice),
    ]
}

fn apply_allowed(schema: &mut Schema, change: &Allowed, serial: usize) {
    let n = schema.fields.len();
    match *change {
        Allowed::AddField => {
            let mut field = schema.fields[0].clone();
            field.id = format!("added_{serial}");
            field.ty = FieldType::Text;
            field.choices.clear();
            field.required = false;
            field.required_when = None;
            field.index = None;
            field.min = None;
            field.max = None;
            field.max_len = Some(100);
            field.media_types.clear();
            field.max_size = None;
            schema.fields.push(field);
        }
        Allowed::AddChoice(i) => {
            let with_choices = schema.fields.iter().filter(|f| f.ty.has_choices()).count();
            if let Some(field) = schema
                .fields
                .iter_mut()
                .filter(|f| f.ty.has_choices())
                .nth(i % with_choices.max(1))
            {
                field.choices.push(Choice {
                    id: format!("added_{serial}"),
                    label: label("新选项"),
                });
            }
        }
        Allowed::Relabel(i) => schema.fields[i % n].label = label(&format!("新标签{serial}")),
        Allowed::MakeOptional(i) => {
            schema.fields[i % n].required = false;
            schema.fields[i % n].required_when = None;
        }
    }
}

/// Applies `change` to one of the first `n` fields (those of the earlier version, which added
/// fields follow) and says whether it found something to change.
fn apply_forbidden(schema: &mut Schema, n: usize, change: &Forbidden) -> bool {
    match *change {
        Forbidden::RemoveField(i) => {
            schema.fields.remove(i % n);
            true
        }
        Forbidden::ChangeType(i) => {
            let field = &mut schema.fields[i % n];
            field.ty = if field.ty == FieldType::Text {
                FieldType::Integer
            } else {
                FieldType::Text
            };
            true
        }
        Forbidden::RemoveChoice(i) => {
            let with_choices = schema.fields[..n]
                .iter()
                .filter(|f| !f.choices.is_empty())
                .count();
            with_choices > 0
                && schema.fields[..n]
                    .iter_mut()
                    .filter(|f| !f.choices.is_empty())
                    .nth(i % with_choices)
                    // The first: choices a new version added follow the earlier ones.
                    .map(|f| f.choices.remove(0))
                    .is_some()
        }
    }
}

proptest! {
    #[test]
    fn allowed_changes_break_nothing_and_one_forbidden_change_is_named(
        kind in 0..KINDS.len(),
        changes in prop::collection::vec(allowed(), 0..12),
        bad in forbidden(),
    ) {
        let old = builtin(KINDS[kind]);
        let mut new = Schema { version: old.version + 1, ..old.clone() };
        for (serial, change) in changes.iter().enumerate() {
            apply_allowed(&mut new, change, serial);
        }
        prop_assert_eq!(breaking_changes([&old], &new), Vec::<Breaking>::new());
        if apply_forbidden(&mut new, old.fields.len(), &bad) {
            let found = breaking_changes([&old], &new);
            prop_assert_eq!(found.len(), 1, "{:?}", found);
            let expected = match bad {
                Forbidden::RemoveField(_) => "field_removed",
                Forbidden::ChangeType(_) => "type_changed",
                Forbidden::RemoveChoice(_) => "choice_removed",
            };
            prop_assert_eq!(found[0].code(), expected);
        }
    }
}
