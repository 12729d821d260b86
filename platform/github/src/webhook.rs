//! GitHub's webhook deliveries: the `X-Hub-Signature-256` check, and the events previews use
//! read into [`Event`]. No IO.
//!
//! A delivery is read through octocrab's typed events where they parse, and by the fields'
//! documented names where they do not: octocrab refuses an action it does not know, and
//! GitHub adds events and actions over time; a delivery slipway ignores must still be
//! acknowledged. Only a body that is not a JSON object, or a `pull_request` or
//! `issue_comment` event without the fields previews need, is refused.

use ring::hmac;
use serde::Deserialize;
use serde_json::Value;

use crate::RepoRef;

/// Why a delivery's signature is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No `X-Hub-Signature-256` header.
    #[error("X-Hub-Signature-256 is missing")]
    Missing,
    /// The header is not `sha256=` and 64 hex digits.
    #[error("X-Hub-Signature-256 is not sha256=<64 hex digits>")]
    Malformed,
    /// The signature does not match the body and the repository's secret.
    #[error("X-Hub-Signature-256 does not match the payload and the repository's webhook secret")]
    Mismatch,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The `X-Hub-Signature-256` header value for `body` signed with `secret`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    format!("sha256={}", hex(hmac::sign(&key, body).as_ref()))
}

/// Checks `header` (the `X-Hub-Signature-256` value) against the HMAC-SHA256 of the raw
/// `body` under `secret`, in constant time.
///
/// # Errors
///
/// When the header is missing, malformed, or does not match.
pub fn verify_signature(
    secret: &[u8],
    body: &[u8],
    header: Option<&str>,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let digest = header
        .strip_prefix("sha256=")
        .filter(|d| d.len() == 64)
        .and_then(unhex)
        .ok_or(SignatureError::Malformed)?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    hmac::verify(&key, body, &digest).map_err(|_| SignatureError::Mismatch)
}

/// A delivery as previews read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// `X-GitHub-Event`.
    pub name: String,
    /// The payload's `action`, if any.
    pub action: Option<String>,
    /// `repository.full_name`.
    pub repo: Option<RepoRef>,
    /// `installation.id`, for a GitHub App's deliveries.
    pub installation_id: Option<u64>,
    /// `sender.login`.
    pub sender: Option<String>,
    /// What previews use of the event.
    pub payload: Payload,
}

/// The parts of the events previews act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    /// `ping`: the webhook was just made.
    Ping {
        /// The hook's id.
        hook_id: Option<u64>,
    },
    /// `pull_request`.
    PullRequest {
        /// The pull request's number.
        number: u64,
        /// Its head commit.
        head_sha: String,
        /// Its head branch.
        head_ref: String,
        /// Whether the head is in another repository (a fork, or a deleted one).
        is_fork: bool,
        /// The label added or removed, for `labeled` and `unlabeled`.
        label: Option<String>,
    },
    /// `issue_comment`.
    IssueComment {
        /// The issue's (or pull request's) number.
        number: u64,
        /// Whether the issue is a pull request.
        on_pull_request: bool,
        /// The comment's id.
        comment_id: u64,
        /// The comment's body.
        body: String,
        /// Its author's login.
        author: String,
    },
    /// Any other event.
    Other,
}

/// Why a delivery could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(String);

#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    repository: Option<NamedRepo>,
    #[serde(default)]
    installation: Option<Id>,
    #[serde(default)]
    sender: Option<Login>,
}

#[derive(Deserialize)]
struct NamedRepo {
    full_name: String,
}

#[derive(Deserialize)]
struct Id {
    id: u64,
}

#[derive(Deserialize)]
struct Login {
    login: String,
}

#[derive(Deserialize)]
struct PullRequestEvent {
    number: u64,
    pull_request: PullRequestBody,
    #[serde(default)]
    label: Option<Label>,
}

#[derive(Deserialize)]
struct PullRequestBody {
    head: Side,
    base: Side,
}

#[derive(Deserialize)]
struct Side {
    sha: String,
    #[serde(rename = "ref")]
    git_ref: String,
    #[serde(default)]
    repo: Option<NamedRepo>,
}

#[derive(Deserialize)]
struct Label {
    name: String,
}

#[derive(Deserialize)]
struct IssueCommentEvent {
    issue: Issue,
    comment: CommentBody,
}

