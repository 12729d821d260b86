//! The labels the agent puts on its containers, so that a restarted agent can tell which
//! pod, container and attempt each one belongs to.

use std::collections::BTreeMap;

use slipway_runtime::LABEL_PREFIX;

/// The pod's uid.
pub(crate) const POD_UID: &str = "slipway.dev/pod-uid";
/// `namespace/name` of the pod, for people reading `ctr containers list`.
pub(crate) const POD: &str = "slipway.dev/pod";
/// The container's name in the pod.
pub(crate) const CONTAINER: &str = "slipway.dev/container";
/// `true` for init containers.
pub(crate) const INIT: &str = "slipway.dev/init";
/// The restart count this container was started as.
pub(crate) const ATTEMPT: &str = "slipway.dev/attempt";

/// The labels of a container the agent creates.
pub(crate) fn for_container(
    uid: &str,
    namespace: &str,
    pod: &str,
    container: &str,
    init: bool,
    attempt: i32,
) -> BTreeMap<String, String> {
    debug_assert!(POD_UID.starts_with(LABEL_PREFIX));
    BTreeMap::from([
        (POD_UID.to_owned(), uid.to_owned()),
        (POD.to_owned(), format!("{namespace}/{pod}")),
        (CONTAINER.to_owned(), container.to_owned()),
        (INIT.to_owned(), init.to_string()),
        (ATTEMPT.to_owned(), attempt.to_string()),
    ])
}

/// The attempt a container was started as (0 when unlabelled).
pub(crate) fn attempt(labels: &BTreeMap<String, String>) -> i32 {
    labels
        .get(ATTEMPT)
        .and_then(|a| a.parse().ok())
        .unwrap_or(0)
}
