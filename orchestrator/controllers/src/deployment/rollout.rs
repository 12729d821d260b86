//! The rollout arithmetic of Kubernetes' deployment controller, with no IO: how far a
//! rolling update may surge and dip, how each ReplicaSet is sized at each step, how a
//! resize is shared out proportionally mid-rollout, which old ReplicaSets the history limit
//! drops, and the status and conditions a Deployment reports.

use std::cmp::Ordering;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::template::{self, DESIRED_REPLICAS, MAX_REPLICAS};

/// Condition types and reasons, with Kubernetes' spelling.
pub mod reason {
    /// The Deployment has at least `replicas - maxUnavailable` available pods.
    pub const AVAILABLE: &str = "Available";
    /// The rollout moves, finished, or ran out of time.
    pub const PROGRESSING: &str = "Progressing";
    /// Available=True.
    pub const MIN_AVAILABLE: &str = "MinimumReplicasAvailable";
    /// Available=False.
    pub const MIN_UNAVAILABLE: &str = "MinimumReplicasUnavailable";
    /// Progressing=True: a new ReplicaSet was created.
    pub const NEW_RS: &str = "NewReplicaSetCreated";
    /// Progressing=True: an existing ReplicaSet became the new one.
    pub const FOUND_NEW_RS: &str = "FoundNewReplicaSet";
    /// Progressing=True: the rollout made progress.
    pub const RS_UPDATED: &str = "ReplicaSetUpdated";
    /// Progressing=True: the rollout is complete.
    pub const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
    /// Progressing=False: no progress within `progressDeadlineSeconds`.
    pub const TIMED_OUT: &str = "ProgressDeadlineExceeded";
    /// Progressing=False: the new ReplicaSet could not be created.
    pub const FAILED_RS_CREATE: &str = "ReplicaSetCreateError";
    /// Progressing=Unknown while paused.
    pub const PAUSED: &str = "DeploymentPaused";
    /// Progressing=Unknown once resumed.
    pub const RESUMED: &str = "DeploymentResumed";
}

/// One ReplicaSet resize the controller should make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scale {
    /// The ReplicaSet.
    pub name: String,
    /// Its `spec.replicas` now.
    pub from: i32,
    /// What it should become.
    pub to: i32,
}

/// `spec.replicas` of a Deployment (defaulted to 1 by admission).
pub fn desired(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// `spec.replicas` of a ReplicaSet.
pub fn replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

/// `status.availableReplicas` of a ReplicaSet.
pub fn available(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

fn observed(
    rs: &ReplicaSet,
    field: fn(&k8s_openapi::api::apps::v1::ReplicaSetStatus) -> i32,
) -> i32 {
    rs.status.as_ref().map_or(0, field)
}

/// Whether the Deployment rolls (the default) rather than recreates.
pub fn is_rolling(d: &Deployment) -> bool {
    d.spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        != Some("Recreate")
}

/// An absolute or percent value against `total`: percents round up for surge and down for
/// unavailability, as Kubernetes' `GetScaledValueFromIntOrPercent`.
pub fn scaled(value: Option<&IntOrString>, total: i32, round_up: bool) -> i32 {
    match value {
        None => 0,
        Some(IntOrString::Int(n)) => *n,
        Some(IntOrString::String(s)) => {
            let Some(percent) = s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) else {
                return 0;
            };
            let product = percent * i64::from(total);
            let value = if round_up {
                (product + 99).div_euclid(100)
            } else {
                product.div_euclid(100)
            };
            i32::try_from(value).unwrap_or(i32::MAX)
        }
    }
}

/// (max surge, max unavailable) for a rolling Deployment; both zero is read as one
/// unavailable, so a rollout can always move (`ResolveFenceposts`).
pub fn fenceposts(d: &Deployment) -> (i32, i32) {
    let rolling = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref());
    let total = desired(d);
    let surge = scaled(rolling.and_then(|r| r.max_surge.as_ref()), total, true);
    let unavailable = scaled(
        rolling.and_then(|r| r.max_unavailable.as_ref()),
        total,
        false,
    );
    if surge == 0 && unavailable == 0 {
        (0, 1)
    } else {
        (surge, unavailable)
    }
}