#[derive(Deserialize)]
struct Issue {
    number: u64,
    #[serde(default)]
    pull_request: Option<Value>,
}

#[derive(Deserialize)]
struct CommentBody {
    id: u64,
    #[serde(default)]
    body: Option<String>,
    user: Login,
}

fn repo_ref(full_name: &str) -> Option<RepoRef> {
    let (owner, name) = full_name.split_once('/')?;
    Some(RepoRef {
        owner: owner.to_owned(),
        name: name.to_owned(),
    })
}

/// Reads a delivery of event `event` (the `X-GitHub-Event` header): through octocrab's
/// typed events, or leniently where they refuse it.
///
/// # Errors
///
/// When the body is not a JSON object, or an event previews act on lacks what they need.
pub fn parse(event: &str, body: &[u8]) -> Result<Event, ParseError> {
    match typed(event, body) {
        Ok(event) => Ok(event),
        Err(why) => {
            tracing::debug!(%event, %why, "octocrab's typed events refused a delivery; reading it leniently");
            lenient(event, body)
        }
    }
}

/// A delivery through octocrab's typed events.
fn typed(event: &str, body: &[u8]) -> Result<Event, serde_json::Error> {
    use octocrab::models::webhook_events::{EventInstallation, WebhookEvent, WebhookEventPayload};
    let parsed = WebhookEvent::try_from_header_and_body(event, body)?;
    let (action, payload) = match parsed.specific {
        WebhookEventPayload::Ping(ping) => (
            None,
            Payload::Ping {
                hook_id: ping.hook_id.map(|id| id.into_inner()),
            },
        ),
        WebhookEventPayload::PullRequest(pr) => {
            let pull = &pr.pull_request;
            let full_name = |repo: &Option<octocrab::models::Repository>| {
                repo.as_ref().and_then(|r| r.full_name.clone())
            };
            let is_fork = match (full_name(&pull.head.repo), full_name(&pull.base.repo)) {
                (Some(head), Some(base)) => !head.eq_ignore_ascii_case(&base),
                _ => true,
            };
            (
                action_name(&pr.action),
                Payload::PullRequest {
                    number: pr.number,
                    head_sha: pull.head.sha.clone(),
                    head_ref: pull.head.ref_field.clone(),
                    is_fork,
                    label: pr.label.as_ref().map(|l| l.name.clone()),
                },
            )
        }
        WebhookEventPayload::IssueComment(ic) => (
            action_name(&ic.action),
            Payload::IssueComment {
                number: ic.issue.number,
                on_pull_request: ic.issue.pull_request.is_some(),
                comment_id: ic.comment.id.into_inner(),
                body: ic.comment.body.clone().unwrap_or_default(),
                author: ic.comment.user.login.clone(),
            },
        ),
        // Only the envelope of other events is used, and the lenient reader has it all
        // (octocrab keeps no `action` for most of them).
        _ => return Err(serde::de::Error::custom("an event previews do not act on")),
    };
    Ok(Event {
        name: event.to_owned(),
        action,
        repo: parsed
            .repository
            .and_then(|r| r.full_name)
            .and_then(|name| repo_ref(&name)),
        installation_id: parsed.installation.map(|i| match i {
            EventInstallation::Full(full) => full.id.into_inner(),
            EventInstallation::Minimal(minimal) => minimal.id.into_inner(),
        }),
        sender: parsed.sender.map(|s| s.login),
        payload,
    })
}

/// One of octocrab's action enums as the name GitHub sent: they serialize to it.
fn action_name<T: serde::Serialize>(action: &T) -> Option<String> {
    match serde_json::to_value(action) {
        Ok(Value::String(name)) => Some(name),
        _ => None,
    }
}

