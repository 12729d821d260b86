//! The proxy over real network namespaces: pods reach Services of their own namespace by
//! ClusterIP and name, never another namespace's; endpoints on another node are reached
//! through its tunnel, which refuses a wrong key; closing a listener drains.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Endpoints, Service};
use serde_json::json;
use slipway_net::{HostsFile, LocalPod, Netns, PortRef, Proxy, ProxyConfig, TunnelKey};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// A network namespace with `lo` up and an address, removed on drop.
struct Ns {
    name: String,
    ip: Ipv4Addr,
}

fn ip(args: &[&str]) {
    let status = std::process::Command::new("ip")
        .args(args)
        .status()
        .unwrap();
    assert!(status.success(), "ip {args:?}");
}

impl Ns {
    async fn new(tag: &str, ip: Ipv4Addr) -> Ns {
        let name = format!("slipway-nettest-{}-{tag}", std::process::id());
        ip_cmd_quiet(&["netns", "delete", &name]);
        crate::ip(&["netns", "add", &name]);
        crate::ip(&["-n", &name, "link", "set", "lo", "up"]);
        crate::ip(&["-n", &name, "addr", "add", &format!("{ip}/32"), "dev", "lo"]);
        slipway_net::redirect::install(&name)
            .await
            .expect("the Service redirect");
        Ns { name, ip }
    }

    fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    async fn handle(&self) -> Netns {
        Netns::open(&self.path()).await.unwrap()
    }
}

fn ip_cmd_quiet(args: &[&str]) {
    let _ = std::process::Command::new("ip")
        .args(args)
        .stderr(std::process::Stdio::null())
        .status();
}

impl Drop for Ns {
    fn drop(&mut self) {
        ip_cmd_quiet(&["netns", "delete", &self.name]);
    }
}

const CLUSTER_IP: Ipv4Addr = Ipv4Addr::new(127, 100, 9, 1);

fn service(namespace: &str, name: &str) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"clusterIP": CLUSTER_IP.to_string(), "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
    }))
    .unwrap()
}

fn endpoints(namespace: &str, name: &str, ip: Ipv4Addr, node: &str) -> Endpoints {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": namespace},
        "subsets": [{"addresses": [{"ip": ip.to_string(), "nodeName": node}],
                     "ports": [{"name": "http", "port": 8080}]}]
    }))
    .unwrap()
}