/// How many pods above `replicas` a rollout may run.
pub fn max_surge(d: &Deployment) -> i32 {
    if is_rolling(d) { fenceposts(d).0 } else { 0 }
}

/// How many of `replicas` may be unavailable during a rollout, at most all of them.
pub fn max_unavailable(d: &Deployment) -> i32 {
    if !is_rolling(d) || desired(d) == 0 {
        return 0;
    }
    fenceposts(d).1.min(desired(d))
}

fn total(sets: &[&ReplicaSet], field: fn(&ReplicaSet) -> i32) -> i32 {
    sets.iter().map(|rs| field(rs)).sum()
}

/// Oldest first, by creation time then name (`ReplicaSetsByCreationTimestamp`).
pub fn by_age(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    a.metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0)
        .cmp(&b.metadata.creation_timestamp.as_ref().map(|t| t.0))
        .then_with(|| a.name_any().cmp(&b.name_any()))
}

/// The ReplicaSet whose template is the Deployment's, oldest first if several are.
pub fn find_new<'a>(d: &Deployment, sets: &'a [ReplicaSet]) -> Option<&'a ReplicaSet> {
    let template = d.spec.as_ref().map(|s| &s.template)?;
    let mut matching: Vec<&ReplicaSet> = sets
        .iter()
        .filter(|rs| {
            rs.spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .is_some_and(|t| template::equal_ignoring_hash(template, t))
        })
        .collect();
    matching.sort_by(|a, b| by_age(a, b));
    matching.first().copied()
}

/// How big the new ReplicaSet may grow now: up to `replicas + maxSurge` pods in all for a
/// rolling update, all of `replicas` at once for a recreate (`NewRSNewReplicas`).
pub fn new_replicas(d: &Deployment, all: &[&ReplicaSet], new: &ReplicaSet) -> i32 {
    if !is_rolling(d) {
        return desired(d);
    }
    let current = total(all, replicas);
    let ceiling = desired(d) + max_surge(d);
    if current >= ceiling {
        return replicas(new);
    }
    let grow = (ceiling - current).min(desired(d) - replicas(new));
    replicas(new) + grow
}

/// The new ReplicaSet's resize in a rolling update, if it needs one.
pub fn reconcile_new(d: &Deployment, all: &[&ReplicaSet], new: &ReplicaSet) -> Option<Scale> {
    let want = desired(d);
    let to = match replicas(new).cmp(&want) {
        Ordering::Equal => return None,
        Ordering::Greater => want,
        Ordering::Less => new_replicas(d, all, new),
    };
    (to != replicas(new)).then(|| Scale {
        name: new.name_any(),
        from: replicas(new),
        to,
    })
}

/// The old ReplicaSets' resizes in a rolling update: first their unavailable pods, which
/// cost nothing to lose, then as many available ones as keep `replicas - maxUnavailable`
/// available, oldest ReplicaSets first (`reconcileOldReplicaSets`).
pub fn reconcile_old(
    d: &Deployment,
    all: &[&ReplicaSet],
    old: &[&ReplicaSet],
    new: Option<&ReplicaSet>,
) -> Vec<Scale> {
    if total(old, replicas) == 0 {
        return Vec::new();
    }
    let min_available = desired(d) - max_unavailable(d);
    let new_unavailable = new.map_or(0, |n| replicas(n) - available(n));
    let mut budget = total(all, replicas) - min_available - new_unavailable;
    if budget <= 0 {
        return Vec::new();
    }
    let mut old: Vec<&ReplicaSet> = old.to_vec();
    old.sort_by(|a, b| by_age(a, b));
    let mut sizes: Vec<i32> = old.iter().map(|rs| replicas(rs)).collect();

    for (rs, size) in old.iter().zip(sizes.iter_mut()) {
        if budget == 0 {
            break;
        }
        if *size == 0 || available(rs) >= *size {
            continue;
        }
        let cut = budget.min(*size - available(rs));
        *size -= cut;
        budget -= cut;
    }

    let available_now = total(all, available);
    if available_now > min_available {
        let mut left = available_now - min_available;
        for size in &mut sizes {
            if left == 0 {
                break;
            }
            let cut = (*size).min(left);
            *size -= cut;
            left -= cut;
        }
    }
    old.iter()
        .zip(sizes)
        .filter(|(rs, size)| replicas(rs) != *size)
        .map(|(rs, size)| Scale {
            name: rs.name_any(),
            from: replicas(rs),
            to: size,
        })
        .collect()
}

