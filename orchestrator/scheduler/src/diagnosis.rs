//! Why a pod fits nowhere, worded as kube-scheduler's `FitError` words it: `0/N nodes are
//! available: ` and then, for each reason, how many nodes gave it, as `<count> <reason>`
//! strings sorted as Go's `sort.Strings` sorts them (bytewise, count included), joined by
//! `, ` and ended with a period. With no nodes at all the message is upstream's
//! `no nodes available to schedule pods`.

use std::collections::HashMap;

/// The message when the cluster has no nodes (`ErrNoNodesAvailable`).
pub const NO_NODES: &str = "no nodes available to schedule pods";

/// The reasons nodes rejected a pod, counted.
#[derive(Debug, Default, Clone)]
pub struct Diagnosis {
    reasons: HashMap<String, usize>,
}

impl Diagnosis {
    /// Counts one node's rejection.
    pub fn reject(&mut self, reasons: Vec<String>) {
        for reason in reasons {
            *self.reasons.entry(reason).or_default() += 1;
        }
    }

    /// The message for a pod rejected by every one of `all` nodes.
    pub fn message(&self, all: usize) -> String {
        if all == 0 {
            return NO_NODES.to_owned();
        }
        let mut counted: Vec<String> = self
            .reasons
            .iter()
            .map(|(reason, count)| format!("{count} {reason}"))
            .collect();
        counted.sort_unstable();
        let mut message = format!("0/{all} nodes are available:");
        if !counted.is_empty() {
            message.push(' ');
            message.push_str(&counted.join(", "));
            message.push('.');
        }
        message
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diagnose(nodes: &[&[&str]]) -> String {
        let mut diagnosis = Diagnosis::default();
        for reasons in nodes {
            diagnosis.reject(reasons.iter().map(|r| (*r).to_owned()).collect());
        }
        diagnosis.message(nodes.len())
    }

    #[test]
    fn messages_count_and_sort_reasons_as_kubernetes() {
        let cases: [(&[&[&str]], &str); 5] = [
            (&[], NO_NODES),
            (
                &[
                    &["Insufficient cpu"],
                    &["Insufficient cpu"],
                    &["node(s) had untolerated taint {dedicated: gpu}"],
                ],
                "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 2 Insufficient cpu.",
            ),
            (
                &[
                    &["Insufficient cpu", "Insufficient memory"],
                    &["Insufficient memory"],
                ],
                "0/2 nodes are available: 1 Insufficient cpu, 2 Insufficient memory.",
            ),
            (
                &[
                    &["node(s) were unschedulable"],
                    &["node(s) didn't match Pod's node affinity/selector"],
                    &["node(s) had untolerated taint {node.kubernetes.io/not-ready: }"],
                    &["Insufficient nvidia.com/gpu"],
                ],
                "0/4 nodes are available: 1 Insufficient nvidia.com/gpu, 1 node(s) didn't match Pod's node affinity/selector, 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }, 1 node(s) were unschedulable.",
            ),
            (
                // Go sorts the strings bytewise, so "10 ..." comes before "2 ...".
                &[&["Too many pods"] as &[&str]; 10],
                "0/10 nodes are available: 10 Too many pods.",
            ),
        ];
        for (nodes, expected) in cases {
            assert_eq!(diagnose(nodes), expected);
        }
        let mut mixed = Diagnosis::default();
        for _ in 0..10 {
            mixed.reject(vec!["Too many pods".to_owned()]);
        }
        mixed.reject(vec!["Insufficient cpu".to_owned()]);
        mixed.reject(vec!["Insufficient cpu".to_owned()]);
        assert_eq!(
            mixed.message(12),
            "0/12 nodes are available: 10 Too many pods, 2 Insufficient cpu."
        );
    }
}
