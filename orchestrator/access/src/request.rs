//! What an HTTP request asks to do, in authorizer terms, as Kubernetes' RequestInfo
//! resolves it: the verb from the method and the path's shape, and the group, resource,
//! subresource, namespace and name from the path.

use crate::bootstrap::PLATFORM_GROUP;
use crate::{Attributes, Target};

/// Subresources of a namespace itself: `/api/v1/namespaces/{name}/status` addresses the
/// namespace, not a resource called `status` inside it.
const NAMESPACE_SUBRESOURCES: &[&str] = &["status", "finalize"];

/// The attributes of a request to `path` with `method` and the raw `query`.
pub fn attributes(method: &str, path: &str, query: Option<&str>) -> Attributes {
    let non_resource = || Attributes {
        verb: method.to_ascii_lowercase(),
        target: Target::NonResource {
            path: path.to_owned(),
        },
    };
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    if segments.iter().any(|s| s.is_empty()) {
        return non_resource();
    }
    let (group, mut rest) = match segments.as_slice() {
        ["api", _version, rest @ ..] if !rest.is_empty() => ("", rest),
        ["apis", group, _version, rest @ ..] if !rest.is_empty() => (*group, rest),
        ["slipway", _version, rest @ ..] if !rest.is_empty() => (PLATFORM_GROUP, rest),
        _ => return non_resource(),
    };
    let mut namespace = "";
    if let ["namespaces", ns, tail @ ..] = rest {
        namespace = ns;
        if let [first, ..] = tail
            && !NAMESPACE_SUBRESOURCES.contains(first)
        {
            rest = tail;
        }
    }
    // `/namespaces/{name}[/status]` names the namespace itself.
    if rest.first() == Some(&"namespaces") {
        namespace = "";
    }
    let (resource, name, subresource) = match rest {
        [resource] => (*resource, "", String::new()),
        [resource, name] => (*resource, *name, String::new()),
        [resource, name, sub @ ..] => (*resource, *name, sub.join("/")),
        [] => return non_resource(),
    };
    // The platform's nested paths (`users/{name}/tokens/{id}`) address the subresource.
    let subresource = match subresource.split_once('/') {
        Some((sub, _)) if group == PLATFORM_GROUP => sub.to_owned(),
        _ => subresource,
    };
    let nested_name = rest.len() > 3;
    let verb = match method {
        "GET" | "HEAD" if is_watch(query) => "watch",
        "GET" | "HEAD" if name.is_empty() => "list",
        "GET" | "HEAD" if group == PLATFORM_GROUP && !subresource.is_empty() && !nested_name => {
            "list"
        }
        "GET" | "HEAD" => "get",
        "POST" => "create",
        "PUT" => "update",
        "PATCH" => "patch",
        "DELETE" if name.is_empty() => "deletecollection",
        "DELETE" => "delete",
        other => return non_resource_with(other, path),
    };
    Attributes {
        verb: verb.to_owned(),
        target: Target::Resource {
            group: group.to_owned(),
            resource: resource.to_owned(),
            subresource,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        },
    }
}

fn non_resource_with(method: &str, path: &str) -> Attributes {
    Attributes {
        verb: method.to_ascii_lowercase(),
        target: Target::NonResource {
            path: path.to_owned(),
        },
    }
}

fn is_watch(query: Option<&str>) -> bool {
    query.into_iter().flat_map(|q| q.split('&')).any(|pair| {
        matches!(
            pair.split_once('=').unwrap_or((pair, "")),
            ("watch", "true" | "1")
        )
    })
}
