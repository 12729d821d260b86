//! Services on real nodes: pods reach a Service of their namespace by name and by the
//! variables set at their start, through the proxy in their own network namespace; a pod
//! of another namespace reaches neither the name nor the address; an endpoint on another
//! node is reached through that node's tunnel.

use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use kube::api::{Api, LogParams, PostParams};
use serde_json::json;
use slipway_client_tests::{Server, eventually};
use slipway_node_tests::{IMAGE, Node};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// An httpd answering `body` on every address at port 80, the Service's own port, Ready
/// once it listens: the proxy must leave the pod's ports alone.
fn api_pod(node: &str, body: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "api", "labels": {"app": "api"}},
        "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1, "containers": [{
            "name": "httpd", "image": IMAGE,
            "command": ["sh", "-c", format!("mkdir -p /www && echo '{body}' > /www/index.html && exec httpd -f -p 80 -h /www")],
            "ports": [{"name": "web", "containerPort": 80}],
            "readinessProbe": {"tcpSocket": {"port": 80}, "periodSeconds": 1}
        }]}
    }))
    .expect("a pod")
}

/// A pod that prints the body an HTTP GET to `host` on port 80 gets (busybox's `nc`; its
/// `wget` crashes on this machine), then `reached`, or only `done` when every try failed.
fn client_pod(name: &str, node: &str, host: &str) -> Pod {
    let script = format!(
        "echo \"host=$API_SERVICE_HOST port=$API_SERVICE_PORT\"; \
         for i in $(seq 1 50); do \
           out=$(printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {host} 80 2>&1); \
           if echo \"$out\" | grep -q hello; then echo \"$out\" | tail -n 1; echo reached; break; fi; \
           sleep 0.2; \
         done; echo \"last: $out\"; echo done; sleep 3600"
    );
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1, "containers": [{
            "name": "client", "image": IMAGE, "command": ["sh", "-c", script]
        }]}
    }))
    .expect("a pod")
}

fn api_service() -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": "api"},
        "spec": {"selector": {"app": "api"}, "ports": [{"name": "http", "port": 80, "targetPort": "web"}]}
    }))
    .expect("a service")
}

async fn namespace(server: &Server, name: &str) {
    let namespaces: Api<Namespace> = Api::all(server.client.clone());
    let ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": name}})).expect("a namespace");
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .expect("create the namespace");
}

/// The log of a pod once it says `done`.
async fn finished_log(pods: &Api<Pod>, name: &str) -> String {
    eventually(&format!("{name} to finish its tries"), async || {
        let log = pods.logs(name, &LogParams::default()).await.ok()?;
        log.contains("done").then_some(log)
    })
    .await
}

fn cluster_ip(service: &Service) -> String {
    service
        .spec
        .as_ref()
        .and_then(|s| s.cluster_ip.clone())
        .expect("a ClusterIP")
}

async fn ready_endpoints(server: &Server, ns: &str) {
    let endpoints: Api<k8s_openapi::api::core::v1::Endpoints> =
        Api::namespaced(server.client.clone(), ns);
    eventually("the api endpoint to be ready", async || {
        let e = endpoints.get_opt("api").await.ok()??;
        e.subsets?
            .iter()
            .any(|s| s.addresses.as_ref().is_some_and(|a| !a.is_empty()))
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pod_reaches_a_service_of_its_namespace_by_name_and_another_namespace_cannot() {
    let server = Server::start().await;
    let controllers = server.run_controllers();
    let node = Node::start(&server, "svc-node").await;
    namespace(&server, "shop").await;
    namespace(&server, "elsewhere").await;
    let shop: Api<Pod> = Api::namespaced(server.client.clone(), "shop");
    let services: Api<Service> = Api::namespaced(server.client.clone(), "shop");
    let service = services
        .create(&PostParams::default(), &api_service())
        .await
        .expect("create the service");
    let ip = cluster_ip(&service);
    shop.create(
        &PostParams::default(),
        &api_pod("svc-node", "hello from api"),
    )
    .await
    .expect("create api");
    ready_endpoints(&server, "shop").await;

    shop.create(
        &PostParams::default(),
        &client_pod("web", "svc-node", "api"),
    )
    .await
    .expect("create web");
    let log = finished_log(&shop, "web").await;
    assert!(log.contains(&format!("host={ip} port=80")), "{log}");
    assert!(log.contains("hello from api\nreached"), "{log}");

    shop.create(
        &PostParams::default(),
        &client_pod("web-fqdn", "svc-node", "api.shop.svc.cluster.local"),
    )
    .await
    .expect("create web-fqdn");
    let log = finished_log(&shop, "web-fqdn").await;
    assert!(log.contains("hello from api\nreached"), "{log}");

    // A NodePort Service of the same pods answers on the node's address.
    let mut node_port = api_service();
    node_port.metadata.name = Some("api-outside".into());
    node_port.spec.as_mut().expect("a spec").type_ = Some("NodePort".into());
    let node_port = services
        .create(&PostParams::default(), &node_port)
        .await
        .expect("create the NodePort service");
    let port = node_port
        .spec
        .and_then(|s| s.ports?.first()?.node_port)
        .expect("a node port");
    let answer = eventually("the node port to answer", async || {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", u16::try_from(port).ok()?))
            .await
            .ok()?;
        stream.write_all(b"GET / HTTP/1.0\r\n\r\n").await.ok()?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.ok()?;
        answer.contains("hello from api").then_some(answer)
    })
    .await;
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");

    // Another namespace: no variables, no name, and nothing listens on the address.
    let elsewhere: Api<Pod> = Api::namespaced(server.client.clone(), "elsewhere");
    elsewhere
        .create(
            &PostParams::default(),
            &client_pod("by-name", "svc-node", "api.shop"),
        )
        .await
        .expect("create");
    elsewhere
        .create(
            &PostParams::default(),
            &client_pod("by-ip", "svc-node", &ip),
        )
        .await
        .expect("create");
    for name in ["by-name", "by-ip"] {
        let log = finished_log(&elsewhere, name).await;
        assert!(log.starts_with("host= port=\n"), "{log}");
        assert!(
            !log.contains("reached") && !log.contains("hello from api"),
            "{name}: {log}"
        );
    }
    node.stop().await;
    controllers.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_endpoint_on_another_node_is_reached_through_its_tunnel() {
    let server = Server::start().await;
    let controllers = server.run_controllers();
    let near = Node::start(&server, "near-node").await;
    let far = Node::start(&server, "far-node").await;
    let pods: Api<Pod> = Api::namespaced(server.client.clone(), "default");
    let services: Api<Service> = Api::namespaced(server.client.clone(), "default");
    services
        .create(&PostParams::default(), &api_service())
        .await
        .expect("create the service");
    pods.create(
        &PostParams::default(),
        &api_pod("far-node", "hello from far away"),
    )
    .await
    .expect("create api");
    ready_endpoints(&server, "default").await;
    pods.create(
        &PostParams::default(),
        &client_pod("web", "near-node", "api"),
    )
    .await
    .expect("create web");
    let log = finished_log(&pods, "web").await;
    assert!(log.contains("hello from far away\nreached"), "{log}");
    near.stop().await;
    far.stop().await;
    controllers.stop().await;
}
