//! The server's tenancy API as the commands call it: JSON over the kubeconfig's client, and
//! the server's `Status` answers turned into the documented exit codes.

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::exit::Failure;

/// What a 401 means to the user of an ordinary command.
const REFUSED: &str = "the server refused the credentials";

/// A client of the tenancy API.
pub(super) struct Api {
    client: kube::Client,
}

/// Who a token belongs to, as the server sees it.
pub(super) struct Identity {
    pub(super) username: String,
    pub(super) groups: Vec<String>,
}

impl Api {
    /// A client of the current context of `--kubeconfig` (or its defaults).
    pub(super) fn from_kubeconfig(flag: Option<PathBuf>) -> Result<Api, Failure> {
        let path = crate::kubeconfig::locate(flag)?;
        Ok(Api {
            client: crate::kubeconfig::client(&path)?,
        })
    }

    /// The kubeconfig's client, for the Kubernetes API itself.
    pub(super) fn client(&self) -> &kube::Client {
        &self.client
    }

    pub(super) fn new(client: kube::Client) -> Api {
        Api { client }
    }

    pub(super) async fn get(&self, path: &str) -> Result<Value, Failure> {
        self.send(http::Request::get(path), None).await
    }

    /// GETs `path`; `None` when the server has nothing there (404).
    pub(super) async fn get_if_there(&self, path: &str) -> Result<Option<Value>, Failure> {
        match self.request(http::Request::get(path), None).await {
            Err(Sent::Kube(kube::Error::Api(status))) if status.code == 404 => Ok(None),
            other => other.map(Some).map_err(|e| failure(e, REFUSED)),
        }
    }

    pub(super) async fn post(&self, path: &str, body: &Value) -> Result<Value, Failure> {
        self.send(http::Request::post(path), Some(body)).await
    }

    pub(super) async fn put(&self, path: &str, body: &Value) -> Result<Value, Failure> {
        self.send(http::Request::put(path), Some(body)).await
    }

    pub(super) async fn delete(&self, path: &str) -> Result<Value, Failure> {
        self.send(http::Request::delete(path), None).await
    }

    /// Who the client's token belongs to; a refused token is worded with `refused`.
    pub(super) async fn whoami_or(&self, refused: &str) -> Result<Identity, Failure> {
        let review = json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "SelfSubjectReview",
        });
        let answer = self
            .request(
                http::Request::post("/apis/authentication.k8s.io/v1/selfsubjectreviews"),
                Some(&review),
            )
            .await
            .map_err(|e| failure(e, refused))?;
        let user = &answer["status"]["userInfo"];
        let username = user["username"].as_str().unwrap_or_default().to_owned();
        if username.is_empty() {
            return Err(Failure::failed(
                "the server's SelfSubjectReview names no user",
            ));
        }
        let groups = user["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|g| g.as_str().map(str::to_owned))
            .collect();
        Ok(Identity { username, groups })
    }

    /// Who the client's token belongs to.
    pub(super) async fn whoami(&self) -> Result<Identity, Failure> {
        self.whoami_or(REFUSED).await
    }

    async fn send(
        &self,
        request: http::request::Builder,
        body: Option<&Value>,
    ) -> Result<Value, Failure> {
        self.request(request, body)
            .await
            .map_err(|e| failure(e, REFUSED))
    }

    async fn request(
        &self,
        request: http::request::Builder,
        body: Option<&Value>,
    ) -> Result<Value, Sent> {
        let request = match body {
            Some(body) => request
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(body.to_string().into_bytes()),
            None => request.body(Vec::new()),
        }
        .map_err(|e| Sent::Build(e.to_string()))?;
        let text = self
            .client
            .request_text(request)
            .await
            .map_err(Sent::Kube)?;
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).map_err(|e| Sent::NotJson(e.to_string()))
    }
}

/// How a request went wrong before it was classified for the user.
enum Sent {
    Build(String),
    Kube(kube::Error),
    NotJson(String),
}

/// The documented exit code for what the server (or the network) said
/// ([`Failure::from_kube`]), with a refused credential worded as `refused`.
fn failure(sent: Sent, refused: &str) -> Failure {
    let e = match sent {
        Sent::Build(e) => return Failure::bad_input(format!("cannot build the request: {e}")),
        Sent::NotJson(e) => {
            return Failure::failed(format!("the server's answer is not JSON: {e}"));
        }
        Sent::Kube(e) => e,
    };
    match e {
        kube::Error::Api(status) if status.code == 401 => Failure::bad_input(refused),
        other => Failure::from_kube("", other),
    }
}

/// `segments` as a URL path under `/slipway/v1`, each percent-encoded so that a name is
/// always one segment.
pub(super) fn path(segments: &[&str]) -> String {
    let mut path = String::from("/slipway/v1");
    for segment in segments {
        path.push('/');
        for b in segment.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    path.push(char::from(b));
                }
                _ => path.push_str(&format!("%{b:02X}")),
            }
        }
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, reason: &str, message: &str) -> Sent {
        let status = kube::core::Status::failure(message, reason).with_code(code);
        Sent::Kube(kube::Error::Api(status.boxed()))
    }

    #[test]
    fn server_answers_map_to_exit_codes() {
        let cases = [
            (status(401, "Unauthorized", "Unauthorized"), 2, REFUSED),
            (
                status(403, "Forbidden", "squads \"web\" is forbidden"),
                1,
                "squads \"web\" is forbidden",
            ),
            (
                status(404, "NotFound", "squad web not found"),
                2,
                "squad web not found",
            ),
            (
                status(409, "AlreadyExists", "squad web exists"),
                1,
                "squad web exists",
            ),
            (status(422, "Invalid", "bad quota"), 2, "bad quota"),
            (status(400, "BadRequest", "bad body"), 2, "bad body"),
            (status(500, "InternalError", "boom"), 1, "boom"),
        ];
        for (sent, code, message) in cases {
            let failure = failure(sent, REFUSED);
            assert_eq!(failure.code(), code, "{message}");
            assert_eq!(failure.message(), message);
        }
    }

    #[test]
    fn names_are_one_path_segment() {
        assert_eq!(
            path(&["squads", "web", "members", "ana"]),
            "/slipway/v1/squads/web/members/ana"
        );
        assert_eq!(
            path(&["users", "a b/c?d"]),
            "/slipway/v1/users/a%20b%2Fc%3Fd"
        );
    }
}
