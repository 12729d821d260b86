//! Pods on a real node: the agent on its own containerd and runc, joined to the API server
//! in-process, running the busybox image the harness builds. Each test checks what a user
//! sees through the API (status, logs, events, usage), as kubectl would show it.

use std::time::Duration;

use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Pod};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, LogParams, Patch, PatchParams, PostParams,
    WatchEvent, WatchParams,
};
use serde_json::{Value, json};
use slipway_client_tests::{NODE_TOKEN, Server, eventually, eventually_gone};
use slipway_node_tests::{IMAGE, IMAGE_2, Node};

fn pod(name: &str, node: &str, containers: Value) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"nodeName": node, "terminationGracePeriodSeconds": 2, "containers": containers},
    }))
    .expect("a pod")
}

fn shell(name: &str, script: &str) -> Value {
    json!({"name": name, "image": IMAGE, "command": ["sh", "-c", script]})
}

async fn create(pods: &Api<Pod>, pod: Pod) -> Pod {
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create the pod")
}

fn container_status(pod: &Pod, name: &str) -> Option<k8s_openapi::api::core::v1::ContainerStatus> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|s| s.name == name)
        .cloned()
}

fn condition(pod: &Pod, kind: &str) -> Option<String> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind)
        .map(|c| c.status.clone())
}

