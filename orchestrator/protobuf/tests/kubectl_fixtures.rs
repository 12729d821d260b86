//! Bodies captured from kubectl 1.32 POSTing to a fake server on 127.0.0.1: `kubectl
//! --server=http://127.0.0.1:PORT --validate=false [-n default] create namespace demo`,
//! `create secret generic creds --from-literal=password=hunter2` and `create deployment web
//! --image=nginx:1.27 --replicas=2 --port=80`.

use serde_json::json;
use slipway_protobuf::decode;

#[test]
fn create_namespace_demo() {
    let body = include_bytes!("fixtures/kubectl-1.32-create-namespace-demo.bin");
    assert_eq!(
        decode(body).unwrap(),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}})
    );
}

#[test]
fn create_secret_generic_creds() {
    let body = include_bytes!("fixtures/kubectl-1.32-create-secret-creds.bin");
    assert_eq!(
        decode(body).unwrap(),
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "creds", "namespace": "default"},
            "data": {"password": "aHVudGVyMg=="}
        })
    );
}

#[test]
fn create_deployment_web() {
    let body = include_bytes!("fixtures/kubectl-1.32-create-deployment-web.bin");
    assert_eq!(
        decode(body).unwrap(),
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"labels": {"app": "web"}, "name": "web", "namespace": "default"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [
                        {"image": "nginx:1.27", "name": "nginx", "ports": [{"containerPort": 80}]}
                    ]}
                }
            }
        })
    );
}
