//! Server-side apply and field ownership: every write records who changed which fields in
//! `metadata.managedFields`; apply owns what it applies, reports conflicts with other
//! managers and prunes what it stopped applying (see `slipway-fieldmanager`).

use axum::response::Response;
use serde_json::{Value, json};
use slipway_fieldmanager::{ApplyError, ManagedFields, Manager};
use slipway_patch::Schema;

use super::create::parse_yaml;
use super::{Ctx, Part};
use crate::objects::{self, meta_str, metadata_mut};
use crate::status::{ApiError, ApiResult, from_store};

/// Kubernetes' limit on a field manager's name.
const MAX_MANAGER_LEN: usize = 128;

/// Whose fields a write records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Ownership {
    /// The request's manager takes the fields it changed.
    Update,
    /// An apply already computed the object's managed fields.
    Applied,
}

impl Ctx {
    /// Server-side apply: creates the object from the configuration if it is missing, else
    /// merges the configuration into it; either way the manager then owns exactly the
    /// configuration's fields.
    pub(super) async fn apply(&self, body: &[u8], part: Part) -> ApiResult<Response> {
        let resource = self.resource();
        if part != Part::Main {
            return Err(ApiError::unsupported_media_type(
                "server-side apply to a subresource is not supported",
            ));
        }
        let manager_name = match self.param("fieldManager") {
            Some(name) if !name.is_empty() => self.checked_manager(name)?,
            _ => {
                return Err(ApiError::unprocessable(
                    "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
                ));
            }
        };
        let config = parse_yaml(body).map_err(|_| {
            // Re-read as JSON for the sharper message when that is what the client meant.
            match serde_json::from_slice::<Value>(body) {
                Err(e) => ApiError::bad_request(format!(
                    "the apply configuration is neither valid YAML nor JSON: {e}"
                )),
                Ok(_) => ApiError::bad_request("the apply configuration is not valid YAML"),
            }
        })?;
        for field in ["apiVersion", "kind"] {
            if config
                .get(field)
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                return Err(ApiError::bad_request(format!(
                    "the apply configuration must set {field}"
                )));
            }
        }
        if config
            .get("metadata")
            .and_then(|m| m.get("managedFields"))
            .is_some_and(|m| !m.is_null())
        {
            return Err(ApiError::bad_request(
                "metadata.managedFields must be nil in an apply configuration",
            ));
        }
        if let Some(name) = meta_str(&config, "name")
            && name != self.name()
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({name}) does not match the name on the URL ({})",
                self.name()
            )));
        }
        let mut config = self.typed_object(config)?;
        metadata_mut(&mut config).insert("name".into(), json!(self.name()));
        let force = self.flag("force");
        let api_version = resource.api_version();
        let schema = self.schema();
        let with_status = !resource.has_status_subresource();

        let key = self.key(self.name());
        let exists = self
            .state
            .store
            .get(&key, None)
            .await
            .map_err(|e| from_store(resource, self.name(), e))?
            .is_some();
        // The configuration merged onto what is live (nothing, for a create), with the
        // manager's ownership recorded in it.
        let apply_onto = |live: Option<&Value>| -> ApiResult<Value> {
            let time = objects::timestamp(self.state.clock.now());
            let manager = Manager {
                name: &manager_name,
                api_version: &api_version,
                subresource: None,
                time: &time,
            };
            // Ownership the store holds but cannot read is started over, as Kubernetes does.
            let mut managed = live
                .and_then(|live| ManagedFields::read(live).ok())
                .unwrap_or_default();
            let mut merged = managed
                .apply(schema, live, &config, &manager, force, with_status)
                .map_err(apply_error)?;
            managed.write(&mut merged);
            Ok(merged)
        };
        if !exists {
            match self
                .create_object(apply_onto(None)?, Ownership::Applied)
                .await
            {
                // Created between our read and our write: apply onto theirs.
                Err(e) if e.reason() == "AlreadyExists" => {}
                done => return done,
            }
        }
        self.write(Part::Main, None, Ownership::Applied, |current| {
            let merged = apply_onto(Some(current))?;
            if let (Some(wanted), Some(now)) = (
                objects::resource_version(&config)?,
                objects::resource_version(current)?,
            ) && wanted != now
            {
                return Err(ApiError::conflict(resource, self.name()));
            }
            Ok(merged)
        })
        .await
    }

    /// The strategic-merge schema of this resource's kind, which tells keyed lists, sets
    /// and atomic lists apart; `None` for kinds without one (every list atomic).
    fn schema(&self) -> Option<&'static Schema> {
        let resource = self.resource();
        slipway_patch::schema_for(&resource.api_version(), resource.kind).ok()
    }

    /// The manager of a write that is not an apply: `fieldManager`, else the user agent's
    /// product name, as Kubernetes derives it.
    fn update_manager(&self) -> ApiResult<String> {
        if let Some(name) = self.param("fieldManager").filter(|n| !n.is_empty()) {
            return self.checked_manager(name);
        }
        let agent = self
            .headers
            .get(axum::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("unknown");
        let product = agent.split('/').next().unwrap_or(agent);
        Ok(product.chars().take(MAX_MANAGER_LEN).collect())
    }

    fn checked_manager(&self, name: &str) -> ApiResult<String> {
        if name.len() > MAX_MANAGER_LEN {
            return Err(ApiError::unprocessable(format!(
                "fieldManager: Too long: may not be more than {MAX_MANAGER_LEN} bytes"
            )));
        }
        if name.chars().any(char::is_control) {
            return Err(ApiError::unprocessable(
                "fieldManager: Invalid value: must contain only printable characters",
            ));
        }
        Ok(name.to_owned())
    }

    /// Records an update's ownership in `new`: the request's manager takes what it changed
    /// from `old` (`None` for a create). A client that sends managedFields of its own
    /// replaces them; `[{}]` clears them, as in Kubernetes.
    pub(super) fn own_update(
        &self,
        old: Option<&Value>,
        new: &mut Value,
        part: Part,
    ) -> ApiResult<()> {
        let sent = new.get("metadata").and_then(|m| m.get("managedFields"));
        let held = old
            .and_then(|o| o.get("metadata"))
            .and_then(|m| m.get("managedFields"));
        if let Some(sent) = sent.filter(|s| s.as_array().is_some_and(|a| !a.is_empty()))
            && Some(sent) != held
        {
            if sent
                .as_array()
                .is_some_and(|a| a.iter().all(|e| e == &json!({})))
            {
                ManagedFields::default().write(new);
                return Ok(());
            }
            ManagedFields::read(new).map_err(ApiError::bad_request)?;
            return Ok(());
        }
        let resource = self.resource();
        let name = self.update_manager()?;
        let time = objects::timestamp(self.state.clock.now());
        let api_version = resource.api_version();
        let manager = Manager {
            name: &name,
            api_version: &api_version,
            subresource: match part {
                Part::Main => None,
                Part::Status => Some("status"),
                Part::Scale => Some("scale"),
                Part::Finalize => Some("finalize"),
            },
            time: &time,
        };
        let empty = json!({});
        let old = old.unwrap_or(&empty);
        let mut managed = ManagedFields::read(old).unwrap_or_default();
        let with_status = part == Part::Status || !resource.has_status_subresource();
        managed.update(self.schema(), old, new, &manager, with_status);
        managed.write(new);
        Ok(())
    }
}

fn apply_error(error: ApplyError) -> ApiError {
    match error {
        ApplyError::Conflicts(conflicts) => {
            let message = ApplyError::Conflicts(conflicts.clone()).to_string();
            let pairs: Vec<(String, String)> = conflicts
                .into_iter()
                .map(|c| (c.manager, c.field))
                .collect();
            ApiError::apply_conflict(message, &pairs)
        }
        ApplyError::Merge(message) => ApiError::unprocessable(message),
    }
}
