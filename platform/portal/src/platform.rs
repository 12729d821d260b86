//! The platform API's answers (`/slipway/v1/...`) as the pages read them: only the fields
//! shown, each defaulted, so a field the API adds or leaves out never breaks a page.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::Deserialize;

/// A list answer: `{"items": [...]}`.
#[derive(Deserialize)]
pub(crate) struct List<T> {
    #[serde(default = "Vec::new")]
    pub(crate) items: Vec<T>,
}

#[derive(Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct Squad {
    pub(crate) name: String,
    pub(crate) namespaces: Vec<String>,
    pub(crate) quota: Quota,
    pub(crate) previews: PreviewPolicy,
    pub(crate) members: Vec<Member>,
}

#[derive(Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Quota {
    pub(crate) hard: BTreeMap<String, String>,
}

#[derive(Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct PreviewPolicy {
    pub(crate) max: u32,
}

#[derive(Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Member {
    pub(crate) user: String,
    pub(crate) role: String,
}

#[derive(Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct Preview {
    pub(crate) repo: String,
    pub(crate) squad: String,
    pub(crate) pr: u64,
    pub(crate) namespace: String,
    /// The pull request's title.
    pub(crate) title: Option<String>,
    /// Its author's login.
    pub(crate) author: Option<String>,
    /// Its page on GitHub.
    pub(crate) pr_url: Option<String>,
    pub(crate) sleeping: bool,
    pub(crate) created_at: Option<Timestamp>,
    pub(crate) url: Option<String>,
    pub(crate) status: PreviewStatus,
}

#[derive(Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct PreviewStatus {
    pub(crate) phase: String,
    pub(crate) message: String,
    pub(crate) head_sha: String,
    pub(crate) deployed_sha: Option<String>,
    pub(crate) expires_at: Option<Timestamp>,
    pub(crate) pinned: bool,
}

impl Preview {
    /// Whether it still holds (or waits for) a namespace.
    pub(crate) fn is_open(&self) -> bool {
        self.status.phase != "destroyed"
    }

    pub(crate) fn is_sleeping(&self) -> bool {
        self.sleeping || self.status.phase == "sleeping"
    }

    /// The commit it runs, or else the pull request's head.
    pub(crate) fn sha(&self) -> &str {
        self.status
            .deployed_sha
            .as_deref()
            .unwrap_or(&self.status.head_sha)
    }
}

#[derive(Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct Repo {
    pub(crate) owner: String,
    pub(crate) name: String,
    pub(crate) squad: String,
    pub(crate) access: String,
    pub(crate) created_at: Option<Timestamp>,
    /// Only in a single repository's answer: the newest deliveries first.
    pub(crate) deliveries: Vec<Delivery>,
    /// Only in a single repository's answer.
    pub(crate) config_errors: Vec<ConfigError>,
}

#[derive(Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct Delivery {
    pub(crate) delivery: String,
    pub(crate) event: String,
    pub(crate) action: Option<String>,
    pub(crate) pr: Option<u64>,
    pub(crate) sha: Option<String>,
    pub(crate) sender: Option<String>,
    pub(crate) received_at: Option<Timestamp>,
    pub(crate) processed_at: Option<Timestamp>,
}

#[derive(Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ConfigError {
    pub(crate) pr: Option<u64>,
    pub(crate) namespace: Option<String>,
    pub(crate) message: String,
}
