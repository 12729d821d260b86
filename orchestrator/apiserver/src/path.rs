//! Resource paths: `/api/v1/...` and `/apis/{group}/{version}/...` into the resource type,
//! namespace, name and subresource they address.

use crate::resources::{self, ResourceType};
use crate::status::{ApiError, ApiResult};

/// What a resource path addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The resource type.
    pub resource: &'static ResourceType,
    /// The namespace in the path, if any (absent for cluster-wide lists).
    pub namespace: Option<String>,
    /// The object's name; absent for collections.
    pub name: Option<String>,
    /// The subresource, e.g. `status`.
    pub subresource: Option<String>,
}

/// Parses a request path; anything that is not a served resource path is a 404.
pub fn parse(path: &str) -> ApiResult<Target> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segments.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return Err(ApiError::no_such_path()),
    };
    if rest.iter().any(|s| s.is_empty()) {
        return Err(ApiError::no_such_path());
    }
    let lookup =
        |plural: &str| resources::find(group, version, plural).ok_or_else(ApiError::no_such_path);
    let target =
        |resource, namespace: Option<&str>, name: Option<&str>, sub: Option<&str>| Target {
            resource,
            namespace: namespace.map(str::to_owned),
            name: name.map(str::to_owned),
            subresource: sub.map(str::to_owned),
        };
    let namespaces = lookup("namespaces");
    let parsed = match rest {
        // `/namespaces/{ns}/{resource}...` unless the third segment is a namespace's own
        // subresource (`/namespaces/{name}/status`).
        ["namespaces", ns, plural]
            if namespaces
                .as_ref()
                .is_ok_and(|n| n.subresource(plural).is_some()) =>
        {
            target(namespaces?, None, Some(ns), Some(plural))
        }
        ["namespaces", ns, plural, tail @ ..] => {
            let resource = lookup(plural)?;
            if !resource.namespaced() {
                return Err(ApiError::no_such_path());
            }
            match tail {
                [] => target(resource, Some(ns), None, None),
                [name] => target(resource, Some(ns), Some(name), None),
                [name, sub] => target(resource, Some(ns), Some(name), Some(sub)),
                _ => return Err(ApiError::no_such_path()),
            }
        }
        [plural] => target(lookup(plural)?, None, None, None),
        [plural, name] => {
            let resource = lookup(plural)?;
            if resource.namespaced() {
                return Err(ApiError::no_such_path());
            }
            target(resource, None, Some(name), None)
        }
        [plural, name, sub] => {
            let resource = lookup(plural)?;
            if resource.namespaced() {
                return Err(ApiError::no_such_path());
            }
            target(resource, None, Some(name), Some(sub))
        }
        _ => return Err(ApiError::no_such_path()),
    };
    if let Some(sub) = &parsed.subresource
        && parsed.resource.subresource(sub).is_none()
    {
        return Err(ApiError::no_such_path());
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(path: &str) -> (String, Option<String>, Option<String>, Option<String>) {
        let t = parse(path).unwrap_or_else(|e| panic!("{path}: {e:?}"));
        (
            t.resource.qualified_name(),
            t.namespace,
            t.name,
            t.subresource,
        )
    }

    fn s(v: &str) -> Option<String> {
        Some(v.to_owned())
    }

    #[test]
    fn resource_paths() {
        let cases = [
            ("/api/v1/pods", ("pods", None, None, None)),
            (
                "/api/v1/namespaces/default/pods",
                ("pods", s("default"), None, None),
            ),
            (
                "/api/v1/namespaces/default/pods/web",
                ("pods", s("default"), s("web"), None),
            ),
            (
                "/api/v1/namespaces/default/pods/web/status",
                ("pods", s("default"), s("web"), s("status")),
            ),
            ("/api/v1/namespaces", ("namespaces", None, None, None)),
            (
                "/api/v1/namespaces/team",
                ("namespaces", None, s("team"), None),
            ),
            (
                "/api/v1/namespaces/team/status",
                ("namespaces", None, s("team"), s("status")),
            ),
            (
                "/api/v1/namespaces/team/finalize",
                ("namespaces", None, s("team"), s("finalize")),
            ),
            ("/api/v1/nodes/n1", ("nodes", None, s("n1"), None)),
            (
                "/apis/apps/v1/deployments",
                ("deployments.apps", None, None, None),
            ),
            (
                "/apis/apps/v1/namespaces/a/deployments/web/scale",
                ("deployments.apps", s("a"), s("web"), s("scale")),
            ),
            (
                "/apis/rbac.authorization.k8s.io/v1/clusterroles/view",
                (
                    "clusterroles.rbac.authorization.k8s.io",
                    None,
                    s("view"),
                    None,
                ),
            ),
        ];
        for (path, (resource, ns, name, sub)) in cases {
            assert_eq!(ok(path), (resource.to_owned(), ns, name, sub), "{path}");
        }
    }

    #[test]
    fn unknown_paths_are_not_found() {
        for path in [
            "/api/v2/pods",
            "/api/v1/widgets",
            "/apis/apps/v1/pods",
            "/api/v1/namespaces/default/nodes",
            "/api/v1/pods/web",
            "/api/v1/namespaces/default/pods/web/nope",
            "/api/v1/namespaces/default/pods/web/status/extra",
            "/api/v1/namespaces/default/configmaps/x/status",
            "/api/v1/namespaces//pods",
            "/nope",
        ] {
            let err = parse(path).unwrap_err();
            assert_eq!(err.code().as_u16(), 404, "{path}");
        }
    }
}
