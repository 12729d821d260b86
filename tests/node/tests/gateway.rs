//! A two-tier app through the gateway: an Ingress host routes to `web`, whose CGI calls
//! `api` by Service name. The same app in another namespace cannot reach the first one's
//! `api`; a rolling update of `api` under a bounded request load loses no request.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use slipway_client_tests::{Server, eventually};
use slipway_node_tests::{IMAGE, Node};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const NODE: &str = "gw-node";
/// At most this many requests go through the gateway while `api` rolls.
const LOAD: usize = 3000;

/// A Deployment of busybox httpd serving `/www` on 8080, prepared by `setup`.
fn httpd(name: &str, replicas: i32, setup: &str, env: serde_json::Value) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "strategy": {"rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "nodeName": NODE,
                    "terminationGracePeriodSeconds": 5,
                    "containers": [{
                        "name": "httpd", "image": IMAGE, "env": env,
                        "command": ["sh", "-c", format!("mkdir -p /www/cgi-bin && {setup} && exec httpd -f -p 8080 -h /www")],
                        "ports": [{"name": "http", "containerPort": 8080}],
                        "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
                        // As Kubernetes advises: keep serving while the endpoint's removal
                        // reaches every proxy.
                        "lifecycle": {"preStop": {"exec": {"command": ["sleep", "2"]}}}
                    }]
                }
            }
        }
    }))
    .expect("a deployment")
}

fn api(version: &str) -> Deployment {
    httpd(
        "api",
        2,
        "echo \"api $VERSION\" > /www/index.html",
        json!([{"name": "VERSION", "value": version}]),
    )
}

/// `web`'s CGI asks `api` by name and says what it got.
fn web() -> Deployment {
    let cgi = r#"printf '#!/bin/sh\necho Content-Type: text/plain\necho\necho "web got: $(printf "GET / HTTP/1.0\\r\\n\\r\\n" | nc -w 2 api 80 | tail -n 1)"\n' > /www/cgi-bin/call && chmod +x /www/cgi-bin/call"#;
    httpd("web", 1, cgi, json!([]))
}

fn service(name: &str) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}
    }))
    .expect("a service")
}

fn ingress(host: &str) -> Ingress {
    serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"rules": [{"host": host, "http": {"paths": [{
            "path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": "web", "port": {"name": "http"}}}
        }]}}]}
    }))
    .expect("an ingress")
}

async fn deploy(server: &Server, namespace: &str, host: &str) {
    let namespaces: Api<Namespace> = Api::all(server.client.clone());
    let ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": namespace}})).expect("a namespace");
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .expect("create the namespace");
    let deployments: Api<Deployment> = Api::namespaced(server.client.clone(), namespace);
    let services: Api<Service> = Api::namespaced(server.client.clone(), namespace);
    let ingresses: Api<Ingress> = Api::namespaced(server.client.clone(), namespace);
    let pp = PostParams::default();
    services
        .create(&pp, &service("web"))
        .await
        .expect("create web's service");
    if namespace == "shop" {
        services
            .create(&pp, &service("api"))
            .await
            .expect("create api's service");
        deployments
            .create(&pp, &api("v1"))
            .await
            .expect("create api");
    }
    deployments.create(&pp, &web()).await.expect("create web");
    ingresses
        .create(&pp, &ingress(host))
        .await
        .expect("create the ingress");
}

/// One HTTP/1.0 request (so no chunked answer) through the gateway on a fresh connection: (status, body).
async fn get(
    gateway: std::net::SocketAddr,
    host: &str,
    path: &str,
) -> std::io::Result<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(gateway).await?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_string(&mut answer))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer in 20 s"))??;
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_two_tier_app_serves_through_the_gateway_and_a_rolling_update_loses_no_request() {
    let server = Server::start().await;
    let controllers = server.run_controllers();
    let node = Node::start(&server, NODE).await;
    let gateway = node.gateway();
    deploy(&server, "shop", "shop.preview.localhost").await;
    deploy(&server, "intruder", "intruder.preview.localhost").await;

    let body = eventually(
        "web to answer with api's page through the gateway",
        async || {
            let (status, body) = get(gateway, "shop.preview.localhost", "/cgi-bin/call")
                .await
                .ok()?;
            (status == 200 && body.contains("api v1")).then_some(body)
        },
    )
    .await;
    assert_eq!(body, "web got: api v1\n");

    // The same web in another namespace has no `api` to call.
    let body = eventually("the intruder's web to answer", async || {
        let (status, body) = get(gateway, "intruder.preview.localhost", "/cgi-bin/call")
            .await
            .ok()?;
        (status == 200).then_some(body)
    })
    .await;
    assert_eq!(body, "web got: \n");

    let (status, page) = get(gateway, "nobody.preview.localhost", "/")
        .await
        .expect("a 404 page");
    assert_eq!(status, 404, "{page}");

    // Roll api to v2 while a client keeps calling through the gateway, until it is done.
    let rolled = tokio_util::sync::CancellationToken::new();
    let load = tokio::spawn({
        let rolled = rolled.clone();
        async move {
            let mut answers = Vec::new();
            while !rolled.is_cancelled() && answers.len() < LOAD {
                answers.push(get(gateway, "shop.preview.localhost", "/cgi-bin/call").await);
            }
            answers
        }
    });
    let deployments: Api<Deployment> = Api::namespaced(server.client.clone(), "shop");
    let patch = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "httpd", "env": [{"name": "VERSION", "value": "v2"}]}
    ]}}}});
    deployments
        .patch("api", &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .expect("roll api");
    eventually("the rollout to finish", async || {
        let d = deployments.get("api").await.ok()?;
        let status = d.status?;
        let done = d.metadata.generation == status.observed_generation
            && status.updated_replicas == Some(2)
            && status.available_replicas == Some(2)
            && status.replicas == Some(2);
        done.then_some(())
    })
    .await;
    rolled.cancel();
    let answers = load.await.expect("the load task");
    let mut failures = Vec::new();
    let (mut v1, mut v2) = (0, 0);
    for answer in &answers {
        match answer {
            Ok((200, body)) if body == "web got: api v1\n" => v1 += 1,
            Ok((200, body)) if body == "web got: api v2\n" => v2 += 1,
            other => failures.push(format!("{other:?}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {LOAD} requests failed: {failures:?}",
        failures.len()
    );
    assert!(v1 > 0, "the load began before the rollout");
    eventually("api v2 to serve every request", async || {
        let (_, body) = get(gateway, "shop.preview.localhost", "/cgi-bin/call")
            .await
            .ok()?;
        (body == "web got: api v2\n").then_some(())
    })
    .await;
    eprintln!("during the rollout: {v1} answers from v1, {v2} from v2");

    node.stop().await;
    controllers.stop().await;
}