/// Whether `replicas` changed since the active ReplicaSets were sized: a resize, handled
/// by [`proportional`] rather than by rolling (`isScalingEvent`).
pub fn is_scaling_event(d: &Deployment, all: &[&ReplicaSet]) -> bool {
    all.iter()
        .filter(|rs| replicas(rs) > 0)
        .filter_map(|rs| template::annotated(rs, DESIRED_REPLICAS))
        .any(|wanted| wanted != desired(d))
}

/// The resizes for a change of `replicas`. With one active ReplicaSet it takes the whole
/// count; with a saturated new one the old go to zero; mid-rollout the difference is shared
/// out in proportion to each ReplicaSet's size, largest first, leftovers to the largest
/// (Kubernetes' `scale`).
pub fn proportional(d: &Deployment, new: Option<&ReplicaSet>, old: &[&ReplicaSet]) -> Vec<Scale> {
    let want = desired(d);
    let resize = |rs: &ReplicaSet, to: i32| {
        (replicas(rs) != to).then(|| Scale {
            name: rs.name_any(),
            from: replicas(rs),
            to,
        })
    };
    let mut old_newest_first: Vec<&ReplicaSet> = old.to_vec();
    old_newest_first.sort_by(|a, b| by_age(b, a));
    let active: Vec<&ReplicaSet> = new
        .into_iter()
        .chain(old_newest_first.iter().copied())
        .filter(|rs| replicas(rs) > 0)
        .collect();
    match (active.as_slice(), new, old_newest_first.first().copied()) {
        ([only], _, _) => return resize(only, want).into_iter().collect(),
        ([], Some(latest), _) | ([], None, Some(latest)) => {
            return resize(latest, want).into_iter().collect();
        }
        ([], None, None) => return Vec::new(),
        _ => {}
    }
    if new.is_some_and(|n| is_saturated(d, n)) {
        return old.iter().filter_map(|rs| resize(rs, 0)).collect();
    }
    if !is_rolling(d) {
        return Vec::new();
    }
    let allowed = if want > 0 { want + max_surge(d) } else { 0 };
    let to_add = allowed - total(&active, replicas);
    let mut sets = active;
    match to_add.cmp(&0) {
        // Equal sizes: newer ones grow first, older ones shrink first.
        Ordering::Greater => sets.sort_by(|a, b| replicas(b).cmp(&replicas(a)).then(by_age(b, a))),
        Ordering::Less => sets.sort_by(|a, b| replicas(b).cmp(&replicas(a)).then(by_age(a, b))),
        Ordering::Equal => {}
    }
    let mut added = 0;
    let mut sizes: Vec<i32> = Vec::with_capacity(sets.len());
    for rs in &sets {
        let share = if to_add == 0 {
            0
        } else {
            proportion(d, rs, to_add, added)
        };
        sizes.push(replicas(rs) + share);
        added += share;
    }
    if to_add != 0
        && let Some(first) = sizes.first_mut()
    {
        *first = (*first + to_add - added).max(0);
    }
    sets.iter()
        .zip(sizes)
        .filter_map(|(rs, size)| resize(rs, size))
        .collect()
}

/// One ReplicaSet's share of a resize (`GetProportion`), never past what is left to share.
fn proportion(d: &Deployment, rs: &ReplicaSet, to_add: i32, added: i32) -> i32 {
    if replicas(rs) == 0 || to_add == added {
        return 0;
    }
    let allowed = to_add - added;
    let fraction = fraction(d, rs);
    if to_add > 0 {
        fraction.min(allowed)
    } else {
        fraction.max(allowed)
    }
}