/// A delivery read by its fields' documented names.
fn lenient(event: &str, body: &[u8]) -> Result<Event, ParseError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ParseError(format!("the payload is not JSON: {e}")))?;
    if !value.is_object() {
        return Err(ParseError("the payload is not a JSON object".to_owned()));
    }
    let envelope = Envelope::deserialize(&value).map_err(|e| {
        ParseError(format!(
            "the payload's repository, installation or sender: {e}"
        ))
    })?;
    let payload = match event {
        "ping" => Payload::Ping {
            hook_id: value.get("hook_id").and_then(Value::as_u64),
        },
        "pull_request" => {
            let pr = PullRequestEvent::deserialize(&value)
                .map_err(|e| ParseError(format!("a pull_request event: {e}")))?;
            let base = pr
                .pull_request
                .base
                .repo
                .as_ref()
                .map(|r| r.full_name.as_str());
            let head = pr
                .pull_request
                .head
                .repo
                .as_ref()
                .map(|r| r.full_name.as_str());
            let is_fork = match (head, base) {
                (Some(head), Some(base)) => !head.eq_ignore_ascii_case(base),
                _ => true,
            };
            Payload::PullRequest {
                number: pr.number,
                head_sha: pr.pull_request.head.sha,
                head_ref: pr.pull_request.head.git_ref,
                is_fork,
                label: pr.label.map(|l| l.name),
            }
        }
        "issue_comment" => {
            let ic = IssueCommentEvent::deserialize(&value)
                .map_err(|e| ParseError(format!("an issue_comment event: {e}")))?;
            Payload::IssueComment {
                number: ic.issue.number,
                on_pull_request: ic.issue.pull_request.is_some_and(|p| !p.is_null()),
                comment_id: ic.comment.id,
                body: ic.comment.body.unwrap_or_default(),
                author: ic.comment.user.login,
            }
        }
        _ => Payload::Other,
    };
    Ok(Event {
        name: event.to_owned(),
        action: envelope.action,
        repo: envelope
            .repository
            .as_ref()
            .and_then(|r| repo_ref(&r.full_name)),
        installation_id: envelope.installation.map(|i| i.id),
        sender: envelope.sender.map(|s| s.login),
        payload,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn signatures_match_githubs_own_example() {
        // From GitHub's "Validating webhook deliveries".
        let secret = b"It's a Secret to Everybody";
        let header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(sign(secret, b"Hello, World!"), header);
        assert_eq!(
            verify_signature(secret, b"Hello, World!", Some(header)),
            Ok(())
        );
        assert_eq!(
            verify_signature(secret, b"Hello, World?", Some(header)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(b"another secret", b"Hello, World!", Some(header)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(secret, b"x", None),
            Err(SignatureError::Missing)
        );
        for bad in [
            "757107ea",
            "sha1=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
            "sha256=zz7107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
            "sha256=",
        ] {
            assert_eq!(
                verify_signature(secret, b"x", Some(bad)),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
    }

    fn pull_request(action: &str, head_repo: serde_json::Value) -> Vec<u8> {
        json!({
            "action": action,
            "number": 42,
            "pull_request": {
                "number": 42,
                "state": "open",
                "head": { "ref": "feature", "sha": "abc123", "repo": head_repo },
                "base": { "ref": "main", "sha": "000", "repo": { "full_name": "Acme/Shop", "fork": false } },
                "labels": [],
                "user": { "login": "ana" },
            },
            "repository": { "full_name": "acme/shop", "id": 1 },
            "sender": { "login": "ana" },
            "installation": { "id": 77 },
        })
        .to_string()
        .into_bytes()
    }

    /// GitHub's full payloads (the fake writes their shapes) go through octocrab's typed
    /// events, and the lenient reader agrees with them field for field.
    #[tokio::test]
    async fn full_payloads_are_read_typed_and_both_readers_agree() {
        let github = slipway_fake_github::FakeGitHub::start().await;
        github.add_repo("acme/shop");
        let pull = |number, fork| slipway_fake_github::Pull {
            number,
            head_sha: "a1".to_owned(),
            head_ref: "feature".to_owned(),
            author: "mallory".to_owned(),
            fork,
            labels: Vec::new(),
            draft: false,
        };
        let deliveries = [
            (
                "pull_request",
                github.open_pull("acme/shop", pull(1, false)),
            ),
            ("pull_request", github.open_pull("acme/shop", pull(2, true))),
            ("pull_request", github.push("acme/shop", 1, "b2")),
            ("pull_request", github.label("acme/shop", 1, "slipway:keep")),
            ("pull_request", github.close_pull("acme/shop", 1, true)),
            (
                "issue_comment",
                github.comment("acme/shop", 2, "ana", "/slipway deploy"),
            ),
            ("ping", github.ping("acme/shop")),
        ];
        for (name, body) in deliveries {
            let body = body.to_string().into_bytes();
            let typed = typed(name, &body).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(typed, lenient(name, &body).unwrap(), "{name}");
            assert_eq!(parse(name, &body).unwrap(), typed);
            assert_eq!(
                typed.repo.as_ref().map(ToString::to_string).as_deref(),
                Some("acme/shop")
            );
        }
        let forked = github.open_pull("acme/shop", pull(3, true)).to_string();
        match typed("pull_request", forked.as_bytes()).unwrap().payload {
            Payload::PullRequest {
                is_fork, head_sha, ..
            } => {
                assert!(is_fork);
                assert_eq!(head_sha, "a1");
            }
            other => panic!("{other:?}"),
        }

        // An action octocrab does not know yet falls back to the lenient reader.
        let mut later = github.push("acme/shop", 2, "c3");
        later["action"] = json!("merged_into_stack_v2");
        let body = later.to_string().into_bytes();
        assert!(typed("pull_request", &body).is_err());
        let event = parse("pull_request", &body).unwrap();
        assert_eq!(event.action.as_deref(), Some("merged_into_stack_v2"));
        assert!(matches!(
            event.payload,
            Payload::PullRequest { number: 2, .. }
        ));
    }

    #[test]
    fn events_are_read_leniently() {
        let same = json!({ "full_name": "acme/shop", "fork": false });
        let event = parse("pull_request", &pull_request("opened", same.clone())).unwrap();
        assert_eq!(event.action.as_deref(), Some("opened"));
        assert_eq!(
            event.repo.as_ref().map(ToString::to_string).as_deref(),
            Some("acme/shop")
        );
        assert_eq!(
            (event.installation_id, event.sender.as_deref()),
            (Some(77), Some("ana"))
        );
        assert_eq!(
            event.payload,
            Payload::PullRequest {
                number: 42,
                head_sha: "abc123".to_owned(),
                head_ref: "feature".to_owned(),
                is_fork: false,
                label: None,
            }
        );
        // Forks: another repository, or one deleted since.
        let fork = json!({ "full_name": "mallory/shop", "fork": true });
        for head in [fork, serde_json::Value::Null] {
            match parse("pull_request", &pull_request("opened", head))
                .unwrap()
                .payload
            {
                Payload::PullRequest { is_fork, .. } => assert!(is_fork),
                other => panic!("{other:?}"),
            }
        }
        // An action GitHub adds later is kept, not refused.
        let event = parse("pull_request", &pull_request("enqueued", same)).unwrap();
        assert_eq!(event.action.as_deref(), Some("enqueued"));
        // Comments, on pull requests and on issues.
        let comment = |pull_request: serde_json::Value| {
            json!({
                "action": "created",
                "issue": { "number": 42, "pull_request": pull_request },
                "comment": { "id": 9, "body": "/slipway deploy", "user": { "login": "bo" } },
                "repository": { "full_name": "acme/shop" },
                "sender": { "login": "bo" },
            })
            .to_string()
            .into_bytes()
        };
        let on_pull = parse("issue_comment", &comment(json!({ "url": "x" }))).unwrap();
        assert_eq!(
            on_pull.payload,
            Payload::IssueComment {
                number: 42,
                on_pull_request: true,
                comment_id: 9,
                body: "/slipway deploy".to_owned(),
                author: "bo".to_owned(),
            }
        );
        match parse("issue_comment", &comment(serde_json::Value::Null))
            .unwrap()
            .payload
        {
            Payload::IssueComment {
                on_pull_request, ..
            } => assert!(!on_pull_request),
            other => panic!("{other:?}"),
        }
        let ping = br#"{"zen":"Keep it logically awesome.","hook_id":5,"repository":{"full_name":"acme/shop"}}"#;
        assert_eq!(
            parse("ping", ping).unwrap().payload,
            Payload::Ping { hook_id: Some(5) }
        );
        assert_eq!(
            parse("star", br#"{"action":"created"}"#).unwrap().payload,
            Payload::Other
        );
    }

    #[test]
    fn only_unreadable_deliveries_are_refused() {
        assert!(parse("pull_request", b"not json").is_err());
        assert!(parse("ping", b"[1, 2]").is_err());
        assert!(parse("pull_request", br#"{"action":"opened","number":1}"#).is_err());
        assert!(
            parse(
                "issue_comment",
                br#"{"action":"created","issue":{"number":1}}"#
            )
            .is_err()
        );
    }
}
