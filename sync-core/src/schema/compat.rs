//! Which changes a new version of a kind may make. A report keeps the version it was created
//! with, and ledgers, statistics and phones read a kind's reports across its versions: so a new
//! version may add fields and choices, relabel, or make a field optional, but a field or choice
//! id, once used, keeps its meaning, and the kind keeps who may see it.

use std::fmt;

use super::{FieldDef, FieldType, Schema};

/// A change a new version may not make: reports stored under the earlier `version` would no
/// longer read as they were written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Breaking {
    /// The new version is of another kind.
    OtherKind { version: u32, kind: String },
    /// The new version's number is not above every earlier one.
    NotNewer { version: u32 },
    /// A field (`field` names log fields as `log.field`) is gone.
    FieldRemoved { version: u32, field: String },
    TypeChanged {
        version: u32,
        field: String,
        was: FieldType,
        now: FieldType,
    },
    ChoiceRemoved {
        version: u32,
        field: String,
        choice: String,
    },
    /// The log section is gone or renamed.
    LogRemoved { version: u32, log: String },
    /// Who may see the kind's reports changed (ordinary, restricted to an assignee field).
    AccessChanged { version: u32 },
    /// Whether the kind's respondents stay anonymous changed.
    AnonymityChanged { version: u32 },
}

impl Breaking {
    /// A stable code for each kind of breaking change, for the API.
    pub fn code(&self) -> &'static str {
        match self {
            Breaking::OtherKind { .. } => "other_kind",
            Breaking::NotNewer { .. } => "not_newer",
            Breaking::FieldRemoved { .. } => "field_removed",
            Breaking::TypeChanged { .. } => "type_changed",
            Breaking::ChoiceRemoved { .. } => "choice_removed",
            Breaking::LogRemoved { .. } => "log_removed",
            Breaking::AccessChanged { .. } => "access_changed",
            Breaking::AnonymityChanged { .. } => "anonymity_changed",
        }
    }
}

impl fmt::Display for Breaking {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Breaking::OtherKind { version, kind } => {
                write!(f, "version {version} is of kind `{kind}`, not this one")
            }
            Breaking::NotNewer { version } => {
                write!(
                    f,
                    "version {version} exists: a new version must be numbered above it"
                )
            }
            Breaking::FieldRemoved { version, field } => {
                write!(f, "field `{field}` of version {version} is missing")
            }
            Breaking::TypeChanged {
                version,
                field,
                was,
                now,
            } => write!(
                f,
                "field `{field}` is {was} in version {version} and cannot become {now}"
            ),
            Breaking::ChoiceRemoved {
                version,
                field,
                choice,
            } => write!(
                f,
                "choice `{choice}` of field `{field}` in version {version} is missing"
            ),
            Breaking::LogRemoved { version, log } => {
                write!(f, "log section `{log}` of version {version} is missing")
            }
            Breaking::AccessChanged { version } => {
                write!(f, "who may see the reports differs from version {version}")
            }
            Breaking::AnonymityChanged { version } => {
                write!(
                    f,
                    "anonymity of the respondents differs from version {version}"
                )
            }
        }
    }
}

/// Every breaking change of `new` against each of the kind's `earlier` versions, earliest first.
/// Comparing with every earlier version, not only the newest, keeps an id from coming back with
/// another meaning.
pub fn breaking_changes<'a>(
    earlier: impl IntoIterator<Item = &'a Schema>,
    new: &Schema,
) -> Vec<Breaking> {
    let mut found = Vec::new();
    for old in earlier {
        let version = old.version;
        if old.kind != new.kind {
            found.push(Breaking::OtherKind {
                version,
                kind: new.kind.clone(),
            });
            continue;
        }
        if new.version <= version {
            found.push(Breaking::NotNewer { version });
        }
        if old.access != new.access {
            found.push(Breaking::AccessChanged { version });
        }
        if old.anonymous != new.anonymous {
            found.push(Breaking::AnonymityChanged { version });
        }
        compare_fields(version, "", &old.fields, &new.fields, &mut found);
        if let Some(old_log) = &old.log {
            match &new.log {
                Some(new_log) if new_log.id == old_log.id => compare_fields(
                    version,
                    &format!("{}.", old_log.id),
                    &old_log.fields,
                    &new_log.fields,
                    &mut found,
                ),
                _ => found.push(Breaking::LogRemoved {
                    version,
                    log: old_log.id.clone(),
                }),
            }
        }
    }
    found
}

