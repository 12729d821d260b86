//! The records of the platform database, as the platform API shows them (camelCase JSON).

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// A ResourceQuota `hard` map: resource name → quantity.
pub type Hard = BTreeMap<String, String>;

/// A quota: the `hard` map of a ResourceQuota.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Quota {
    /// Resource name → quantity.
    pub hard: Hard,
}

impl Quota {
    /// A squad's quota unless it asks for another.
    pub fn squad_default() -> Quota {
        Quota::from_pairs(&[
            ("requests.cpu", "4"),
            ("requests.memory", "8Gi"),
            ("limits.cpu", "8"),
            ("limits.memory", "16Gi"),
            ("pods", "50"),
        ])
    }

    /// A preview namespace's quota unless the squad asks for another; smaller than a squad's.
    pub fn preview_default() -> Quota {
        Quota::from_pairs(&[
            ("requests.cpu", "1"),
            ("requests.memory", "2Gi"),
            ("limits.cpu", "2"),
            ("limits.memory", "4Gi"),
            ("pods", "20"),
        ])
    }

    fn from_pairs(pairs: &[(&str, &str)]) -> Quota {
        Quota {
            hard: pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }
}

/// A cpu and a memory quantity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CpuMemory {
    /// CPU, such as `500m`.
    pub cpu: String,
    /// Memory, such as `512Mi`.
    pub memory: String,
}

/// The container defaults of a squad's LimitRange.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Limits {
    /// The default limits.
    pub default: CpuMemory,
    /// The default requests.
    pub default_request: CpuMemory,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            default: CpuMemory {
                cpu: "500m".to_owned(),
                memory: "512Mi".to_owned(),
            },
            default_request: CpuMemory {
                cpu: "100m".to_owned(),
                memory: "128Mi".to_owned(),
            },
        }
    }
}

/// What a squad's pull-request previews may take.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct PreviewPolicy {
    /// Previews alive at once.
    pub max: u32,
    /// The quota of each preview namespace.
    pub quota: Quota,
    /// A preview's time to live unless asked otherwise.
    pub ttl_seconds: u64,
    /// The longest time to live a preview may ask for.
    pub max_ttl_seconds: u64,
    /// Whether a preview may be pinned past its TTL.
    pub allow_pinning: bool,
}

impl Default for PreviewPolicy {
    fn default() -> Self {
        PreviewPolicy {
            max: 3,
            quota: Quota::preview_default(),
            ttl_seconds: 24 * 60 * 60,
            max_ttl_seconds: 7 * 24 * 60 * 60,
            allow_pinning: true,
        }
    }
}

/// A member's role in a squad.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Works in the squad's namespaces.
    Member,
    /// A member who may also add and remove members.
    Owner,
}

impl Role {
    /// The role as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Member => "member",
            Role::Owner => "owner",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<Role> {
        match text {
            "member" => Some(Role::Member),
            "owner" => Some(Role::Owner),
            _ => None,
        }
    }
}

/// A squad's member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    /// The user's name.
    pub user: String,
    /// Their role.
    pub role: Role,
}

/// A user's membership.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Membership {
    /// The squad's name.
    pub squad: String,
    /// The user's role in it.
    pub role: Role,
}

/// A squad as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Squad {
    /// The squad's name, also its first namespace.
    pub name: String,
    /// Its namespaces, the one named after it first.
    pub namespaces: Vec<String>,
    /// The quota of each of its namespaces.
    pub quota: Quota,
    /// The LimitRange defaults of each of its namespaces.
    pub limits: Limits,
    /// Its preview budget.
    pub previews: PreviewPolicy,
    /// Its members, by user name.
    pub members: Vec<Member>,
    /// When it was created.
    pub created_at: Timestamp,
}

/// A squad to create; omitted parts take the defaults.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewSquad {
    /// The squad's name.
    pub name: String,
    /// Namespaces beyond the one named after the squad.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// The quota; [`Quota::squad_default`] if omitted.
    #[serde(default)]
    pub quota: Option<Quota>,
    /// The LimitRange defaults.
    #[serde(default)]
    pub limits: Option<Limits>,
    /// The preview budget.
    #[serde(default)]
    pub previews: Option<PreviewPolicy>,
}

impl NewSquad {
    /// A squad with every default.
    pub fn named(name: &str) -> NewSquad {
        NewSquad {
            name: name.to_owned(),
            namespaces: Vec::new(),
            quota: None,
            limits: None,
            previews: None,
        }
    }

    /// Every namespace of the squad, the one named after it first.
    pub fn all_namespaces(&self) -> Vec<String> {
        let mut all = vec![self.name.clone()];
        for extra in &self.namespaces {
            if !all.contains(extra) {
                all.push(extra.clone());
            }
        }
        all
    }
}

/// A platform user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// The user name.
    pub name: String,
    /// Whether the user is a platform admin (`slipway:admins`).
    pub admin: bool,
    /// The squads the user is in.
    pub squads: Vec<Membership>,
    /// When the user was created.
    pub created_at: Timestamp,
}

/// A user to create.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewUser {
    /// The user name.
    pub name: String,
    /// Whether the user is a platform admin.
    #[serde(default)]
    pub admin: bool,
}

/// An API token, without its secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenInfo {
    /// The public id, `tok_` and 12 hex digits.
    pub id: String,
    /// The user it authenticates.
    pub user: String,
    /// What the user said it is for.
    pub description: Option<String>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it stops working, if ever.
    pub expires_at: Option<Timestamp>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Timestamp>,
}

/// A live (unrevoked) token as an authenticator needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credential {
    /// The token's public id.
    pub id: String,
    /// The user it authenticates.
    pub user: String,
    /// The lower-case hex SHA-256 of the secret.
    pub sha256: String,
    /// When it stops working, if ever.
    pub expires_at: Option<Timestamp>,
}

/// A repository a squad owns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Repo {
    /// The repository's owner (a GitHub user or organisation).
    pub owner: String,
    /// The repository's name.
    pub name: String,
    /// The squad it belongs to.
    pub squad: String,
    /// When it was added.
    pub created_at: Timestamp,
}

/// One change, as the audit log keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    /// Increasing with every change.
    pub id: i64,
    /// When.
    pub at: Timestamp,
    /// Who (a user name).
    pub actor: String,
    /// What, such as `squad.create`.
    pub action: String,
    /// On what, such as `squads/web`.
    pub target: String,
    /// The change's parameters (never a secret).
    pub detail: serde_json::Value,
}
