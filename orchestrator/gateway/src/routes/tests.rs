//! Table tests of host and path matching.

use k8s_openapi::api::networking::v1::Ingress;
use serde_json::{Value, json};

use super::RouteTable;

/// An Ingress in namespace `ns` with the given spec, created at second `created`.
fn ingress(ns: &str, name: &str, created: u32, spec: Value) -> Ingress {
    serde_json::from_value(json!({
        "metadata": {
            "namespace": ns,
            "name": name,
            "creationTimestamp": format!("2025-01-01T00:00:{created:02}Z"),
        },
        "spec": spec,
    }))
    .unwrap()
}

fn svc(name: &str, port: u16) -> Value {
    json!({ "service": { "name": name, "port": { "number": port } } })
}

fn path(path: &str, path_type: &str, backend: Value) -> Value {
    json!({ "path": path, "pathType": path_type, "backend": backend })
}

fn rule(host: Option<&str>, paths: Vec<Value>) -> Value {
    match host {
        Some(host) => json!({ "host": host, "http": { "paths": paths } }),
        None => json!({ "http": { "paths": paths } }),
    }
}

/// Asserts where each (host, path) goes: `ns/service:port`, or `None` for a 404.
fn check(ingresses: &[Ingress], cases: &[(&str, &str, Option<&str>)]) {
    let table = RouteTable::build(ingresses);
    for (host, path, want) in cases {
        let got = table.route(host, path).map(ToString::to_string);
        assert_eq!(got.as_deref(), *want, "{host}{path}");
    }
}

#[test]
fn exact_and_wildcard_hosts() {
    let ingresses = [
        ingress(
            "a",
            "exact",
            0,
            json!({ "rules": [rule(Some("app.example.com"), vec![path("/", "Prefix", svc("exact", 80))])] }),
        ),
        ingress(
            "a",
            "wild",
            0,
            json!({ "rules": [rule(Some("*.Example.com"), vec![path("/", "Prefix", svc("wild", 80))])] }),
        ),
    ];
    check(
        &ingresses,
        &[
            ("app.example.com", "/", Some("a/exact:80")),
            ("other.example.com", "/x", Some("a/wild:80")),
            // A wildcard covers exactly one more label.
            ("example.com", "/", None),
            ("a.b.example.com", "/", None),
            ("app.example.org", "/", None),
        ],
    );
}

#[test]
fn prefix_matches_element_wise() {
    let ingresses = [ingress(
        "a",
        "i",
        0,
        json!({ "rules": [rule(Some("h"), vec![
            path("/foo", "Prefix", svc("foo", 80)),
            path("/bar/", "Prefix", svc("bar", 80)),
            path("/impl", "ImplementationSpecific", svc("impl", 80)),
        ])] }),
    )];
    check(
        &ingresses,
        &[
            ("h", "/foo", Some("a/foo:80")),
            ("h", "/foo/", Some("a/foo:80")),
            ("h", "/foo/bar", Some("a/foo:80")),
            ("h", "/foobar", None),
            ("h", "/fo", None),
            // A trailing slash in the rule is ignored.
            ("h", "/bar", Some("a/bar:80")),
            ("h", "/bar/x", Some("a/bar:80")),
            ("h", "/barx", None),
            ("h", "/impl/x", Some("a/impl:80")),
            ("h", "/implx", None),
            ("h", "/", None),
        ],
    );
}

#[test]
fn exact_matches_the_whole_path_only() {
    let ingresses = [ingress(
        "a",
        "i",
        0,
        json!({ "rules": [rule(Some("h"), vec![path("/foo", "Exact", svc("foo", 80))])] }),
    )];
    check(
        &ingresses,
        &[
            ("h", "/foo", Some("a/foo:80")),
            ("h", "/foo/", None),
            ("h", "/foo/bar", None),
        ],
    );
}

#[test]
fn longest_path_wins_and_exact_beats_prefix_of_equal_length_across_ingresses() {
    let ingresses = [
        ingress(
            "a",
            "root",
            0,
            json!({ "rules": [rule(Some("h"), vec![path("/", "Prefix", svc("root", 80))])] }),
        ),
        ingress(
            "b",
            "api",
            1,
            json!({ "rules": [rule(Some("h"), vec![path("/api", "Prefix", svc("api", 80))])] }),
        ),
        ingress(
            "c",
            "v1",
            2,
            json!({ "rules": [rule(Some("h"), vec![
            path("/api/v1", "Prefix", svc("v1", 80)),
            path("/api", "Exact", svc("api-exact", 80)),
        ])] }),
        ),
    ];
    check(
        &ingresses,
        &[
            ("h", "/", Some("a/root:80")),
            ("h", "/other", Some("a/root:80")),
            ("h", "/api", Some("c/api-exact:80")),
            ("h", "/api/", Some("b/api:80")),
            ("h", "/api/v1/x", Some("c/v1:80")),
            ("h", "/api/v2", Some("b/api:80")),
        ],
    );
}

#[test]
fn the_oldest_ingress_wins_a_tie() {
    let newer = ingress(
        "a",
        "newer",
        5,
        json!({ "rules": [rule(Some("h"), vec![path("/", "Prefix", svc("newer", 80))])] }),
    );
    let older = ingress(
        "z",
        "older",
        1,
        json!({ "rules": [rule(Some("h"), vec![path("/", "Prefix", svc("older", 80))])] }),
    );
    check(&[newer, older], &[("h", "/", Some("z/older:80"))]);
}

