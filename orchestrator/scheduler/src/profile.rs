//! Scheduler profiles, chosen by a pod's `spec.schedulerName` as kube-scheduler's are:
//!
//! - `default-scheduler` (what the API server fills in when a pod names none): spreads pods,
//!   scoring NodeResourcesFit with LeastAllocated plus NodeResourcesBalancedAllocation,
//!   preferred node affinity and PreferNoSchedule taints.
//! - `slipway-bin-packing`: packs pods onto as few nodes as fit them, scoring
//!   NodeResourcesFit with MostAllocated plus preferred node affinity and PreferNoSchedule
//!   taints; balanced allocation is left out, as it would pull pods apart again.
//!
//! Both run the same filters. A pod naming any other scheduler belongs to someone else and
//! is left alone.

use k8s_openapi::api::core::v1::Pod;

use crate::score::Strategy;

/// The default profile's name.
pub const DEFAULT: &str = "default-scheduler";
/// The bin-packing profile's name.
pub const BIN_PACKING: &str = "slipway-bin-packing";

/// One profile: a scheduler name and how it scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Profile {
    /// The `spec.schedulerName` that selects it, also the Events' reporting component.
    pub name: &'static str,
    /// How NodeResourcesFit scores.
    pub strategy: Strategy,
    /// Whether NodeResourcesBalancedAllocation scores too.
    pub balance: bool,
}

/// Every profile this scheduler serves.
pub const PROFILES: [Profile; 2] = [
    Profile {
        name: DEFAULT,
        strategy: Strategy::LeastAllocated,
        balance: true,
    },
    Profile {
        name: BIN_PACKING,
        strategy: Strategy::MostAllocated,
        balance: false,
    },
];

/// The profile that schedules `pod`, or `None` when it names a scheduler that is not ours.
pub fn of(pod: &Pod) -> Option<Profile> {
    let name = pod
        .spec
        .as_ref()
        .and_then(|s| s.scheduler_name.as_deref())
        .filter(|n| !n.is_empty())
        .unwrap_or(DEFAULT);
    PROFILES.iter().find(|p| p.name == name).copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pods_pick_a_profile_by_scheduler_name() {
        let pod = |spec: serde_json::Value| -> Pod {
            serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": spec})).unwrap()
        };
        let cases = [
            (json!({"containers": []}), Some(DEFAULT)),
            (
                json!({"containers": [], "schedulerName": ""}),
                Some(DEFAULT),
            ),
            (
                json!({"containers": [], "schedulerName": DEFAULT}),
                Some(DEFAULT),
            ),
            (
                json!({"containers": [], "schedulerName": BIN_PACKING}),
                Some(BIN_PACKING),
            ),
            (json!({"containers": [], "schedulerName": "volcano"}), None),
        ];
        for (spec, expected) in cases {
            assert_eq!(of(&pod(spec.clone())).map(|p| p.name), expected, "{spec}");
        }
    }
}