/// Answers every line with `<tag>:<line>` on 8080 inside `netns`.
async fn serve_echo(netns: &Netns, ip: Ipv4Addr, tag: &'static str) {
    let listener = netns.listen(SocketAddr::from((ip, 8080))).await.unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                loop {
                    let n = match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    let reply = format!("{tag}:{}", String::from_utf8_lossy(&buf[..n]));
                    if stream.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
}

async fn ask(stream: &mut TcpStream, line: &str) -> String {
    stream.write_all(line.as_bytes()).await.unwrap();
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
        .await
        .expect("an answer within 10 s")
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// A connection through which a line gets an answer, once the proxy has caught up with a
/// change (it applies changes in the background).
async fn connect_eventually(netns: &Netns, addr: SocketAddrV4) -> TcpStream {
    for _ in 0..200 {
        if let Ok(mut stream) = netns.connect(SocketAddr::V4(addr)).await
            && stream.write_all(b"ping").await.is_ok()
        {
            let mut buf = [0u8; 64];
            if let Ok(Ok(n)) =
                tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await
                && n > 0
            {
                return stream;
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{addr} never answered");
}

/// Whether a connection to `addr` from `netns` gets no answer: refused, or closed unanswered.
async fn unanswered(netns: &Netns, addr: SocketAddrV4) -> bool {
    let Ok(mut stream) = netns.connect(SocketAddr::V4(addr)).await else {
        return true;
    };
    if stream.write_all(b"anyone?").await.is_err() {
        return true;
    }
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

async fn unanswered_eventually(netns: &Netns, addr: SocketAddrV4) {
    for _ in 0..200 {
        if unanswered(netns, addr).await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{addr} still answers");
}

fn config(node: &str, key: &str) -> ProxyConfig {
    ProxyConfig {
        node: node.into(),
        node_address: Ipv4Addr::LOCALHOST,
        key: TunnelKey::derive(key),
    }
}

fn local(uid: &str, namespace: &str, ns: &Ns, netns: Netns, hosts: Option<HostsFile>) -> LocalPod {
    LocalPod {
        uid: uid.into(),
        namespace: namespace.into(),
        ip: ns.ip,
        netns,
        hosts,
    }
}

#[tokio::test]
async fn pods_reach_services_of_their_namespace_only_and_hosts_follow() {
    let web = Ns::new("web", Ipv4Addr::new(127, 64, 9, 2)).await;
    let api = Ns::new("api", Ipv4Addr::new(127, 64, 9, 3)).await;
    let stranger = Ns::new("str", Ipv4Addr::new(127, 64, 9, 4)).await;
    let (web_ns, api_ns, stranger_ns) = (
        web.handle().await,
        api.handle().await,
        stranger.handle().await,
    );
    serve_echo(&api_ns, api.ip, "api").await;

    let dir = tempfile::tempdir().unwrap();
    let hosts_path = dir.path().join("hosts");
    std::fs::write(&hosts_path, "127.0.0.1\tlocalhost\n").unwrap();
    let shutdown = CancellationToken::new();
    let proxy = Proxy::new(config("n1", "secret"), shutdown.clone());
    tokio::spawn(proxy.clone().run());
    let hosts = HostsFile {
        path: hosts_path.clone(),
        base: "127.0.0.1\tlocalhost\n".into(),
    };
    proxy.add_pod(local("web", "shop", &web, web_ns.clone(), Some(hosts)));
    proxy.add_pod(local("api", "shop", &api, api_ns.clone(), None));
    proxy.add_pod(local(
        "stranger",
        "elsewhere",
        &stranger,
        stranger_ns.clone(),
        None,
    ));
    proxy.set_service(&service("shop", "api"));
    proxy.set_endpoints(&endpoints("shop", "api", api.ip, "n1"));

    let target = SocketAddrV4::new(CLUSTER_IP, 80);
    let mut conn = connect_eventually(&web_ns, target).await;
    assert_eq!(ask(&mut conn, "hello").await, "api:hello");
    assert_eq!(
        proxy
            .env_for("shop")
            .iter()
            .find(|(k, _)| k == "API_SERVICE_HOST")
            .map(|(_, v)| v.as_str()),
        Some("127.100.9.1")
    );
    assert!(proxy.env_for("elsewhere").is_empty());

    // The proxy takes none of the pods' own ports: a server in the api pod can listen on
    // every address at the Service's port, and the pod still reaches the Service.
    let own = api_ns
        .listen(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 80)))
        .await;
    assert!(own.is_ok(), "{own:?}");
    let mut from_itself = connect_eventually(&api_ns, target).await;
    assert_eq!(ask(&mut from_itself, "me").await, "api:me");

    // The other namespace's pod reaches nothing at that address.
    assert!(unanswered(&stranger_ns, target).await);

    let hosts = std::fs::read_to_string(&hosts_path).unwrap();
    assert!(hosts.starts_with("127.0.0.1\tlocalhost\n"), "{hosts}");
    assert!(
        hosts.contains("127.100.9.1\tapi\tapi.shop\tapi.shop.svc\tapi.shop.svc.cluster.local\n"),
        "{hosts}"
    );

    // Removing the Service closes new connections but lets the open one finish (drain).
    proxy.remove_service("shop", "api");
    unanswered_eventually(&web_ns, target).await;
    assert_eq!(ask(&mut conn, "still there").await, "api:still there");
    for _ in 0..200 {
        if !std::fs::read_to_string(&hosts_path)
            .unwrap()
            .contains("api.shop")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        std::fs::read_to_string(&hosts_path).unwrap(),
        "127.0.0.1\tlocalhost\n"
    );
    shutdown.cancel();
}

#[tokio::test]
async fn endpoints_on_another_node_are_reached_through_its_tunnel_with_the_key() {
    let web = Ns::new("tweb", Ipv4Addr::new(127, 65, 9, 2)).await;
    let api = Ns::new("tapi", Ipv4Addr::new(127, 66, 9, 3)).await;
    let (web_ns, api_ns) = (web.handle().await, api.handle().await);
    serve_echo(&api_ns, api.ip, "remote").await;
    let shutdown = CancellationToken::new();

    let near = Proxy::new(config("near", "cluster secret"), shutdown.clone());
    let far = Proxy::new(config("far", "cluster secret"), shutdown.clone());
    let tunnel = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tunnel_addr = tunnel.local_addr().unwrap();
    tokio::spawn(far.clone().serve_tunnel(tunnel));
    tokio::spawn(near.clone().run());
    tokio::spawn(far.clone().run());
    far.add_pod(local("api", "shop", &api, api_ns, None));
    near.add_pod(local("web", "shop", &web, web_ns.clone(), None));
    near.set_tunnel("far", Some(tunnel_addr));
    near.set_service(&service("shop", "api"));
    near.set_endpoints(&endpoints("shop", "api", api.ip, "far"));

    let mut conn = connect_eventually(&web_ns, SocketAddrV4::new(CLUSTER_IP, 80)).await;
    assert_eq!(ask(&mut conn, "over there").await, "remote:over there");
    let client = std::net::IpAddr::V4(web.ip);
    let mut direct = near
        .connect("shop", "api", &PortRef::Name("http".into()), client)
        .await
        .unwrap();
    assert_eq!(ask(&mut direct, "direct").await, "remote:direct");

    // A proxy with another secret, and a raw connection without any, are refused.
    let intruder = Proxy::new(config("intruder", "guess"), shutdown.clone());
    intruder.set_tunnel("far", Some(tunnel_addr));
    intruder.set_service(&service("shop", "api"));
    intruder.set_endpoints(&endpoints("shop", "api", api.ip, "far"));
    let refused = intruder
        .connect("shop", "api", &PortRef::Number(80), client)
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("refused: unauthorized"),
        "{refused}"
    );
    let mut raw = TcpStream::connect(tunnel_addr).await.unwrap();
    raw.write_all(format!("{}:8080\n", api.ip).as_bytes())
        .await
        .unwrap();
    let mut answer = String::new();
    raw.read_to_string(&mut answer).await.unwrap();
    assert_eq!(answer, "ERR bad handshake\n");
    shutdown.cancel();
}