/// How much a ReplicaSet would grow or shrink were it scaled in step with the Deployment's
/// ceiling since it was last sized (`getReplicaSetFraction`).
fn fraction(d: &Deployment, rs: &ReplicaSet) -> i32 {
    if desired(d) == 0 {
        return -replicas(rs);
    }
    let ceiling = desired(d) + max_surge(d);
    let before = match template::annotated(rs, MAX_REPLICAS) {
        Some(before) if before != 0 => before,
        _ => {
            let observed = d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0);
            if observed == 0 {
                return 0;
            }
            observed
        }
    };
    let scaled = f64::from(replicas(rs)) * f64::from(ceiling) / f64::from(before);
    // Within i32 by construction: a share of at most `ceiling` pods.
    #[allow(clippy::cast_possible_truncation)]
    let rounded = scaled.round() as i32;
    rounded - replicas(rs)
}

/// Whether the new ReplicaSet has all of `replicas`, sized for them and available.
pub fn is_saturated(d: &Deployment, rs: &ReplicaSet) -> bool {
    let want = desired(d);
    replicas(rs) == want
        && template::annotated(rs, DESIRED_REPLICAS) == Some(want)
        && available(rs) == want
}

/// The old ReplicaSets past `revisionHistoryLimit` that can go: oldest revisions first, and
/// only those with no pods left and nothing unobserved.
pub fn history_to_drop(d: &Deployment, old: &[&ReplicaSet]) -> Vec<String> {
    let Some(limit) = d.spec.as_ref().and_then(|s| s.revision_history_limit) else {
        return Vec::new();
    };
    let mut alive: Vec<&ReplicaSet> = old
        .iter()
        .copied()
        .filter(|rs| rs.metadata.deletion_timestamp.is_none())
        .collect();
    let limit = usize::try_from(limit).unwrap_or(0);
    if alive.len() <= limit {
        return Vec::new();
    }
    let excess = alive.len() - limit;
    alive.sort_by(|a, b| {
        template::revision(a)
            .cmp(&template::revision(b))
            .then_with(|| by_age(a, b))
    });
    alive
        .into_iter()
        .take(excess)
        .filter(|rs| {
            let status = rs.status.as_ref();
            status.map_or(0, |s| s.replicas) == 0
                && replicas(rs) == 0
                && rs.metadata.generation.unwrap_or(0)
                    <= status.and_then(|s| s.observed_generation).unwrap_or(0)
        })
        .map(ResourceExt::name_any)
        .collect()
}

/// A condition stamped `now` for both its times.
pub fn condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    now: Timestamp,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// The condition of `type_`, if reported.
pub fn get_condition<'a>(
    status: &'a DeploymentStatus,
    type_: &str,
) -> Option<&'a DeploymentCondition> {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_)
}

/// Sets a condition as Kubernetes' `SetDeploymentCondition` does: the same status and reason
/// change nothing; the same status keeps the transition time; a change goes last.
pub fn set_condition(status: &mut DeploymentStatus, mut new: DeploymentCondition) {
    if let Some(current) = get_condition(status, &new.type_) {
        if current.status == new.status && current.reason == new.reason {
            return;
        }
        if current.status == new.status {
            new.last_transition_time
                .clone_from(&current.last_transition_time);
        }
    }
    remove_condition(status, &new.type_);
    status.conditions.get_or_insert_with(Vec::new).push(new);
}

fn remove_condition(status: &mut DeploymentStatus, type_: &str) {
    if let Some(conditions) = status.conditions.as_mut() {
        conditions.retain(|c| c.type_ != type_);
    }
}

/// Counts from the ReplicaSets, and the Available condition (`calculateStatus`).
pub fn calculate_status(
    d: &Deployment,
    all: &[&ReplicaSet],
    new: Option<&ReplicaSet>,
    now: Timestamp,
) -> DeploymentStatus {
    let current = d.status.clone().unwrap_or_default();
    let available_count = total(all, available);
    let mut status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(total(all, |rs| observed(rs, |s| s.replicas))),
        updated_replicas: Some(new.map_or(0, |n| observed(n, |s| s.replicas))),
        ready_replicas: Some(total(all, |rs| {
            observed(rs, |s| s.ready_replicas.unwrap_or(0))
        })),
        available_replicas: Some(available_count),
        unavailable_replicas: Some((desired(d) - available_count).max(0)),
        collision_count: current.collision_count,
        conditions: current.conditions,
        terminating_replicas: None,
    };
    let condition = if available_count >= desired(d) - max_unavailable(d) {
        condition(
            reason::AVAILABLE,
            "True",
            reason::MIN_AVAILABLE,
            "Deployment has minimum availability.".into(),
            now,
        )
    } else {
        condition(
            reason::AVAILABLE,
            "False",
            reason::MIN_UNAVAILABLE,
            "Deployment does not have minimum availability.".into(),
            now,
        )
    };
    set_condition(&mut status, condition);
    status
}

