//! Server-side apply.

use axum::response::Response;
use serde_json::{Value, json};

use super::write::patch_error;
use super::{Ctx, Part};
use crate::objects::{self, meta_str, metadata_mut};
use crate::status::{ApiError, ApiResult, from_store};

impl Ctx {
    /// Server-side apply, in its first form: creates the object from the applied
    /// configuration if it is missing, else merges the configuration into it as a strategic
    /// merge patch. Field ownership is not tracked yet, so fields a manager stops applying
    /// are kept rather than pruned, and no ownership conflict is reported.
    pub(super) async fn apply(&self, body: &[u8], part: Part) -> ApiResult<Response> {
        let resource = self.resource();
        if part != Part::Main {
            return Err(ApiError::unsupported_media_type(
                "server-side apply to a subresource is not supported yet",
            ));
        }
        if self.param("fieldManager").is_none_or(str::is_empty) {
            return Err(ApiError::unprocessable(
                "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
            ));
        }
        let applied: Value = serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!(
                "the apply configuration is not valid JSON (YAML bodies are not supported yet): {e}"
            ))
        })?;
        for field in ["apiVersion", "kind"] {
            if applied
                .get(field)
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                return Err(ApiError::bad_request(format!(
                    "the apply configuration must set {field}"
                )));
            }
        }
        if let Some(name) = meta_str(&applied, "name")
            && name != self.name()
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({name}) does not match the name on the URL ({})",
                self.name()
            )));
        }
        let key = self.key(self.name());
        let exists = self
            .state
            .store
            .get(&key, None)
            .await
            .map_err(|e| from_store(resource, self.name(), e))?
            .is_some();
        let mut applied = self.typed_object(applied)?;
        if !exists {
            metadata_mut(&mut applied).insert("name".into(), json!(self.name()));
            return self.create_object(applied).await;
        }
        let api_version = resource.api_version();
        self.write(Part::Main, None, |current| {
            let merged = match slipway_patch::strategic_merge_for(
                &api_version,
                resource.kind,
                current,
                &applied,
            ) {
                Ok(merged) => merged,
                Err(e) if e.http_status() == 415 => {
                    slipway_patch::merge_patch(current, &applied)
                        .map_err(|e| patch_error(e.http_status(), e.to_string()))?
                }
                Err(e) => return Err(patch_error(e.http_status(), e.to_string())),
            };
            if let (Some(wanted), Some(now)) = (
                objects::resource_version(&applied)?,
                objects::resource_version(current)?,
            ) && wanted != now
            {
                return Err(ApiError::conflict(resource, self.name()));
            }
            Ok(merged)
        })
        .await
    }
}