/// Waits until the pod passes `check`, failing with its last status after
/// [`slipway_client_tests::PATIENCE`].
async fn until(pods: &Api<Pod>, name: &str, what: &str, check: impl Fn(&Pod) -> bool) -> Pod {
    let deadline = tokio::time::Instant::now() + slipway_client_tests::PATIENCE;
    loop {
        let pod = pods.get(name).await.expect("read the pod");
        if check(&pod) {
            return pod;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never {what}; last status: {}",
            serde_json::to_string_pretty(&pod.status).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The (reason, message) of every Event about the pod `name`.
async fn events_of(server: &Server, name: &str) -> Vec<(String, String)> {
    let events: Api<Event> = Api::namespaced(server.client.clone(), "default");
    events
        .list(&Default::default())
        .await
        .expect("list events")
        .items
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(name))
        .map(|e| (e.reason.unwrap_or_default(), e.message.unwrap_or_default()))
        .collect()
}

/// Creates the ConfigMap `name` with `data`.
async fn config_map(server: &Server, name: &str, data: Value) {
    let config_maps: Api<ConfigMap> = Api::namespaced(server.client.clone(), "default");
    let config_map: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": name}, "data": data}))
            .expect("a ConfigMap");
    config_maps
        .create(&PostParams::default(), &config_map)
        .await
        .expect("create the ConfigMap");
}

async fn logs(pods: &Api<Pod>, name: &str, params: &LogParams) -> String {
    pods.logs(name, params).await.unwrap_or_default()
}

/// `GET /stats/summary` on the agent's endpoint with `token`: the status code and body.
async fn summary(node: &Node, token: Option<&str>) -> (u16, String) {
    let address = node.endpoint();
    let authorization = token.map(|t| format!("Bearer {t}"));
    tokio::task::spawn_blocking(move || {
        let headers: Vec<(&str, &str)> = authorization
            .iter()
            .map(|a| ("Authorization", a.as_str()))
            .collect();
        slipway_testkit::http::exchange(
            &address,
            "GET",
            "127.0.0.1",
            "/stats/summary",
            &headers,
            "",
        )
    })
    .await
    .expect("the request's thread")
}

/// The agent's summary names pod `default/web` (uid `uid`) with its container's memory,
/// only for the node token; and the API server's `metrics.k8s.io` serves the pod from it
/// once a CPU rate exists.
async fn usage_is_reported(server: &Server, node: &Node, uid: Option<&str>) {
    let (code, body) = summary(node, None).await;
    assert_eq!(code, 401, "{body}");
    let (code, body) = summary(node, Some(NODE_TOKEN)).await;
    assert_eq!(code, 200, "{body}");
    let summary: Value = serde_json::from_str(&body).expect("a JSON summary");
    assert_eq!(summary["node"]["nodeName"], node.name.as_str(), "{summary}");
    assert!(
        summary["node"]["memory"]["workingSetBytes"].as_u64() > Some(0),
        "{summary}"
    );
    let web = summary["pods"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["podRef"]["namespace"] == "default" && p["podRef"]["name"] == "web")
        .unwrap_or_else(|| panic!("no pod web in {summary}"));
    assert_eq!(web["podRef"]["uid"].as_str(), uid, "{web}");
    assert_eq!(web["containers"][0]["name"], "web", "{web}");
    assert!(
        web["containers"][0]["memory"]["workingSetBytes"].as_u64() > Some(0),
        "{web}"
    );
    assert!(
        web["containers"][0]["cpu"]["usageCoreNanoSeconds"].is_u64(),
        "{web}"
    );

    let metrics: Api<DynamicObject> = Api::namespaced_with(
        server.client.clone(),
        "default",
        &ApiResource {
            group: "metrics.k8s.io".into(),
            version: "v1beta1".into(),
            api_version: "metrics.k8s.io/v1beta1".into(),
            kind: "PodMetrics".into(),
            plural: "pods".into(),
        },
    );
    let usage = eventually("PodMetrics of web", async || {
        let found = metrics.get_opt("web").await.expect("the API answers")?;
        found.data["containers"][0]["usage"].as_object().cloned()
    })
    .await;
    assert!(
        usage["cpu"].as_str().is_some_and(|c| c.ends_with('n')),
        "{usage:?}"
    );
    assert!(usage["memory"].as_str().is_some(), "{usage:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pod_runs_reports_its_status_and_its_logs_arrive() {
    let server = Server::start().await;
    let node = Node::start(&server, "node-a").await;
    let pods: Api<Pod> = Api::namespaced(server.client.clone(), "default");
    config_map(&server, "settings", json!({"mode": "fast"})).await;
    let mut container = shell(
        "web",
        "echo hello from $(hostname) in $POD_NAMESPACE mode=$MODE; echo oops >&2; \
         grep -c web /etc/hosts; sleep 3600",
    );
    container["env"] = json!([
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
    ]);
    create(&pods, pod("web", &node.name, json!([container]))).await;
    let running = until(&pods, "web", "web Running and Ready", |p| {
        condition(p, "Ready").as_deref() == Some("True")
    })
    .await;
    let status = running.status.clone().expect("a status");
    assert_eq!(status.phase.as_deref(), Some("Running"));
    assert_eq!(status.host_ip.as_deref(), Some("127.0.0.1"));
    let ip = status.pod_ip.clone().expect("a pod IP");
    assert!(ip.starts_with("127.64."), "{ip}");
    assert_eq!(status.qos_class.as_deref(), Some("BestEffort"));
    let web = container_status(&running, "web").expect("the container's status");
    assert!(web.ready);
    assert_eq!(web.started, Some(true));
    assert_eq!(web.restart_count, 0);
    assert!(web.image_id.starts_with("sha256:"), "{}", web.image_id);
    assert!(
        web.container_id
            .as_deref()
            .is_some_and(|id| id.starts_with("containerd://"))
    );
    assert!(web.state.and_then(|s| s.running).is_some());

    let all = eventually("the logs", async || {
        let text = logs(&pods, "web", &LogParams::default()).await;
        text.contains("1\n").then_some(text)
    })
    .await;
    assert!(
        all.contains("hello from web in default mode=fast\n"),
        "{all:?}"
    );
    assert!(all.contains("oops\n"), "{all:?}");
    let last = logs(
        &pods,
        "web",
        &LogParams {
            tail_lines: Some(1),
            ..LogParams::default()
        },
    )
    .await;
    let final_line = all.lines().last().unwrap_or_default();
    assert_eq!(last, format!("{final_line}\n"), "the last line of {all:?}");
    let stamped = logs(
        &pods,
        "web",
        &LogParams {
            timestamps: true,
            ..LogParams::default()
        },
    )
    .await;
    // stdout and stderr are separate pipes, so their relative order is not fixed.
    let hello = stamped
        .lines()
        .find(|l| l.contains("hello from web"))
        .unwrap_or_default();
    let (stamp, text) = hello.split_once(' ').unwrap_or_default();
    assert!(
        stamp.parse::<k8s_openapi::jiff::Timestamp>().is_ok(),
        "{stamped:?}"
    );
    assert!(text.starts_with("hello from web"), "{stamped:?}");

    usage_is_reported(&server, &node, running.metadata.uid.as_deref()).await;

    let events = events_of(&server, "web").await;
    assert!(
        events.iter().any(|(reason, _)| reason == "Started"),
        "{events:?}"
    );

    let uid = running.metadata.uid.clone().expect("a uid");
    pods.delete("web", &DeleteParams::default())
        .await
        .expect("delete the pod");
    eventually_gone(&pods, "web").await;
    assert!(!std::path::Path::new(&format!("/run/netns/slipway-{uid}")).exists());
    assert!(!node.data_dir().join("pods").join(&uid).exists());
    let left: Vec<_> = node.runtime.list().await.expect("list containers");
    assert!(left.is_empty(), "{left:?}");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crashing_container_backs_off_and_an_oom_kill_is_reported() {
    let server = Server::start().await;
    let node = Node::start(&server, "node-b").await;
    let pods: Api<Pod> = Api::namespaced(server.client.clone(), "default");
    create(
        &pods,
        pod(
            "crash",
            &node.name,
            json!([shell("app", "echo attempt; exit 3")]),
        ),
    )
    .await;
    let mut hog = shell("hog", "head -c 256m /dev/zero | tail");
    hog["resources"] = json!({"limits": {"memory": "16Mi"}});
    let mut oom = pod("oom", &node.name, json!([hog]));
    if let Some(spec) = oom.spec.as_mut() {
        spec.restart_policy = Some("Never".into());
    }
    create(&pods, oom).await;

    // Restarted at least once and backing off: the first restart is immediate, the next
    // waits 10 s, doubling (on a loaded machine a start may fail first and take a step).
    let crashing = until(
        &pods,
        "crash",
        "crash restarted and in CrashLoopBackOff",
        |p| {
            container_status(p, "app").is_some_and(|s| {
                s.restart_count >= 1
                    && s.state
                        .and_then(|s| s.waiting)
                        .and_then(|w| w.reason)
                        .as_deref()
                        == Some("CrashLoopBackOff")
            })
        },
    )
    .await;
    let app = container_status(&crashing, "app").expect("status");
    let last = app
        .last_state
        .and_then(|s| s.terminated)
        .expect("the last run ended");
    assert_eq!(last.exit_code, 3);
    assert_eq!(last.reason.as_deref(), Some("Error"));
    let message = app
        .state
        .and_then(|s| s.waiting)
        .and_then(|w| w.message)
        .unwrap_or_default();
    assert!(
        message.starts_with("back-off ")
            && message.contains("s restarting failed container=app pod=crash_default("),
        "{message}"
    );
    let previous = logs(
        &pods,
        "crash",
        &LogParams {
            previous: true,
            ..LogParams::default()
        },
    )
    .await;
    assert_eq!(previous, "attempt\n");

    let killed = until(&pods, "oom", "oom Failed", |p| {
        p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed")
    })
    .await;
    let hog = container_status(&killed, "hog").expect("status");
    let ended = hog.state.and_then(|s| s.terminated).expect("terminated");
    assert_eq!(ended.reason.as_deref(), Some("OOMKilled"), "{ended:?}");
    assert_eq!(ended.exit_code, 137);
    assert_eq!(hog.restart_count, 0);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn probes_restart_a_dead_container_and_take_readiness_away() {
    let server = Server::start().await;
    let node = Node::start(&server, "node-c").await;
    let pods: Api<Pod> = Api::namespaced(server.client.clone(), "default");
    let mut web = shell(
        "web",
        "mkdir -p /www && echo ok > /www/index.html && httpd -p 8080 -h /www && \
         touch /tmp/alive && sleep 3600",
    );
    web["ports"] = json!([{"name": "http", "containerPort": 8080}]);
    web["readinessProbe"] = json!({"httpGet": {"path": "/index.html", "port": "http"},
                                   "periodSeconds": 1, "failureThreshold": 1});
    web["livenessProbe"] = json!({"exec": {"command": ["cat", "/tmp/alive"]},
                                  "initialDelaySeconds": 1, "periodSeconds": 1, "failureThreshold": 2});
    let mut tcp = shell("tcp", "httpd -f -p 9090");
    tcp["readinessProbe"] = json!({"tcpSocket": {"port": 9090}, "periodSeconds": 1});
    create(&pods, pod("probed", &node.name, json!([web, tcp]))).await;
    let ready = until(&pods, "probed", "probed Ready", |p| {
        condition(p, "Ready").as_deref() == Some("True")
    })
    .await;
    assert!(container_status(&ready, "tcp").is_some_and(|s| s.ready));
    let first = container_status(&ready, "web").and_then(|s| s.container_id);

    // The probes exec into the container like `kubectl exec` would; the test does the
    // same through the runtime to break what the probes look at.
    let id = first
        .clone()
        .unwrap_or_default()
        .trim_start_matches("containerd://")
        .to_owned();
    let exec = |args: &[&str]| slipway_runtime::ExecConfig {
        id: format!("t{}", args.len()),
        process: json!({"args": args, "env": ["PATH=/bin"], "cwd": "/", "user": {"uid": 0, "gid": 0}}),
        output: None,
    };
    node.runtime
        .exec(
            &id,
            &exec(&["rm", "/www/index.html"]),
            Duration::from_secs(10),
        )
        .await
        .expect("remove the page");
    let unready = until(&pods, "probed", "probed unready", |p| {
        condition(p, "Ready").as_deref() == Some("False")
    })
    .await;
    assert!(container_status(&unready, "web").is_some_and(|s| !s.ready && s.restart_count == 0));
    node.runtime
        .exec(
            &id,
            &exec(&["rm", "/tmp/alive", "-f"]),
            Duration::from_secs(10),
        )
        .await
        .expect("remove the liveness file");
    let restarted = until(&pods, "probed", "web restarted", |p| {
        container_status(p, "web").is_some_and(|s| s.restart_count >= 1 && s.container_id != first)
    })
    .await;
    let web = container_status(&restarted, "web").expect("status");
    let last = web
        .last_state
        .and_then(|s| s.terminated)
        .expect("the killed run");
    assert_ne!(last.exit_code, 0);
    let messages: Vec<String> = events_of(&server, "probed")
        .await
        .into_iter()
        .map(|(_, message)| message)
        .collect();
    assert!(
        messages.iter().any(
            |m| m.starts_with("Readiness probe failed: HTTP probe failed with statuscode: 404")
        ),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("Liveness probe failed:")),
        "{messages:?}"
    );
    assert!(
        messages.contains(&"Container web failed liveness probe, will be restarted".to_owned()),
        "{messages:?}"
    );
    // A startup probe holds back liveness: this liveness probe would fail (and restart
    // the container) before /tmp/started exists, but it only starts once startup passed.
    let mut slow = shell("slow", "sleep 2; touch /tmp/started; sleep 3600");
    slow["startupProbe"] = json!({"exec": {"command": ["cat", "/tmp/started"]},
                                  "periodSeconds": 1, "failureThreshold": 30});
    slow["livenessProbe"] = json!({"exec": {"command": ["cat", "/tmp/started"]},
                                   "periodSeconds": 1, "failureThreshold": 1});
    create(&pods, pod("slow", &node.name, json!([slow]))).await;
    let started = until(&pods, "slow", "slow started and Ready", |p| {
        container_status(p, "slow").is_some_and(|s| s.started == Some(true) && s.ready)
    })
    .await;
    assert_eq!(
        container_status(&started, "slow").map(|s| s.restart_count),
        Some(0),
        "liveness waited for startup"
    );
    // A fresh container has its page again, so it becomes ready again.
    until(&pods, "probed", "probed Ready again", |p| {
        condition(p, "Ready").as_deref() == Some("True")
    })
    .await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_config_map_volume_is_updated_in_place() {
    let server = Server::start().await;
    let node = Node::start(&server, "node-d").await;
    let pods: Api<Pod> = Api::namespaced(server.client.clone(), "default");
    let config_maps: Api<ConfigMap> = Api::namespaced(server.client.clone(), "default");
    config_map(&server, "greeting", json!({"text": "hello"})).await;
    let mut reader = shell(
        "reader",
        "while true; do cat /config/text; echo; sleep 0.2; done",
    );
    reader["volumeMounts"] = json!([{"name": "config", "mountPath": "/config", "readOnly": true}]);
    let mut spec = pod("reader", &node.name, json!([reader]));
    if let Some(s) = spec.spec.as_mut() {
        s.volumes = Some(
            serde_json::from_value(json!([
            {"name": "config", "configMap": {"name": "greeting"}}]))
            .expect("volumes"),
        );
    }
    create(&pods, spec).await;
    eventually("hello in the logs", async || {
        logs(&pods, "reader", &LogParams::default())
            .await
            .contains("hello\n")
            .then_some(())
    })
    .await;
    let before = until(&pods, "reader", "reader running", |p| {
        container_status(p, "reader").is_some_and(|s| s.ready)
    })
    .await;
    config_maps
        .patch(
            "greeting",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"text": "bonjour"}})),
        )
        .await
        .expect("update the ConfigMap");
    eventually("bonjour in the logs", async || {
        logs(
            &pods,
            "reader",
            &LogParams {
                tail_lines: Some(1),
                ..LogParams::default()
            },
        )
        .await
        .contains("bonjour")
        .then_some(())
    })
    .await;
    let after = pods.get("reader").await.expect("read");
    assert_eq!(
        container_status(&after, "reader").and_then(|s| s.container_id),
        container_status(&before, "reader").and_then(|s| s.container_id),
        "the file changed under the same container"
    );
    node.stop().await;
}

/// The last status the API showed for a pod before it went away.
async fn watch_until_deleted(pods: &Api<Pod>, name: &str) -> Pod {
    let params = WatchParams::default().fields(&format!("metadata.name={name}"));
    let mut stream = pods.watch(&params, "0").await.expect("watch").boxed();
    let mut last = None;
    let deadline = tokio::time::Instant::now() + slipway_client_tests::PATIENCE;
    loop {
        let event = tokio::time::timeout_at(deadline, stream.try_next())
            .await
            .expect("the pod is deleted in time")
            .expect("the watch works")
            .expect("the watch goes on");
        match event {
            WatchEvent::Added(p) | WatchEvent::Modified(p) => last = Some(p),
            WatchEvent::Deleted(_) => return last.expect("a status before deletion"),
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn termination_honours_handlers_and_the_grace_period() {
    let server = Server::start().await;
    let node = Node::start(&server, "node-e").await;
    let pods: Api<Pod> = Api::namespaced(server.client.clone(), "default");
    let mut polite = shell(
        "app",
        "trap 'echo bye; exit 0' TERM; while true; do sleep 0.2; done",
    );
    polite["lifecycle"] = json!({"preStop": {"exec": {"command": [
        "sh", "-c", "echo drained > /dev/termination-log"]}}});
    create(&pods, pod("polite", &node.name, json!([polite]))).await;
    create(
        &pods,
        pod(
            "stubborn",
            &node.name,
            json!([shell("app", "trap '' TERM; sleep 3600")]),
        ),
    )
    .await;
    for name in ["polite", "stubborn"] {
        until(&pods, name, "running", |p| {
            container_status(p, "app").is_some_and(|s| s.ready)
        })
        .await;
    }
    let polite = tokio::spawn({
        let pods = pods.clone();
        async move { watch_until_deleted(&pods, "polite").await }
    });
    let stubborn = tokio::spawn({
        let pods = pods.clone();
        async move { watch_until_deleted(&pods, "stubborn").await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    for name in ["polite", "stubborn"] {
        pods.delete(name, &DeleteParams::default())
            .await
            .expect("delete");
    }
    let ended = |pod: &Pod| {
        container_status(pod, "app")
            .and_then(|s| s.state?.terminated)
            .unwrap_or_else(|| panic!("ended: {:?}", pod.status))
    };
    let polite = polite.await.expect("watch");
    let finished = ended(&polite);
    assert_eq!(finished.exit_code, 0, "the TERM handler ran");
    assert_eq!(
        finished.message.as_deref(),
        Some("drained\n"),
        "the preStop hook ran and its termination message is reported"
    );
    let stubborn = stubborn.await.expect("watch");
    let killed = ended(&stubborn);
    assert_eq!(killed.exit_code, 137, "killed after the grace period");
    // The deletion timestamp is when the grace period ends; timestamps are in seconds.
    let deadline = stubborn
        .metadata
        .deletion_timestamp
        .expect("a deletion timestamp")
        .0;
    let finished = killed.finished_at.expect("finished").0;
    assert!(
        finished.duration_since(deadline).as_secs() >= -1,
        "SIGKILL waited for the 2 s grace period: finished {finished}, grace ended {deadline}"
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deployment_becomes_available_and_rolls_to_a_new_image() {
    let server = Server::start().await;
    let node = Node::start(&server, "node-f").await;
    let controllers = server.run_controllers();
    let scheduler = server.run_scheduler();
    let deployments: Api<Deployment> = Api::namespaced(server.client.clone(), "default");
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                     "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "web", "image": IMAGE, "command": ["sleep", "3600"],
                                     "resources": {"requests": {"cpu": "10m", "memory": "8Mi"}}}]}}}}))
    .expect("a deployment");
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .expect("create");
    let available = |image: &'static str| {
        let deployments = deployments.clone();
        async move {
            eventually(&format!("3 available on {image}"), async || {
                let d = deployments.get("web").await.ok()?;
                let status = d.status?;
                let template = d.spec?.template.spec?.containers[0].image.clone()?;
                (template == image
                    && status.available_replicas == Some(3)
                    && status.updated_replicas == Some(3)
                    && status.replicas == Some(3))
                .then_some(())
            })
            .await;
        }
    };
    available(IMAGE).await;
    deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"template": {"spec": {
            "containers": [{"name": "web", "image": IMAGE_2}]}}}})),
        )
        .await
        .expect("set the new image");
    available(IMAGE_2).await;
    let pods: Api<Pod> = Api::namespaced(server.client.clone(), "default");
    let deadline = tokio::time::Instant::now() + slipway_client_tests::PATIENCE;
    loop {
        let list = pods.list(&Default::default()).await.expect("list pods");
        let done = list.items.len() == 3
            && list
                .items
                .iter()
                .all(|p| container_status(p, "web").is_some_and(|s| s.image == IMAGE_2 && s.ready));
        if done {
            break;
        }
        let seen: Vec<_> = list
            .items
            .iter()
            .map(|p| {
                (
                    p.metadata.name.clone(),
                    p.metadata.deletion_timestamp.is_some(),
                    p.status.clone(),
                )
            })
            .collect();
        assert!(
            tokio::time::Instant::now() < deadline,
            "never only new pods left: {seen:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    deployments
        .delete("web", &DeleteParams::default())
        .await
        .expect("delete");
    eventually("the pods are gone", async || {
        pods.list(&Default::default())
            .await
            .ok()?
            .items
            .is_empty()
            .then_some(())
    })
    .await;
    controllers.stop().await;
    scheduler.stop().await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_agent_adopts_running_pods_and_repairs_the_rest() {
    let server = Server::start().await;
    let mut node = Node::start(&server, "node-g").await;
    let pods: Api<Pod> = Api::namespaced(server.client.clone(), "default");
    for name in ["steady", "orphaned", "vanishing"] {
        // The readiness probe passes only in the container's own environment, which an
        // adopting agent must use for its exec probes too.
        let mut app = shell("app", "sleep 3600");
        app["env"] = json!([{"name": "MARK", "value": "ours"}]);
        app["readinessProbe"] = json!({"exec": {"command": ["sh", "-c", "test \"$MARK\" = ours"]},
                                       "periodSeconds": 1});
        create(&pods, pod(name, &node.name, json!([app]))).await;
    }
    let mut ids = std::collections::BTreeMap::new();
    for name in ["steady", "orphaned", "vanishing"] {
        let running = until(&pods, name, "running", |p| {
            container_status(p, "app").is_some_and(|s| s.ready)
        })
        .await;
        ids.insert(
            name,
            (
                running.metadata.uid.clone().unwrap_or_default(),
                container_status(&running, "app")
                    .and_then(|s| s.container_id)
                    .unwrap_or_default(),
            ),
        );
    }
    node.stop_agent().await;
    // While the agent is away: one pod is deleted outright, one loses its container.
    pods.delete(
        "orphaned",
        &DeleteParams {
            grace_period_seconds: Some(0),
            ..DeleteParams::default()
        },
    )
    .await
    .expect("force delete");
    let vanishing = ids["vanishing"]
        .1
        .trim_start_matches("containerd://")
        .to_owned();
    node.runtime
        .delete(&vanishing)
        .await
        .expect("remove the container");
    node.start_agent().await;

    let repaired = until(&pods, "vanishing", "vanishing restarted", |p| {
        container_status(p, "app").is_some_and(|s| s.ready && s.restart_count == 1)
    })
    .await;
    let app = container_status(&repaired, "app").expect("status");
    assert_eq!(
        app.last_state
            .and_then(|s| s.terminated)
            .and_then(|t| t.reason)
            .as_deref(),
        Some("ContainerStatusUnknown")
    );
    let orphan_uid = ids["orphaned"].0.clone();
    eventually("the orphan's containers removed", async || {
        let left = node.runtime.list().await.ok()?;
        left.iter()
            .all(|c| c.labels.get("slipway.dev/pod-uid") != Some(&orphan_uid))
            .then_some(())
    })
    .await;
    assert!(!std::path::Path::new(&format!("/run/netns/slipway-{orphan_uid}")).exists());
    let steady = until(&pods, "steady", "steady Ready after the restart", |p| {
        container_status(p, "app").is_some_and(|s| s.ready)
    })
    .await;
    let app = container_status(&steady, "app").expect("status");
    assert_eq!(
        app.container_id.as_deref(),
        Some(ids["steady"].1.as_str()),
        "the same container runs on"
    );
    assert_eq!(app.restart_count, 0);
    assert!(app.ready);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_loses_unused_images_first() {
    let server = Server::start().await;
    let node = Node::start(&server, "node-h").await;
    let pods: Api<Pod> = Api::namespaced(server.client.clone(), "default");
    create(
        &pods,
        pod("user", &node.name, json!([shell("app", "sleep 3600")])),
    )
    .await;
    until(&pods, "user", "user running", |p| {
        container_status(p, "app").is_some_and(|s| s.ready)
    })
    .await;
    // Thresholds of 0% make any disk "full": everything unused goes, nothing in use.
    let policy = slipway_agent::images::GcPolicy {
        high_percent: 0,
        low_percent: 0,
        period: Duration::from_secs(300),
        min_age: Duration::ZERO,
    };
    let removed = slipway_agent::images::collect(
        node.runtime.as_ref(),
        &slipway_agent::images::Usage::default(),
        node.data_dir(),
        policy,
    )
    .await;
    assert_eq!(removed, [IMAGE_2]);
    let left: Vec<String> = node
        .runtime
        .images()
        .await
        .expect("images")
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(left, [IMAGE], "the image a container uses stays");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn security_context_volumes_and_init_containers_shape_the_containers() {
    let server = Server::start().await;
    let node = Node::start(&server, "node-i").await;
    let pods: Api<Pod> = Api::namespaced(server.client.clone(), "default");
    let mut first = shell("first", "echo from-init > /work/order");
    first["volumeMounts"] = json!([{"name": "work", "mountPath": "/work"}]);
    let mut second = shell("second", "echo second >> /work/order");
    second["volumeMounts"] = json!([{"name": "work", "mountPath": "/work"}]);
    let mut app = shell(
        "app",
        "cat /work/order; id -u; id -g; \
         touch /root-write 2>/dev/null && echo root-writable || echo root-read-only; \
         grep CapEff /proc/self/status; grep -c ' /scratch tmpfs' /proc/mounts; \
         cat /info/name; echo; sleep 3600",
    );
    app["securityContext"] = json!({"runAsUser": 1000, "runAsGroup": 3000,
        "readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false,
        "capabilities": {"drop": ["ALL"]}});
    app["volumeMounts"] = json!([
        {"name": "work", "mountPath": "/work"},
        {"name": "scratch", "mountPath": "/scratch"},
        {"name": "info", "mountPath": "/info"},
    ]);
    let mut spec = pod("shaped", &node.name, json!([app]));
    if let Some(s) = spec.spec.as_mut() {
        s.init_containers = Some(serde_json::from_value(json!([first, second])).expect("init"));
        s.volumes = Some(
            serde_json::from_value(json!([
                {"name": "work", "emptyDir": {}},
                {"name": "scratch", "emptyDir": {"medium": "Memory", "sizeLimit": "8Mi"}},
                {"name": "info", "downwardAPI": {"items": [
                    {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}},
            ]))
            .expect("volumes"),
        );
    }
    create(&pods, spec).await;
    let running = until(&pods, "shaped", "shaped Ready", |p| {
        condition(p, "Ready").as_deref() == Some("True")
    })
    .await;
    assert_eq!(condition(&running, "Initialized").as_deref(), Some("True"));
    let init = running
        .status
        .as_ref()
        .and_then(|s| s.init_container_statuses.clone())
        .unwrap_or_default();
    assert_eq!(init.len(), 2);
    assert!(init.iter().all(|s| {
        s.state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .is_some_and(|t| t.exit_code == 0 && t.reason.as_deref() == Some("Completed"))
    }));
    let said = eventually("the app's report", async || {
        let text = logs(&pods, "shaped", &LogParams::default()).await;
        text.contains("shaped").then_some(text)
    })
    .await;
    assert_eq!(
        said,
        "from-init\nsecond\n1000\n3000\nroot-read-only\nCapEff:\t0000000000000000\n1\nshaped\n"
    );

    let mut root = shell("app", "sleep 3600");
    root["securityContext"] = json!({"runAsNonRoot": true});
    create(&pods, pod("rooted", &node.name, json!([root]))).await;
    let refused = until(&pods, "rooted", "rooted refused", |p| {
        container_status(p, "app").is_some_and(|s| {
            s.state
                .and_then(|s| s.waiting)
                .and_then(|w| w.reason)
                .as_deref()
                == Some("CreateContainerConfigError")
        })
    })
    .await;
    let message = container_status(&refused, "app")
        .and_then(|s| s.state?.waiting?.message)
        .unwrap_or_default();
    assert!(
        message.starts_with("container has runAsNonRoot and image will run as root"),
        "{message}"
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn images_are_pulled_from_a_registry_with_the_pods_pull_secret() {
    use k8s_openapi::api::core::v1::Secret;
    use slipway_testkit::{ImageBuilder, Registry};
    let registry = Registry::start_with_auth("puller", "s3cret").expect("start a registry");
    let pushed = registry
        .push("team/app", "7", &ImageBuilder::busybox("team/app:7"))
        .expect("push the image");
    let server = Server::start().await;
    let node = Node::start(&server, "node-j").await;
    let pods: Api<Pod> = Api::namespaced(server.client.clone(), "default");
    let secrets: Api<Secret> = Api::namespaced(server.client.clone(), "default");
    let auth = json!({"auths": {registry.host(): {"username": "puller", "password": "s3cret"}}});
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "registry"}, "type": "kubernetes.io/dockerconfigjson",
                "stringData": {".dockerconfigjson": auth.to_string()}}))
            .expect("a secret"),
        )
        .await
        .expect("create the pull secret");
    let pulled = |name: &str, image: &str, secret: bool| {
        let mut container = json!({"name": "app", "image": image, "command": ["sleep", "3600"]});
        container["imagePullPolicy"] = json!("IfNotPresent");
        let mut pod = pod(name, &node.name, json!([container]));
        if secret && let Some(spec) = pod.spec.as_mut() {
            spec.image_pull_secrets =
                Some(serde_json::from_value(json!([{"name": "registry"}])).expect("secret ref"));
        }
        pod
    };
    create(&pods, pulled("denied", &pushed.reference, false)).await;
    create(
        &pods,
        pulled(
            "missing",
            &format!("{}/team/app:404", registry.host()),
            true,
        ),
    )
    .await;
    let waiting_on = |name: &'static str| {
        let pods = pods.clone();
        async move {
            let pod = until(&pods, name, "an image pull failure", |p| {
                container_status(p, "app").is_some_and(|s| {
                    s.state
                        .and_then(|s| s.waiting)
                        .and_then(|w| w.reason)
                        .is_some_and(|r| r == "ErrImagePull" || r == "ImagePullBackOff")
                })
            })
            .await;
            container_status(&pod, "app")
                .and_then(|s| s.state?.waiting?.message)
                .unwrap_or_default()
        }
    };
    let denied = waiting_on("denied").await;
    assert!(denied.contains("authentication required"), "{denied}");
    let missing = waiting_on("missing").await;
    assert!(missing.contains("not found"), "{missing}");

    create(&pods, pulled("allowed", &pushed.reference, true)).await;
    let running = until(&pods, "allowed", "allowed Ready", |p| {
        condition(p, "Ready").as_deref() == Some("True")
    })
    .await;
    let app = container_status(&running, "app").expect("status");
    assert_eq!(app.image_id, pushed.digest);
    let pulled_messages: Vec<String> = events_of(&server, "allowed")
        .await
        .into_iter()
        .map(|(_, message)| message)
        .collect();
    // kubelet's message, with the size and the rate it came at.
    assert!(
        pulled_messages.iter().any(|m| m.starts_with(&format!(
            "Successfully pulled image \"{}\"",
            pushed.reference
        )) && m.contains(". Image size: ")
            && m.ends_with(" MB/s).")),
        "{pulled_messages:?}"
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_dir_past_its_size_limit_evicts_the_pod() {
    let server = Server::start().await;
    let node = Node::start(&server, "node-k").await;
    let pods: Api<Pod> = Api::namespaced(server.client.clone(), "default");
    let mut writer = shell(
        "writer",
        "head -c 4194304 /dev/zero > /cache/blob; sleep 3600",
    );
    writer["volumeMounts"] = json!([{"name": "cache", "mountPath": "/cache"}]);
    let mut spec = pod("hoarder", &node.name, json!([writer]));
    if let Some(s) = spec.spec.as_mut() {
        s.volumes = Some(
            serde_json::from_value(json!([
                {"name": "cache", "emptyDir": {"sizeLimit": "1Mi"}}]))
            .expect("volumes"),
        );
    }
    create(&pods, spec).await;
    let evicted = until(&pods, "hoarder", "hoarder evicted", |p| {
        p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed")
    })
    .await;
    let status = evicted.status.clone().expect("status");
    assert_eq!(status.reason.as_deref(), Some("Evicted"));
    assert_eq!(
        status.message.as_deref(),
        Some("Usage of EmptyDir volume \"cache\" exceeds the limit \"1Mi\". ")
    );
    let writer = container_status(&evicted, "writer").expect("status");
    assert!(
        writer.state.and_then(|s| s.terminated).is_some(),
        "the container was stopped"
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_agents_on_one_machine_get_blocks_of_their_own() {
    use k8s_openapi::api::core::v1::Node as NodeObject;
    let server = Server::start().await;
    let nodes: Api<NodeObject> = Api::all(server.client.clone());
    let cidr = |name: &'static str| {
        let nodes = nodes.clone();
        async move {
            eventually(&format!("{name} registered"), async || {
                nodes.get_opt(name).await.ok()??.spec?.pod_cidr
            })
            .await
        }
    };
    // One after the other: agents joining at the same instant could pick the same block.
    let first = Node::start(&server, "node-l1").await;
    assert_eq!(cidr("node-l1").await, "127.64.0.0/16");
    let second = Node::start(&server, "node-l2").await;
    assert_eq!(cidr("node-l2").await, "127.65.0.0/16");
    let pods: Api<Pod> = Api::namespaced(server.client.clone(), "default");
    create(
        &pods,
        pod("there", &second.name, json!([shell("app", "sleep 3600")])),
    )
    .await;
    let running = until(&pods, "there", "there running", |p| {
        container_status(p, "app").is_some_and(|s| s.ready)
    })
    .await;
    let ip = running.status.and_then(|s| s.pod_ip).unwrap_or_default();
    assert!(ip.starts_with("127.65."), "{ip}");
    second.stop().await;
    first.stop().await;
}