/// The breaking changes among one scope's fields (the report's, or a log entry's, whose ids
/// `prefix` qualifies).
fn compare_fields(
    version: u32,
    prefix: &str,
    old: &[FieldDef],
    new: &[FieldDef],
    found: &mut Vec<Breaking>,
) {
    for was in old {
        let field = format!("{prefix}{}", was.id);
        let Some(now) = new.iter().find(|f| f.id == was.id) else {
            found.push(Breaking::FieldRemoved { version, field });
            continue;
        };
        if now.ty != was.ty {
            found.push(Breaking::TypeChanged {
                version,
                field,
                was: was.ty,
                now: now.ty,
            });
            continue;
        }
        for choice in &was.choices {
            if now.choice(&choice.id).is_none() {
                found.push(Breaking::ChoiceRemoved {
                    version,
                    field: field.clone(),
                    choice: choice.id.clone(),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Access, Choice, Label, Registry};

    fn builtin(kind: &str) -> Schema {
        Registry::builtin()
            .latest(kind)
            .unwrap_or_else(|| panic!("{kind} is built in"))
            .clone()
    }

    fn label(s: &str) -> Label {
        Label {
            zh: s.into(),
            en: s.into(),
        }
    }

    fn next(old: &Schema) -> Schema {
        Schema {
            version: old.version + 1,
            ..old.clone()
        }
    }

    #[test]
    fn adding_fields_and_choices_relabelling_and_making_optional_break_nothing() {
        let old = builtin("dispute_check");
        let mut new = next(&old);
        new.label = label("矛盾纠纷排查（2027年版）");
        new.fields.push(FieldDef {
            hint: None,
            id: "hotline_ticket".into(),
            label: label("12345工单号"),
            ..new.fields.iter().find(|f| f.id == "place").unwrap().clone()
        });
        let category = new.fields.iter_mut().find(|f| f.id == "category").unwrap();
        category.choices.push(Choice {
            id: "online_fraud".into(),
            label: label("网络诈骗"),
        });
        category.label = label("类别");
        for f in &mut new.fields {
            f.required = false;
        }
        assert_eq!(breaking_changes([&old], &new), Vec::new());
    }

    #[test]
    fn each_breaking_change_is_named_with_the_version_it_breaks() {
        let old = builtin("dispute_check");
        let mut new = next(&old);
        new.fields.retain(|f| f.id != "place");
        new.fields
            .iter_mut()
            .find(|f| f.id == "found_on")
            .unwrap()
            .ty = FieldType::Text;
        new.fields
            .iter_mut()
            .find(|f| f.id == "risk_level")
            .unwrap()
            .choices
            .retain(|c| c.id != "high");
        let log = old.log.as_ref().expect("dispute checks keep a log");
        let changes = breaking_changes([&old], &new);
        assert_eq!(
            changes,
            vec![
                Breaking::FieldRemoved {
                    version: 1,
                    field: "place".into()
                },
                Breaking::TypeChanged {
                    version: 1,
                    field: "found_on".into(),
                    was: FieldType::Date,
                    now: FieldType::Text
                },
                Breaking::ChoiceRemoved {
                    version: 1,
                    field: "risk_level".into(),
                    choice: "high".into()
                },
            ]
        );
        let mut no_log = next(&old);
        no_log.log = None;
        assert_eq!(
            breaking_changes([&old], &no_log),
            vec![Breaking::LogRemoved {
                version: 1,
                log: log.id.clone()
            }]
        );
        let message = changes[1].to_string();
        assert!(
            message.contains("found_on") && message.contains("version 1"),
            "{message}"
        );
    }

    #[test]
    fn a_log_field_is_compared_inside_its_section() {
        let old = builtin("dispute_check");
        let mut new = next(&old);
        let log = new.log.as_mut().expect("a log");
        let gone = log.fields.remove(0);
        let log = log.id.clone();
        assert_eq!(
            breaking_changes([&old], &new),
            vec![Breaking::FieldRemoved {
                version: 1,
                field: format!("{log}.{}", gone.id)
            }]
        );
    }

    #[test]
    fn the_kind_keeps_who_may_see_it_and_its_anonymity() {
        let case = builtin("drug_control_case");
        let mut open = next(&case);
        open.access = Access::Scope;
        assert_eq!(
            breaking_changes([&case], &open),
            vec![Breaking::AccessChanged { version: 1 }]
        );
        let canvass = builtin("satisfaction_canvass");
        let mut named = next(&canvass);
        named.anonymous = !canvass.anonymous;
        assert_eq!(
            breaking_changes([&canvass], &named),
            vec![Breaking::AnonymityChanged { version: 1 }]
        );
    }

    #[test]
    fn an_id_dropped_once_cannot_come_back_with_another_type() {
        let v1 = builtin("dispute_check");
        let mut v2 = next(&v1);
        v2.fields.retain(|f| f.id != "place");
        let mut v3 = next(&v2);
        let mut place = v1.field("place").unwrap().clone();
        place.ty = FieldType::Location;
        v3.fields.push(place);
        let changes = breaking_changes([&v1, &v2], &v3);
        assert!(
            changes.contains(&Breaking::TypeChanged {
                version: 1,
                field: "place".into(),
                was: FieldType::Text,
                now: FieldType::Location
            }),
            "{changes:?}"
        );
    }

    #[test]
    fn a_version_must_be_newer_and_of_the_same_kind() {
        let old = builtin("dispute_check");
        assert_eq!(
            breaking_changes([&old], &old),
            vec![Breaking::NotNewer { version: 1 }]
        );
        let other = next(&builtin("satisfaction_canvass"));
        assert_eq!(
            breaking_changes([&old], &other),
            vec![Breaking::OtherKind {
                version: 1,
                kind: "satisfaction_canvass".into()
            }]
        );
    }
}
