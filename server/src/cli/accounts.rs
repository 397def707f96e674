//! `gridsync user …` and `gridsync device …`: the account chores of a district's IT person,
//! with the same checks and audit entries as the admin endpoints.

use serde_json::json;

use super::{DeviceCommand, Error, Result, UserCommand, say};
use crate::auth::{password, secret};
use crate::clock;
use crate::http::users::{MAX_DISPLAY_NAME_CHARS, check_password, check_placement, check_username};
use crate::http::validate::check_name;
use crate::store::{AuditEntry, DeviceState, Store, User, UserPatch};

/// The new user's password, from the environment only: a flag would show it to every user of
/// the machine in the process list.
pub const NEW_PASSWORD_ENV: &str = "GRIDSYNC_NEW_PASSWORD";

pub async fn user(store: &dyn Store, command: UserCommand) -> Result<()> {
    match command {
        UserCommand::Add {
            username,
            role,
            org,
            name,
        } => {
            let display_name = name.unwrap_or_else(|| username.clone());
            check_username(&username).map_err(invalid)?;
            check_name("display name", &display_name, MAX_DISPLAY_NAME_CHARS).map_err(invalid)?;
            check_placement(store, role, &org).await.map_err(invalid)?;
            let (password, generated) = new_password()?;
            let user = User {
                id: uuid::Uuid::new_v4().to_string(),
                username,
                display_name,
                password_hash: password::hash(password.clone()).await?,
                role,
                org_unit_id: org,
                disabled: false,
                created_at: clock::now(),
            };
            store.insert_user(&user).await?;
            audit(
                store,
                "user_create",
                json!({
                    "user": user.id,
                    "username": user.username,
                    "role": user.role,
                    "org_unit_id": user.org_unit_id,
                }),
            )
            .await?;
            say(&format!(
                "created {} ({}, {})",
                user.username, user.role, user.org_unit_id
            ));
            show_generated(generated, &password);
        }
        UserCommand::Passwd { username } => {
            let user = find_user(store, &username).await?;
            let (password, generated) = new_password()?;
            let patch = UserPatch {
                password_hash: Some(password::hash(password.clone()).await?),
                ..UserPatch::default()
            };
            let updated = store
                .update_user(&user.id, &patch, clock::now())
                .await?
                .ok_or_else(|| Error::Invalid(format!("there is no user {username}")))?;
            audit(
                store,
                "user_update",
                json!({
                    "user": user.id,
                    "changed": ["password"],
                    "ended_sessions": updated.ended_sessions,
                }),
            )
            .await?;
            say(&format!(
                "set the password of {username}; sessions ended: {}",
                updated.ended_sessions
            ));
            show_generated(generated, &password);
        }
        UserCommand::List => {
            let users = store.users().await?;
            say(&format!(
                "{:<24} {:<22} {:<20} {:<9} id",
                "username", "role", "org unit", "disabled"
            ));
            for u in users {
                say(&format!(
                    "{:<24} {:<22} {:<20} {:<9} {}",
                    u.username,
                    u.role.as_str(),
                    u.org_unit_id,
                    if u.disabled { "yes" } else { "no" },
                    u.id
                ));
            }
        }
        UserCommand::Disable { username } => {
            let user = find_user(store, &username).await?;
            let patch = UserPatch {
                disabled: Some(true),
                ..UserPatch::default()
            };
            let updated = store
                .update_user(&user.id, &patch, clock::now())
                .await?
                .ok_or_else(|| Error::Invalid(format!("there is no user {username}")))?;
            audit(
                store,
                "user_update",
                json!({
                    "user": user.id,
                    "changed": ["disabled"],
                    "disabled": true,
                    "retiring_devices": updated.retiring_devices,
                }),
            )
            .await?;
            say(&format!(
                "disabled {username}; devices delivering what they hold, then wiping: {}",
                if updated.retiring_devices.is_empty() {
                    "none".to_owned()
                } else {
                    updated.retiring_devices.join(", ")
                }
            ));
        }
    }
    Ok(())
}

pub async fn device(store: &dyn Store, command: DeviceCommand) -> Result<()> {
    match command {
        DeviceCommand::List { user } => {
            let devices = match user {
                Some(username) => {
                    let user = find_user(store, &username).await?;
                    store.devices_of_user(&user.id).await?
                }
                None => store.devices().await?,
            };
            let users = store.users().await?;
            say(&format!(
                "{:<38} {:<24} {:<24} {:<20} {:<8} state",
                "id", "user", "name", "last seen", "unsent"
            ));
            for d in devices {
                let username = users
                    .iter()
                    .find(|u| u.id == d.user_id)
                    .map_or(d.user_id.as_str(), |u| u.username.as_str());
                // A phone chose its id and name: escape what would steer the terminal.
                say(&format!(
                    "{:<38} {:<24} {:<24} {:<20} {:<8} {}",
                    d.id.escape_debug().to_string(),
                    username,
                    d.name.escape_debug().to_string(),
                    gridsync_core::time::rfc3339(d.last_seen_at),
                    d.pending_changes
                        .map_or_else(|| "?".to_owned(), |n| n.to_string()),
                    DeviceState::of(&d).describe(),
                ));
            }
        }
        DeviceCommand::Revoke { id } => {
            if !store.revoke_device(&id, clock::now()).await? {
                return Err(Error::Invalid(format!(
                    "there is no device {id}: `gridsync device list` shows them"
                )));
            }
            audit(store, "device_revoke", json!({ "device": id })).await?;
            say(&format!(
                "revoked {id}: it deletes its local data at its next sync"
            ));
        }
        DeviceCommand::Retire { id } => {
            if !store.retire_device(&id, clock::now()).await? {
                return Err(Error::Invalid(format!(
                    "there is no live device {id}: `gridsync device list` shows them"
                )));
            }
            audit(store, "device_retire", json!({ "device": id })).await?;
            say(&format!(
                "retiring {id}: at its next sync it delivers what it holds, then deletes its data"
            ));
        }
    }
    Ok(())
}

/// The password of `GRIDSYNC_NEW_PASSWORD` if set, else a generated one; and whether it was
/// generated, so that it is shown once.
fn new_password() -> Result<(String, bool)> {
    let given = std::env::var(NEW_PASSWORD_ENV)
        .ok()
        .filter(|p| !p.is_empty());
    Ok(match given {
        Some(p) => {
            check_password(&p).map_err(invalid)?;
            (p, false)
        }
        None => (secret::random_text::<15>()?, true),
    })
}

fn show_generated(generated: bool, password: &str) {
    if generated {
        say(&format!(
            "password: {password}\nThis password is shown only this once."
        ));
    }
}

async fn find_user(store: &dyn Store, username: &str) -> Result<User> {
    store.user_by_username(username).await?.ok_or_else(|| {
        Error::Invalid(format!(
            "there is no user {username}: `gridsync user list` shows them"
        ))
    })
}

/// Records a change made on the command line: no user or device is logged in, so both are
/// empty and `via` says where it came from.
pub(super) async fn audit(
    store: &dyn Store,
    action: &str,
    mut detail: serde_json::Value,
) -> Result<()> {
    detail["via"] = json!("command line");
    store
        .audit(&AuditEntry {
            at: clock::now(),
            user_id: None,
            device_id: None,
            action: action.into(),
            doc_id: None,
            detail,
        })
        .await?;
    Ok(())
}

fn invalid(e: crate::http::ApiError) -> Error {
    Error::Invalid(e.to_string())
}
