//! RoleBinding and ClusterRoleBinding rows: the role and the subjects by kind.

use std::time::SystemTime;

use serde_json::Value;

use crate::access::{created, list_at, name, str_at};
use crate::time::age_since;

pub(super) fn binding(object: &Value, now: SystemTime) -> Vec<Value> {
    let role = format!(
        "{}/{}",
        str_at(object, &["roleRef", "kind"]),
        str_at(object, &["roleRef", "name"])
    );
    let mut users = Vec::new();
    let mut groups = Vec::new();
    let mut service_accounts = Vec::new();
    for subject in list_at(object, &["subjects"]) {
        let subject_name = str_at(subject, &["name"]);
        match str_at(subject, &["kind"]) {
            "User" => users.push(subject_name.to_owned()),
            "Group" => groups.push(subject_name.to_owned()),
            "ServiceAccount" => service_accounts.push(format!(
                "{}/{subject_name}",
                str_at(subject, &["namespace"])
            )),
            // Upstream collects other kinds too, but no column shows them.
            _ => {}
        }
    }
    vec![
        name(object).into(),
        role.into(),
        age_since(created(object), now).into(),
        users.join(", ").into(),
        groups.join(", ").into(),
        service_accounts.join(", ").into(),
    ]
}
