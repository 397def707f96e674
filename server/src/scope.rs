//! Who may see and write which reports: roles, and the scope each role gets from its place in the
//! org tree. The store turns a `Scope` into a SQL filter; `allows` is the same rule in Rust.

use std::fmt;
use std::str::FromStr;

/// A user's role, as DOMAIN.md describes the people.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    GridWorker,
    VillageCadre,
    TownshipStaff,
    DrugControlOfficer,
    DistrictAdmin,
}

impl Role {
    /// Whether the role reads personal data (the fields a schema marks sensitive) of the reports
    /// in its scope. Township and street staff dispatch and report on cases across villages and
    /// need no names or phone numbers; everyone else works the cases themselves. Everywhere
    /// else, JSON and exports alike, sensitive values are redacted.
    pub fn has_clearance(self) -> bool {
        !matches!(self, Role::TownshipStaff)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::GridWorker => "grid_worker",
            Role::VillageCadre => "village_cadre",
            Role::TownshipStaff => "township_staff",
            Role::DrugControlOfficer => "drug_control_officer",
            Role::DistrictAdmin => "district_admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown role {0}")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "grid_worker" => Role::GridWorker,
            "village_cadre" => Role::VillageCadre,
            "township_staff" => Role::TownshipStaff,
            "drug_control_officer" => Role::DrugControlOfficer,
            "district_admin" => Role::DistrictAdmin,
            other => return Err(UnknownRole(other.to_owned())),
        })
    }
}

/// Which restricted reports (drug-control cases) a scope includes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restricted {
    None,
    /// Only those whose assigned worker is the scope's user.
    Assigned,
    All,
}

/// The reports one user may read and write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub user_id: String,
    /// Org path prefix; empty for the whole district.
    pub prefix: String,
    /// Whether reports of ordinary (not restricted) kinds are included.
    pub open_kinds: bool,
    pub restricted: Restricted,
}

impl Scope {
    /// The scope of `role` for a user placed at the org unit whose path is `org_path`.
    pub fn for_role(user_id: &str, role: Role, org_path: &str) -> Scope {
        let (prefix, open_kinds, restricted) = match role {
            Role::GridWorker => (org_path, true, Restricted::Assigned),
            Role::VillageCadre | Role::TownshipStaff => (org_path, true, Restricted::None),
            Role::DrugControlOfficer => (org_path, false, Restricted::All),
            Role::DistrictAdmin => ("", true, Restricted::All),
        };
        Scope {
            user_id: user_id.to_owned(),
            prefix: prefix.to_owned(),
            open_kinds,
            restricted,
        }
    }

    /// What the village office hub `hub_id` holds and serves: the ordinary reports of its
    /// village or community at `unit_path`, never a restricted one.
    pub fn for_hub(hub_id: &str, unit_path: &str) -> Scope {
        Scope {
            user_id: hub_id.to_owned(),
            prefix: unit_path.to_owned(),
            open_kinds: true,
            restricted: Restricted::None,
        }
    }

    /// Names what the scope holds: a device that pulled under one key and pulls under another
    /// was moved (a new grid or role) and starts its pull over.
    pub fn key(&self) -> String {
        let restricted = match self.restricted {
            Restricted::None => "none",
            Restricted::Assigned => "assigned",
            Restricted::All => "all",
        };
        format!("{}|{}|{restricted}", self.prefix, self.open_kinds)
    }

    /// Whether a report at `org_path` is in this scope.
    pub fn allows(&self, org_path: &str, restricted: bool, assigned_to: Option<&str>) -> bool {
        if !org_path.starts_with(&self.prefix) {
            return false;
        }
        if !restricted {
            return self.open_kinds;
        }
        match self.restricted {
            Restricted::None => false,
            Restricted::Assigned => assigned_to == Some(self.user_id.as_str()),
            Restricted::All => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRID: &str = "/d/t1/v1/g1/";

    #[test]
    fn a_grid_worker_sees_open_reports_of_the_grid_and_only_drug_cases_assigned_to_them() {
        let s = Scope::for_role("w1", Role::GridWorker, GRID);
        assert!(s.allows(GRID, false, None));
        assert!(!s.allows("/d/t1/v1/g2/", false, None));
        assert!(s.allows(GRID, true, Some("w1")));
        assert!(!s.allows(GRID, true, Some("w2")));
    }

    #[test]
    fn a_village_cadre_sees_every_grid_of_the_village_but_no_drug_case() {
        let s = Scope::for_role("c1", Role::VillageCadre, "/d/t1/v1/");
        assert!(s.allows(GRID, false, None));
        assert!(!s.allows("/d/t1/v2/g1/", false, None));
        assert!(!s.allows(GRID, true, Some("c1")));
    }

    #[test]
    fn a_drug_control_officer_sees_only_drug_cases_of_the_township() {
        let s = Scope::for_role("o1", Role::DrugControlOfficer, "/d/t1/");
        assert!(s.allows(GRID, true, Some("w1")));
        assert!(!s.allows(GRID, false, None));
        assert!(!s.allows("/d/t2/v1/g1/", true, Some("w1")));
    }

    #[test]
    fn an_admin_sees_everything() {
        let s = Scope::for_role("a", Role::DistrictAdmin, "/d/");
        assert!(s.allows("/other/", true, None));
    }
}