#[test]
fn default_backends() {
    let ingresses = [
        ingress(
            "a",
            "app",
            0,
            json!({
                "defaultBackend": svc("app-default", 80),
                "rules": [rule(Some("app.example.com"), vec![path("/api", "Prefix", svc("api", 80))])],
            }),
        ),
        ingress(
            "b",
            "other",
            1,
            json!({
                "rules": [rule(Some("other.example.com"), vec![path("/api", "Prefix", svc("other", 80))])],
            }),
        ),
        ingress(
            "c",
            "catch-all",
            2,
            json!({ "defaultBackend": svc("catch-all", 8080) }),
        ),
        ingress(
            "d",
            "second-catch-all",
            3,
            json!({ "defaultBackend": svc("second", 80) }),
        ),
    ];
    check(
        &ingresses,
        &[
            ("app.example.com", "/api", Some("a/api:80")),
            // A host the Ingress names, no path matching: that Ingress's default.
            ("app.example.com", "/web", Some("a/app-default:80")),
            // The other host's Ingress has no default: nothing there matches, so the catch-all.
            ("other.example.com", "/web", Some("c/catch-all:8080")),
            ("unknown.example.com", "/", Some("c/catch-all:8080")),
            ("", "/", Some("c/catch-all:8080")),
        ],
    );
}

#[test]
fn hostless_rules_serve_every_host_after_its_own_rules() {
    let ingresses = [
        ingress(
            "a",
            "named",
            0,
            json!({ "rules": [rule(Some("h"), vec![path("/app", "Prefix", svc("named", 80))])] }),
        ),
        ingress(
            "a",
            "any",
            0,
            json!({ "rules": [rule(None, vec![path("/", "Prefix", svc("any", 80))])] }),
        ),
    ];
    check(
        &ingresses,
        &[
            ("h", "/app", Some("a/named:80")),
            ("h", "/x", Some("a/any:80")),
            ("other", "/", Some("a/any:80")),
        ],
    );
}

#[test]
fn exact_host_before_wildcard_before_hostless() {
    let ingresses = [
        ingress(
            "a",
            "any",
            0,
            json!({ "rules": [rule(None, vec![path("/", "Prefix", svc("any", 80))])] }),
        ),
        ingress(
            "a",
            "wild",
            0,
            json!({ "rules": [rule(Some("*.example.com"), vec![path("/", "Prefix", svc("wild", 80))])] }),
        ),
        ingress(
            "a",
            "exact",
            0,
            json!({ "rules": [rule(Some("www.example.com"), vec![path("/a", "Prefix", svc("exact", 80))])] }),
        ),
    ];
    check(
        &ingresses,
        &[
            ("www.example.com", "/a/b", Some("a/exact:80")),
            ("www.example.com", "/b", Some("a/wild:80")),
            ("x.example.com", "/a", Some("a/wild:80")),
            ("example.com", "/a", Some("a/any:80")),
        ],
    );
}

#[test]
fn ingress_class_slipway_or_none_is_served_others_are_ignored() {
    let spec = |class: Option<&str>, service: &str| {
        let mut spec =
            json!({ "rules": [rule(Some(service), vec![path("/", "Prefix", svc(service, 80))])] });
        if let Some(class) = class {
            spec["ingressClassName"] = json!(class);
        }
        spec
    };
    let mut annotated = ingress("a", "annotated", 0, spec(None, "annotated"));
    annotated.metadata.annotations =
        Some([("kubernetes.io/ingress.class".to_owned(), "nginx".to_owned())].into());
    let ingresses = [
        ingress("a", "none", 0, spec(None, "none")),
        ingress("a", "ours", 0, spec(Some("slipway"), "ours")),
        ingress("a", "nginx", 0, spec(Some("nginx"), "nginx")),
        annotated,
    ];
    check(
        &ingresses,
        &[
            ("none", "/", Some("a/none:80")),
            ("ours", "/", Some("a/ours:80")),
            ("nginx", "/", None),
            ("annotated", "/", None),
        ],
    );
}

#[test]
fn resource_backends_bad_paths_and_bad_hosts_are_left_out() {
    let resource = json!({ "resource": { "apiGroup": "k8s.example.com", "kind": "StorageBucket", "name": "b" } });
    let ingresses = [ingress(
        "a",
        "i",
        0,
        json!({
            "tls": [{ "hosts": ["h"], "secretName": "cert" }],
            "rules": [
                rule(Some("h"), vec![
                    path("/bucket", "Prefix", resource),
                    path("relative", "Prefix", svc("relative", 80)),
                    path("/odd", "Regex", svc("odd", 80)),
                    path("/", "Prefix", svc("root", 80)),
                ]),
                rule(Some("bad host!"), vec![path("/", "Prefix", svc("bad", 80))]),
                rule(Some("ports"), vec![
                    path("/zero", "Prefix", svc("zero", 0)),
                    path("/named", "Prefix", json!({ "service": { "name": "named", "port": { "name": "http" } } })),
                    path("/none", "Prefix", json!({ "service": { "name": "none" } })),
                ]),
            ],
        }),
    )];
    check(
        &ingresses,
        &[
            ("h", "/bucket", Some("a/root:80")),
            ("h", "/odd", Some("a/root:80")),
            ("bad host!", "/", None),
            ("ports", "/zero", None),
            ("ports", "/named", Some("a/named:http")),
            ("ports", "/none", None),
        ],
    );
}

#[test]
fn no_ingresses_route_nothing() {
    check(&[], &[("h", "/", None), ("", "/", None)]);
}
