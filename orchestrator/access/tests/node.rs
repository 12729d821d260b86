//! Node tokens and the node authorizer.

use slipway_access::node::{NodeGraph, NodeTokens, node_token};
use slipway_access::{Attributes, Authenticator, Authorizer, Decision, Target, User};
use slipway_model::k8s_openapi::api::core::v1::Pod;

#[test]
fn node_tokens_name_their_node_and_nothing_else() {
    let tokens = NodeTokens::new("join-secret");
    let token = node_token("join-secret", "node-a");
    let user = tokens.authenticate(&token).expect("a node token");
    assert_eq!(user.name, "system:node:node-a");
    assert!(user.groups.contains(&"system:nodes".to_owned()));
    // Another join token, a renamed node, a cut or garbled token: unknown.
    let other = node_token("other-secret", "node-a");
    let renamed = token.replace("_node-a", "_node-b");
    let mut flipped = token.clone().into_bytes();
    flipped[4] = if flipped[4] == b'0' { b'1' } else { b'0' };
    let flipped = String::from_utf8(flipped).expect("ascii");
    for bad in [
        other.as_str(),
        &renamed,
        &flipped,
        &token[..20],
        "sln_",
        "",
        "join-secret",
        "sln_zz_node-a",
    ] {
        assert!(tokens.authenticate(bad).is_none(), "{bad:?}");
    }
}

fn pod(ns: &str, name: &str, node: Option<&str>, secret: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"namespace": ns, "name": name},
        "spec": {
            "nodeName": node,
            "containers": [{"name": "c", "image": "busybox",
                "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "x"}}}]}],
            "volumes": [{"name": "s", "secret": {"secretName": secret}}]
        }
    }))
    .expect("a pod")
}

fn get(resource: &str, ns: &str, name: &str) -> Attributes {
    Attributes {
        verb: "get".to_owned(),
        target: Target::Resource {
            group: String::new(),
            resource: resource.to_owned(),
            subresource: String::new(),
            namespace: ns.to_owned(),
            name: name.to_owned(),
        },
    }
}

#[test]
fn a_node_reads_only_what_its_pods_use() {
    let mut graph = NodeGraph::default();
    graph.upsert(&pod("a", "web", Some("n1"), "db"));
    graph.upsert(&pod("a", "pending", None, "unbound"));
    let n1 = User {
        name: "system:node:n1".into(),
        groups: vec!["system:nodes".into()],
    };
    let n2 = User {
        name: "system:node:n2".into(),
        groups: vec!["system:nodes".into()],
    };
    assert_eq!(
        graph.authorize(&n1, &get("secrets", "a", "db")),
        Decision::Allow
    );
    assert_eq!(
        graph.authorize(&n1, &get("configmaps", "a", "settings")),
        Decision::Allow
    );
    for (who, attrs) in [
        (&n2, get("secrets", "a", "db")),
        (&n1, get("secrets", "a", "unbound")),
        (&n1, get("secrets", "b", "db")),
        (
            &n1,
            Attributes {
                verb: "list".into(),
                ..get("secrets", "a", "")
            },
        ),
    ] {
        assert!(
            matches!(graph.authorize(who, &attrs), Decision::Deny(_)),
            "{} {attrs:?}",
            who.name
        );
    }
    // Moving the pod moves the right; deleting it removes it.
    graph.upsert(&pod("a", "web", Some("n2"), "db"));
    assert!(matches!(
        graph.authorize(&n1, &get("secrets", "a", "db")),
        Decision::Deny(_)
    ));
    assert_eq!(
        graph.authorize(&n2, &get("secrets", "a", "db")),
        Decision::Allow
    );
    graph.remove("a", "web");
    assert!(matches!(
        graph.authorize(&n2, &get("secrets", "a", "db")),
        Decision::Deny(_)
    ));
    // Writes: only its own Node and its own pods; not a node's business otherwise.
    let write = |resource: &str, sub: &str, ns: &str, name: &str| Attributes {
        verb: "patch".to_owned(),
        target: Target::Resource {
            group: String::new(),
            resource: resource.to_owned(),
            subresource: sub.to_owned(),
            namespace: ns.to_owned(),
            name: name.to_owned(),
        },
    };
    graph.upsert(&pod("a", "web", Some("n1"), "db"));
    assert_eq!(
        graph.authorize(&n1, &write("nodes", "status", "", "n1")),
        Decision::NoOpinion
    );
    assert!(matches!(
        graph.authorize(&n1, &write("nodes", "status", "", "n2")),
        Decision::Deny(_)
    ));
    assert_eq!(
        graph.authorize(&n1, &write("pods", "status", "a", "web")),
        Decision::NoOpinion
    );
    assert!(matches!(
        graph.authorize(&n2, &write("pods", "status", "a", "web")),
        Decision::Deny(_)
    ));
    let someone = User {
        name: "ana".into(),
        groups: vec![],
    };
    assert_eq!(
        graph.authorize(&someone, &get("secrets", "a", "db")),
        Decision::NoOpinion
    );
}