fn deadline(d: &Deployment) -> Option<i32> {
    d.spec
        .as_ref()
        .and_then(|s| s.progress_deadline_seconds)
        .filter(|s| *s != i32::MAX)
}

/// Every pod updated, running and available, and the latest spec observed.
pub fn is_complete(d: &Deployment, status: &DeploymentStatus) -> bool {
    let want = Some(desired(d));
    status.updated_replicas == want
        && status.replicas == want
        && status.available_replicas == want
        && status.observed_generation >= d.metadata.generation
}

/// Whether `new` shows progress over what the Deployment last reported: more updated,
/// ready or available pods, or fewer old ones.
fn is_progressing(d: &Deployment, new: &DeploymentStatus) -> bool {
    let old = d.status.clone().unwrap_or_default();
    let count = |v: Option<i32>| v.unwrap_or(0);
    let old_pods = |s: &DeploymentStatus| count(s.replicas) - count(s.updated_replicas);
    count(new.updated_replicas) > count(old.updated_replicas)
        || old_pods(new) < old_pods(&old)
        || count(new.ready_replicas) > count(old.ready_replicas)
        || count(new.available_replicas) > count(old.available_replicas)
}

fn timed_out(d: &Deployment, status: &DeploymentStatus, now: Timestamp) -> bool {
    let (Some(seconds), Some(progressing)) =
        (deadline(d), get_condition(status, reason::PROGRESSING))
    else {
        return false;
    };
    match progressing.reason.as_deref() {
        Some(reason::NEW_RS_AVAILABLE) => false,
        Some(reason::TIMED_OUT) => true,
        _ => progressing.last_update_time.as_ref().is_some_and(|t| {
            t.0.checked_add(k8s_openapi::jiff::SignedDuration::from_secs(i64::from(
                seconds,
            )))
            .is_ok_and(|end| end < now)
        }),
    }
}

/// The status of a rollout in motion: counts, then Progressing as Kubernetes'
/// `syncRolloutStatus` sets it: complete, progressing (refreshing its update time) or
/// past its deadline.
pub fn rollout_status(
    d: &Deployment,
    all: &[&ReplicaSet],
    new: Option<&ReplicaSet>,
    now: Timestamp,
) -> DeploymentStatus {
    let mut status = calculate_status(d, all, new, now);
    if deadline(d).is_none() {
        remove_condition(&mut status, reason::PROGRESSING);
        return status;
    }
    let current = get_condition(&status, reason::PROGRESSING).cloned();
    let already_complete = status.replicas == status.updated_replicas
        && current
            .as_ref()
            .is_some_and(|c| c.reason.as_deref() == Some(reason::NEW_RS_AVAILABLE));
    if already_complete {
        return status;
    }
    let name = new.map(ResourceExt::name_any).unwrap_or_default();
    if is_complete(d, &status) {
        let message = format!("ReplicaSet \"{name}\" has successfully progressed.");
        let complete = condition(
            reason::PROGRESSING,
            "True",
            reason::NEW_RS_AVAILABLE,
            message,
            now,
        );
        set_condition(&mut status, complete);
    } else if is_progressing(d, &status) {
        let message = if new.is_some() {
            format!("ReplicaSet \"{name}\" is progressing.")
        } else {
            String::new()
        };
        let mut progress = condition(
            reason::PROGRESSING,
            "True",
            reason::RS_UPDATED,
            message,
            now,
        );
        // Progress refreshes the update time even with an unchanged reason, which
        // `set_condition` would not do.
        if let Some(current) = current.filter(|c| c.status == "True") {
            progress.last_transition_time = current.last_transition_time;
        }
        remove_condition(&mut status, reason::PROGRESSING);
        set_condition(&mut status, progress);
    } else if timed_out(d, &status, now) {
        let message = format!("ReplicaSet \"{name}\" has timed out progressing.");
        let stuck = condition(
            reason::PROGRESSING,
            "False",
            reason::TIMED_OUT,
            message,
            now,
        );
        set_condition(&mut status, stuck);
    }
    status
}

