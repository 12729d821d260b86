//! The demo app's manifests: the squad's own deployment of it (with an Ingress at the
//! gateway) and the demo repository's files, whose `${VARIABLES}` previews fill in.

/// The image both services run.
pub const IMAGE: &str = "slipway.local/demo-app:1";

/// The web front end's Service, which previews expose.
pub const WEB: &str = "demo-web";

/// The API's Service, which the front end calls by name.
pub const API: &str = "demo-api";

/// The two Deployments and Services, `greeting` and `version` given to both containers.
pub fn app(greeting: &str, version: &str) -> String {
    [(API, "api"), (WEB, "web")]
        .iter()
        .map(|(name, role)| service(name, role, greeting, version))
        .collect::<Vec<_>>()
        .join("---\n")
}

fn service(name: &str, role: &str, greeting: &str, version: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels: {{app: {name}}}
spec:
  replicas: 1
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      # The app keeps no state, and as PID 1 with std alone it has no SIGTERM handler, so
      # it would be killed only after the default 30 s: stop it at once instead.
      terminationGracePeriodSeconds: 1
      containers:
      - name: {role}
        image: {IMAGE}
        args: [{role}]
        env:
        - {{name: PORT, value: "8080"}}
        - {{name: API_URL, value: "http://{API}"}}
        - {{name: GREETING, value: "{greeting}"}}
        - {{name: SLIPWAY_SHA, value: "{version}"}}
        ports:
        - containerPort: 8080
        readinessProbe:
          httpGet: {{path: /healthz, port: 8080}}
          periodSeconds: 1
        resources:
          requests: {{cpu: 10m, memory: 16Mi}}
          limits: {{cpu: 200m, memory: 32Mi}}
---
apiVersion: v1
kind: Service
metadata:
  name: {name}
spec:
  selector: {{app: {name}}}
  ports:
  - port: 80
    targetPort: 8080
"#
    )
}

/// The Ingress that serves the squad's front end at `host` through the gateway.
pub fn ingress(host: &str) -> String {
    format!(
        r#"apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {WEB}
spec:
  rules:
  - host: {host}
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service:
            name: {WEB}
            port: {{number: 80}}
"#
    )
}

/// The demo repository's files: `.slipway.yaml` and the manifests it names.
pub fn repo_files() -> Vec<(&'static str, String)> {
    vec![
        (
            ".slipway.yaml",
            format!(
                "preview:\n  manifests: [deploy/app.yaml]\n  expose: {{service: {WEB}, port: 80}}\n  \
                 variables:\n    GREETING: hello from a preview\n"
            ),
        ),
        ("deploy/app.yaml", app("${GREETING}", "${SLIPWAY_SHA}")),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn documents(text: &str) -> Vec<serde_json::Value> {
        text.split("---\n")
            .map(|doc| serde_yaml_ng::from_str(doc).unwrap())
            .collect()
    }

    #[test]
    fn the_app_is_two_deployments_and_their_services() {
        let docs = documents(&app("hi", "main"));
        let kinds: Vec<_> = docs
            .iter()
            .map(|d| {
                format!(
                    "{}/{}",
                    d["kind"].as_str().unwrap(),
                    d["metadata"]["name"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "Deployment/demo-api",
                "Service/demo-api",
                "Deployment/demo-web",
                "Service/demo-web"
            ]
        );
        let container = &docs[2]["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["args"][0], "web");
        assert!(
            container["env"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["name"] == "API_URL" && e["value"] == "http://demo-api")
        );
        documents(&ingress("demo.localhost"));
    }

    #[test]
    fn the_repository_config_parses_and_names_its_manifests() {
        let files = repo_files();
        let config = slipway_preview_config::PreviewConfig::parse(&files[0].1).unwrap();
        assert_eq!(config.manifests, ["deploy/app.yaml"]);
        assert!(files[1].1.contains("${SLIPWAY_SHA}"));
    }
}
