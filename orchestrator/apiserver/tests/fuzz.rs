//! Arbitrary bodies, patches, selectors and paths through the real router: every answer is
//! a well-formed response with a designed status code — never a 500, never a panic.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, header};
use http_body_util::BodyExt;
use proptest::prelude::*;
use serde_json::{Value, json};
use slipway_apiserver::{ApiState, bootstrap, router};
use slipway_clock::ManualClock;
use slipway_store_sqlite::{Options, SqliteStore};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "[a-z$/.{}-]{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("metadata".to_owned()),
                    Just("name".to_owned()),
                    Just("spec".to_owned()),
                    Just("data".to_owned()),
                    Just("kind".to_owned()),
                    Just("apiVersion".to_owned()),
                    Just("containers".to_owned()),
                    Just("$patch".to_owned()),
                    "[a-z]{1,6}".prop_map(String::from),
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

struct Fixture {
    router: Router,
    _dir: tempfile::TempDir,
    runtime: tokio::runtime::Runtime,
}

fn fixture() -> Fixture {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let router = runtime.block_on(async {
        let store = SqliteStore::open(dir.path().join("state.db"), Options::default()).await.unwrap();
        let state = Arc::new(ApiState::new(
            Arc::new(store),
            ManualClock::at_epoch_2026().shared(),
            CancellationToken::new(),
        ));
        bootstrap(&state).await.unwrap();
        let app = router(state);
        // Objects for patches to land on.
        for (path, body) in [
            ("/api/v1/namespaces/default/configmaps", json!({"metadata": {"name": "target"}, "data": {"a": "b"}})),
            (
                "/apis/apps/v1/namespaces/default/deployments",
                json!({"metadata": {"name": "target"}, "spec": {"selector": {"matchLabels": {"app": "x"}},
                  "template": {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}}),
            ),
        ] {
            let request = Request::post(path)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string()))
                .unwrap();
            assert!(app.clone().oneshot(request).await.unwrap().status().is_success());
        }
        app
    });
    Fixture {
        router,
        _dir: dir,
        runtime,
    }
}

impl Fixture {
    fn send(&self, method: &str, uri: &str, content_type: &str, body: Vec<u8>) -> (u16, Vec<u8>) {
        self.runtime.block_on(async {
            let request = Request::builder()
                .method(method)
                .uri(uri)
                .header(header::CONTENT_TYPE, content_type)
                .body(Body::from(body))
                .unwrap();
            let response = self.router.clone().oneshot(request).await.unwrap();
            let code = response.status().as_u16();
            (
                code,
                response
                    .into_body()
                    .collect()
                    .await
                    .unwrap()
                    .to_bytes()
                    .to_vec(),
            )
        })
    }
}

fn assert_designed(code: u16, body: &[u8], what: &str) {
    assert!(
        code < 500 || code == 503 || code == 504,
        "{what}: {code} {}",
        String::from_utf8_lossy(body)
    );
    if code >= 400 {
        let status: Value = serde_json::from_slice(body)
            .unwrap_or_else(|_| panic!("{what}: {code} without a Status"));
        assert_eq!(status["kind"], "Status", "{what}");
        assert_eq!(status["code"], code, "{what}");
    }
}

const PATCH_TYPES: &[&str] = &[
    "application/merge-patch+json",
    "application/json-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn creates_answer_by_design(body in arbitrary_json()) {
        let f = fixture();
        for path in ["/api/v1/namespaces/default/configmaps", "/apis/apps/v1/namespaces/default/deployments", "/api/v1/namespaces"] {
            let (code, response) = f.send("POST", path, "application/json", body.to_string().into_bytes());
            assert_designed(code, &response, &format!("POST {path} {body}"));
        }
    }

    #[test]
    fn patches_answer_by_design(patch in arbitrary_json(), kind in 0usize..PATCH_TYPES.len()) {
        let f = fixture();
        for path in ["/api/v1/namespaces/default/configmaps/target?fieldManager=fuzz", "/apis/apps/v1/namespaces/default/deployments/target?fieldManager=fuzz"] {
            let (code, response) = f.send("PATCH", path, PATCH_TYPES[kind], patch.to_string().into_bytes());
            assert_designed(code, &response, &format!("PATCH {path} {} {patch}", PATCH_TYPES[kind]));
        }
    }

    #[test]
    fn raw_bytes_and_queries_answer_by_design(bytes in prop::collection::vec(any::<u8>(), 0..64), query in "[a-zA-Z=,!()%&.-]{0,40}") {
        let f = fixture();
        for media in ["application/json", "application/yaml"] {
            let (code, response) = f.send("POST", "/api/v1/namespaces/default/configmaps", media, bytes.clone());
            assert_designed(code, &response, &format!("raw bytes as {media}"));
        }
        let (code, response) = f.send("PATCH", "/api/v1/namespaces/default/configmaps/target?fieldManager=fuzz", "application/apply-patch+yaml", bytes.clone());
        assert_designed(code, &response, "raw bytes as an apply configuration");
        let uri = format!("/api/v1/namespaces/default/configmaps?labelSelector={query}");
        if uri.parse::<axum::http::Uri>().is_ok() {
            let (code, response) = f.send("GET", &uri, "application/json", Vec::new());
            assert_designed(code, &response, &uri);
        }
        let uri = format!("/api/v1/pods?fieldSelector={query}&limit={query}&watch=false");
        if uri.parse::<axum::http::Uri>().is_ok() {
            let (code, response) = f.send("GET", &uri, "application/json", Vec::new());
            assert_designed(code, &response, &uri);
        }
    }
}