/// When to look again at a rollout that is neither complete nor timed out, to notice its
/// deadline passing: the Progressing condition's update time plus the deadline.
pub fn deadline_check(
    d: &Deployment,
    status: &DeploymentStatus,
    now: Timestamp,
) -> Option<Duration> {
    let seconds = deadline(d)?;
    let progressing = get_condition(status, reason::PROGRESSING)?;
    if is_complete(d, status) || progressing.reason.as_deref() == Some(reason::TIMED_OUT) {
        return None;
    }
    let updated = progressing.last_update_time.as_ref()?.0;
    let due = updated
        .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(i64::from(
            seconds,
        )))
        .ok()?;
    let wait = due.duration_since(now);
    Some(
        Duration::try_from(wait)
            .unwrap_or_default()
            .max(Duration::from_secs(1)),
    )
}

/// Progressing=Unknown on pause and resume (`checkPausedConditions`); `None` when the
/// status needs no change. A timed-out rollout keeps saying so.
pub fn paused_status(d: &Deployment, now: Timestamp) -> Option<DeploymentStatus> {
    deadline(d)?;
    let mut status = d.status.clone().unwrap_or_default();
    let current = get_condition(&status, reason::PROGRESSING);
    let reason_now = current.and_then(|c| c.reason.as_deref());
    if reason_now == Some(reason::TIMED_OUT) {
        return None;
    }
    let paused = d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
    let change = match (paused, reason_now == Some(reason::PAUSED)) {
        (true, false) => condition(
            reason::PROGRESSING,
            "Unknown",
            reason::PAUSED,
            "Deployment is paused".into(),
            now,
        ),
        (false, true) => condition(
            reason::PROGRESSING,
            "Unknown",
            reason::RESUMED,
            "Deployment is resumed".into(),
            now,
        ),
        _ => return None,
    };
    set_condition(&mut status, change);
    Some(status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn deployment(replicas: i32, surge: Value, unavailable: Value) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "generation": 1},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "web"}},
                "strategy": {"type": "RollingUpdate",
                             "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}},
                "progressDeadlineSeconds": 600,
                "revisionHistoryLimit": 2,
                "template": {"metadata": {"labels": {"app": "web"}},
                             "spec": {"containers": [{"name": "web", "image": "nginx:2"}]}}
            }
        }))
        .unwrap()
    }

    fn rs(name: &str, age: i64, replicas: i32, available: i32, desired: i32) -> ReplicaSet {
        serde_json::from_value(json!({
            "metadata": {"name": name,
                         "creationTimestamp": Timestamp::from_second(1_800_000_000 + age).unwrap().to_string(),
                         "annotations": {DESIRED_REPLICAS: desired.to_string()}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}}},
            "status": {"replicas": replicas, "readyReplicas": available, "availableReplicas": available}
        }))
        .unwrap()
    }

    #[test]
    fn percents_round_up_for_surge_and_down_for_unavailability() {
        let d = deployment(10, json!("25%"), json!("25%"));
        assert_eq!(fenceposts(&d), (3, 2));
        let d = deployment(10, json!(0), json!(0));
        assert_eq!(fenceposts(&d), (0, 1), "both zero would never move");
        let d = deployment(3, json!(1), json!(5));
        assert_eq!(max_unavailable(&d), 3, "never more than all of them");
        let d = deployment(1, json!("25%"), json!("25%"));
        assert_eq!((max_surge(&d), max_unavailable(&d)), (1, 0));
        assert_eq!(scaled(Some(&IntOrString::String("x%".into())), 10, true), 0);
    }

    fn apply(sets: &mut [ReplicaSet], scales: &[Scale]) {
        for scale in scales {
            let rs = sets
                .iter_mut()
                .find(|rs| rs.name_any() == scale.name)
                .unwrap();
            assert_eq!(replicas(rs), scale.from, "scaled from what it was");
            rs.spec.as_mut().unwrap().replicas = Some(scale.to);
        }
    }

    /// Pods start and stop at once: each ReplicaSet's status catches up with its spec, all
    /// its pods available.
    fn settle(sets: &mut [ReplicaSet]) {
        for rs in sets {
            let n = replicas(rs);
            let status = rs.status.as_mut().unwrap();
            status.replicas = n;
            status.ready_replicas = Some(n);
            status.available_replicas = Some(n);
        }
    }

    #[test]
    fn a_rolling_update_stays_within_its_fenceposts_and_finishes() {
        for (replicas_wanted, surge, unavailable) in [
            (10, json!("25%"), json!("25%")),
            (10, json!(0), json!(1)),
            (10, json!(1), json!(0)),
            (5, json!("100%"), json!(0)),
            (1, json!("25%"), json!("25%")),
        ] {
            let d = deployment(replicas_wanted, surge.clone(), unavailable.clone());
            let (max_up, max_down) = (max_surge(&d), max_unavailable(&d));
            let mut sets = vec![
                rs("old", 0, replicas_wanted, replicas_wanted, replicas_wanted),
                rs("new", 10, 0, 0, replicas_wanted),
            ];
            for step in 0.. {
                assert!(step < 100, "{surge} {unavailable}: never finished");
                let all: Vec<&ReplicaSet> = sets.iter().collect();
                let scales = match reconcile_new(&d, &all, &sets[1]) {
                    Some(scale) => vec![scale],
                    None => reconcile_old(&d, &all, &[&sets[0]], Some(&sets[1])),
                };
                if scales.is_empty() {
                    break;
                }
                apply(&mut sets, &scales);
                let pods: i32 = sets.iter().map(replicas).sum();
                assert!(
                    pods <= replicas_wanted + max_up,
                    "{surge}: surged to {pods}"
                );
                let available_now: i32 =
                    sets.iter().map(|rs| available(rs).min(replicas(rs))).sum();
                assert!(
                    available_now >= replicas_wanted - max_down,
                    "{unavailable}: dipped to {available_now}"
                );
                settle(&mut sets);
            }
            assert_eq!(
                (replicas(&sets[0]), replicas(&sets[1])),
                (0, replicas_wanted)
            );
        }
    }

    #[test]
    fn unavailable_old_pods_go_first_and_are_not_counted_twice() {
        let d = deployment(10, json!(0), json!(2));
        // The old set's 10 pods: 6 available, 4 not. The new set has 2, none ready yet.
        let old = rs("old", 0, 10, 6, 10);
        let new = rs("new", 10, 2, 0, 10);
        let scales = reconcile_old(&d, &[&old, &new], &[&old], Some(&new));
        // 12 pods - 8 must stay available - 2 new unavailable leaves 2 to drop, both unhealthy.
        assert_eq!(
            scales,
            [Scale {
                name: "old".into(),
                from: 10,
                to: 8
            }]
        );
    }

    #[test]
    fn a_resize_mid_rollout_is_shared_in_proportion() {
        // 10 replicas with 3 surge, mid rollout at 8 old + 5 new, then scaled to 20 (ceiling 25).
        let mut d = deployment(20, json!("25%"), json!("25%"));
        d.status = Some(DeploymentStatus {
            replicas: Some(13),
            ..DeploymentStatus::default()
        });
        let mut old = rs("old", 0, 8, 8, 10);
        let mut new = rs("new", 10, 5, 5, 10);
        for set in [&mut old, &mut new] {
            set.annotations_mut()
                .insert(MAX_REPLICAS.into(), "13".into());
        }
        assert!(is_scaling_event(&d, &[&old, &new]));
        let scales = proportional(&d, Some(&new), &[&old]);
        let grown = |name: &str| scales.iter().find(|s| s.name == name).map(|s| s.to);
        // 8 * 25/13 = 15.4 → 15; 5 * 25/13 = 9.6 → 10: 25 in all.
        assert_eq!((grown("old"), grown("new")), (Some(15), Some(10)));
    }

    #[test]
    fn one_active_replica_set_takes_the_whole_resize() {
        let d = deployment(7, json!("25%"), json!("25%"));
        let old = rs("old", 0, 0, 0, 3);
        let new = rs("new", 10, 3, 3, 3);
        assert_eq!(
            proportional(&d, Some(&new), &[&old]),
            [Scale {
                name: "new".into(),
                from: 3,
                to: 7
            }]
        );
    }

    #[test]
    fn history_keeps_the_newest_revisions_and_anything_with_pods() {
        let d = deployment(1, json!(1), json!(0));
        let mut sets: Vec<ReplicaSet> = (1..=5)
            .map(|n| {
                let mut set = rs(&format!("r{n}"), n, 0, 0, 1);
                set.annotations_mut()
                    .insert(template::REVISION.into(), n.to_string());
                set
            })
            .collect();
        sets[1].spec.as_mut().unwrap().replicas = Some(1);
        let old: Vec<&ReplicaSet> = sets.iter().collect();
        assert_eq!(history_to_drop(&d, &old), ["r1", "r3"]);
    }

    fn now(second: i64) -> Timestamp {
        Timestamp::from_second(1_900_000_000 + second).unwrap()
    }

    #[test]
    fn status_reports_availability_progress_completion_and_timeout() {
        let mut d = deployment(2, json!(1), json!(0));
        let new = rs("web-1", 0, 2, 1, 2);
        let status = rollout_status(&d, &[&new], Some(&new), now(0));
        assert_eq!(status.unavailable_replicas, Some(1));
        let available = get_condition(&status, reason::AVAILABLE).unwrap();
        assert_eq!(
            (available.status.as_str(), available.reason.as_deref()),
            ("False", Some(reason::MIN_UNAVAILABLE))
        );
        let progressing = get_condition(&status, reason::PROGRESSING).unwrap();
        assert_eq!(progressing.reason.as_deref(), Some(reason::RS_UPDATED));
        assert_eq!(
            progressing.message.as_deref(),
            Some("ReplicaSet \"web-1\" is progressing.")
        );
        d.status = Some(status);

        // No progress for longer than the deadline.
        assert_eq!(
            deadline_check(&d, d.status.as_ref().unwrap(), now(60)),
            Some(Duration::from_secs(540))
        );
        let stuck = rollout_status(&d, &[&new], Some(&new), now(601));
        let progressing = get_condition(&stuck, reason::PROGRESSING).unwrap();
        assert_eq!(
            (progressing.status.as_str(), progressing.reason.as_deref()),
            ("False", Some(reason::TIMED_OUT))
        );
        assert_eq!(
            progressing.message.as_deref(),
            Some("ReplicaSet \"web-1\" has timed out progressing.")
        );

        // Then every pod turns available: complete.
        let done = rs("web-1", 0, 2, 2, 2);
        let status = rollout_status(&d, &[&done], Some(&done), now(700));
        let progressing = get_condition(&status, reason::PROGRESSING).unwrap();
        assert_eq!(
            (progressing.status.as_str(), progressing.reason.as_deref()),
            ("True", Some(reason::NEW_RS_AVAILABLE))
        );
        assert_eq!(
            get_condition(&status, reason::AVAILABLE).unwrap().status,
            "True"
        );
        assert!(is_complete(&d, &status));
        assert_eq!(deadline_check(&d, &status, now(700)), None);
    }

    #[test]
    fn pausing_and_resuming_say_so_once() {
        let mut d = deployment(1, json!(1), json!(0));
        d.spec.as_mut().unwrap().paused = Some(true);
        let paused = paused_status(&d, now(0)).unwrap();
        let progressing = get_condition(&paused, reason::PROGRESSING).unwrap();
        assert_eq!(
            (progressing.status.as_str(), progressing.reason.as_deref()),
            ("Unknown", Some(reason::PAUSED))
        );
        d.status = Some(paused);
        assert_eq!(paused_status(&d, now(1)), None, "already said");
        d.spec.as_mut().unwrap().paused = Some(false);
        let resumed = paused_status(&d, now(2)).unwrap();
        assert_eq!(
            get_condition(&resumed, reason::PROGRESSING)
                .unwrap()
                .reason
                .as_deref(),
            Some(reason::RESUMED)
        );
    }
}
