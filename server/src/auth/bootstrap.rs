//! First start: a database without users gets the org root (when it has none) and the `admin`
//! account, so that someone can log in and set up the rest.

use super::{Result, password, secret};
use crate::clock;
use crate::scope::Role;
use crate::store::{Level, OrgUnit, Store, StoreError, User};

pub const ADMIN_USERNAME: &str = "admin";

/// The account made on first start.
#[derive(Debug)]
pub struct FirstAdmin {
    pub username: String,
    /// The generated password, to show once; `None` when the caller supplied one.
    pub generated_password: Option<String>,
}

/// Creates the org root and the `admin` account (role district_admin) when there are no users;
/// `None` when there already are. The password is `password` or, without one, generated.
pub async fn first_start(
    store: &dyn Store,
    password: Option<String>,
) -> Result<Option<FirstAdmin>> {
    if store.count_users().await? > 0 {
        return Ok(None);
    }
    let root = match store
        .org_units()
        .await?
        .into_iter()
        .find(|u| u.parent_id.is_none())
    {
        Some(root) => root,
        None => {
            let root = OrgUnit {
                id: "district".into(),
                parent_id: None,
                level: Level::District,
                name: "District".into(),
                path: "/district/".into(),
            };
            store.upsert_org_unit(&root).await?;
            root
        }
    };
    let (password, generated_password) = match password {
        Some(p) => (p, None),
        None => {
            let p = secret::random_text::<15>()?;
            (p.clone(), Some(p))
        }
    };
    let admin = User {
        id: uuid::Uuid::new_v4().to_string(),
        username: ADMIN_USERNAME.into(),
        display_name: "Administrator".into(),
        password_hash: password::hash(password).await?,
        role: Role::DistrictAdmin,
        org_unit_id: root.id,
        disabled: false,
        created_at: clock::now(),
    };
    match store.insert_user(&admin).await {
        Ok(()) => Ok(Some(FirstAdmin {
            username: admin.username,
            generated_password,
        })),
        // Another node starting at the same moment made it first.
        Err(StoreError::Duplicate(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}
