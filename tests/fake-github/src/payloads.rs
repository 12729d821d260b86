//! GitHub's JSON shapes, as its REST API answers and its webhooks deliver them (the fields
//! GitHub documents for each, trimmed of the URL templates nothing here reads).

use base64::Engine as _;
use serde_json::{Value, json};

use crate::{Fake, FakeComment, FakeDeployment};

/// A time as GitHub writes it: `2026-11-28T18:32:17Z`.
pub(crate) fn iso(seconds: u64) -> String {
    let days = seconds / 86_400;
    let rest = seconds % 86_400;
    // Civil from days (Howard Hinnant's algorithm).
    let z = i64::try_from(days).unwrap_or(0) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        (rest % 3600) / 60,
        rest % 60
    )
}

fn now() -> String {
    iso(crate::seconds_now())
}

pub(crate) fn user(login: &str, id: u64) -> Value {
    let kind = if login.ends_with("[bot]") {
        "Bot"
    } else {
        "User"
    };
    let api = format!("https://api.github.com/users/{login}");
    json!({
        "login": login,
        "id": id,
        "node_id": format!("U_{id}"),
        "avatar_url": format!("https://avatars.githubusercontent.com/u/{id}?v=4"),
        "gravatar_id": "",
        "url": api,
        "html_url": format!("https://github.com/{login}"),
        "followers_url": format!("{api}/followers"),
        "following_url": format!("{api}/following{{/other_user}}"),
        "gists_url": format!("{api}/gists{{/gist_id}}"),
        "starred_url": format!("{api}/starred{{/owner}}{{/repo}}"),
        "subscriptions_url": format!("{api}/subscriptions"),
        "organizations_url": format!("{api}/orgs"),
        "repos_url": format!("{api}/repos"),
        "events_url": format!("{api}/events{{/privacy}}"),
        "received_events_url": format!("{api}/received_events"),
        "type": kind,
        "user_view_type": "public",
        "site_admin": false,
    })
}

pub(crate) fn label(name: &str) -> Value {
    json!({
        "id": name.len() as u64 * 7919,
        "node_id": format!("LA_{name}"),
        "url": format!("https://api.github.com/labels/{name}"),
        "name": name,
        "color": "ededed",
        "default": false,
        "description": null,
    })
}

fn repository(fake: &Fake, repo: &str) -> Value {
    let (owner, name) = repo.split_once('/').unwrap_or((repo, repo));
    let id = fake.repos.get(repo).map_or(1, |r| r.id);
    json!({
        "id": id,
        "node_id": format!("R_{id}"),
        "name": name,
        "full_name": repo,
        "private": false,
        "owner": user(owner, id + 1),
        "html_url": format!("https://github.com/{repo}"),
        "description": null,
        "fork": false,
        "url": format!("https://api.github.com/repos/{repo}"),
        "clone_url": format!("https://github.com/{repo}.git"),
        "default_branch": "main",
        "visibility": "public",
    })
}

fn fork_repository(fake: &Fake, repo: &str, author: &str) -> Value {
    let name = repo.split_once('/').map_or(repo, |(_, n)| n);
    let full = format!("{author}/{name}");
    let mut forked = repository(fake, repo);
    forked["id"] = json!(fake.repos.get(repo).map_or(1, |r| r.id) + 500);
    forked["full_name"] = json!(full);
    forked["owner"] = user(author, 77);
    forked["fork"] = json!(true);
    forked["html_url"] = json!(format!("https://github.com/{full}"));
    forked
}

pub(crate) fn file(fake: &Fake, repo: &str, path: &str, git_ref: &str, bytes: &[u8]) -> Value {
    let mut entry = entry(fake, repo, path, git_ref, "file");
    // GitHub wraps base64 content at 60 characters.
    let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
    let wrapped: Vec<String> = encoded
        .as_bytes()
        .chunks(60)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    entry["size"] = json!(bytes.len());
    entry["content"] = json!(wrapped.join("\n") + "\n");
    entry["encoding"] = json!("base64");
    entry
}

pub(crate) fn entry(fake: &Fake, repo: &str, path: &str, git_ref: &str, kind: &str) -> Value {
    let name = path.rsplit('/').next().unwrap_or(path);
    json!({
        "type": kind,
        "name": name,
        "path": path,
        "sha": format!("{:040x}", path.len() as u64 * 31 + fake.next_id),
        "size": 0,
        "url": format!("{}/repos/{repo}/contents/{path}?ref={git_ref}", fake.url),
        "html_url": format!("https://github.com/{repo}/blob/{git_ref}/{path}"),
        "download_url": format!("https://raw.githubusercontent.com/{repo}/{git_ref}/{path}"),
    })
}

pub(crate) fn pull(fake: &Fake, repo: &str, number: u64) -> Value {
    let Some(record) = fake.repos.get(repo).and_then(|r| r.pulls.get(&number)) else {
        return Value::Null;
    };
    let p = &record.pull;
    let head_repo = if p.fork {
        fork_repository(fake, repo, &p.author)
    } else {
        repository(fake, repo)
    };
    let head_owner = if p.fork {
        p.author.clone()
    } else {
        repo.split('/').next().unwrap_or(repo).to_owned()
    };
    let id = fake.repos.get(repo).map_or(1, |r| r.id) * 100_000 + number;
    json!({
        "url": format!("https://api.github.com/repos/{repo}/pulls/{number}"),
        "id": id,
        "node_id": format!("PR_{id}"),
        "html_url": format!("https://github.com/{repo}/pull/{number}"),
        "number": number,
        "state": if record.open { "open" } else { "closed" },
        "locked": false,
        "title": format!("Change {number}"),
        "user": user(&p.author, 4242),
        "body": null,
        "labels": p.labels.iter().map(|l| label(l)).collect::<Vec<_>>(),
        "created_at": now(),
        "updated_at": now(),
        "closed_at": if record.open { Value::Null } else { json!(now()) },
        "merged_at": if record.merged { json!(now()) } else { Value::Null },
        "merge_commit_sha": null,
        "draft": p.draft,
        "head": {
            "label": format!("{head_owner}:{}", p.head_ref),
            "ref": p.head_ref,
            "sha": p.head_sha,
            "user": user(&head_owner, 4243),
            "repo": head_repo,
        },
        "base": {
            "label": format!("{}:main", repo.split('/').next().unwrap_or(repo)),
            "ref": "main",
            "sha": "0000000000000000000000000000000000000000",
            "user": user(repo.split('/').next().unwrap_or(repo), 4244),
            "repo": repository(fake, repo),
        },
        "author_association": "CONTRIBUTOR",
        "merged": record.merged,
        "mergeable": null,
        "comments": 0,
        "commits": 1,
    })
}

pub(crate) fn comment(fake: &Fake, repo: &str, number: u64, comment: &FakeComment) -> Value {
    json!({
        "id": comment.id,
        "node_id": format!("IC_{}", comment.id),
        "url": format!("{}/repos/{repo}/issues/comments/{}", fake.url, comment.id),
        "html_url": format!("https://github.com/{repo}/pull/{number}#issuecomment-{}", comment.id),
        "issue_url": format!("https://api.github.com/repos/{repo}/issues/{number}"),
        "body": comment.body,
        "user": user(&comment.author, 4245),
        "created_at": now(),
        "updated_at": now(),
        "author_association": "MEMBER",
    })
}

pub(crate) fn deployment(
    fake: &Fake,
    repo: &str,
    deployment: &FakeDeployment,
    creator: &str,
) -> Value {
    json!({
        "url": format!("{}/repos/{repo}/deployments/{}", fake.url, deployment.id),
        "id": deployment.id,
        "node_id": format!("DE_{}", deployment.id),
        "sha": deployment.sha,
        "ref": deployment.sha,
        "task": deployment.task,
        "payload": {},
        "environment": deployment.environment,
        "description": null,
        "creator": user(creator, 4246),
        "created_at": now(),
        "updated_at": now(),
        "transient_environment": deployment.transient_environment,
        "production_environment": false,
    })
}

fn envelope(fake: &Fake, repo: &str, sender: &str) -> Value {
    let mut body = json!({
        "repository": repository(fake, repo),
        "sender": user(sender, 4247),
    });
    if let Some(id) = fake.installation_of(repo) {
        body["installation"] = json!({ "id": id, "node_id": format!("MDIz_{id}") });
    }
    body
}

pub(crate) fn pull_request_event(fake: &Fake, repo: &str, number: u64, action: &str) -> Value {
    let Some(record) = fake.repos.get(repo).and_then(|r| r.pulls.get(&number)) else {
        return Value::Null;
    };
    let mut body = envelope(fake, repo, &record.pull.author);
    body["action"] = json!(action);
    body["number"] = json!(number);
    body["pull_request"] = pull(fake, repo, number);
    if action == "synchronize" {
        body["before"] = json!(record.before.clone().unwrap_or_default());
        body["after"] = json!(record.pull.head_sha);
    }
    body
}

pub(crate) fn issue_comment_event(
    fake: &Fake,
    repo: &str,
    number: u64,
    comment: &FakeComment,
) -> Value {
    let mut body = envelope(fake, repo, &comment.author);
    body["action"] = json!("created");
    let is_pull = fake
        .repos
        .get(repo)
        .is_some_and(|r| r.pulls.contains_key(&number));
    let api = format!("https://api.github.com/repos/{repo}");
    let mut issue = json!({
        "url": format!("{api}/issues/{number}"),
        "repository_url": api,
        "labels_url": format!("{api}/issues/{number}/labels{{/name}}"),
        "comments_url": format!("{api}/issues/{number}/comments"),
        "events_url": format!("{api}/issues/{number}/events"),
        "html_url": format!("https://github.com/{repo}/pull/{number}"),
        "id": number * 31,
        "node_id": format!("I_{}", number * 31),
        "number": number,
        "title": format!("Change {number}"),
        "user": user("ana", 4248),
        "labels": [],
        "state": "open",
        "state_reason": null,
        "locked": false,
        "assignee": null,
        "assignees": [],
        "milestone": null,
        "comments": 1,
        "created_at": now(),
        "updated_at": now(),
        "closed_at": null,
        "author_association": "CONTRIBUTOR",
        "active_lock_reason": null,
        "body": null,
    });
    if is_pull {
        issue["pull_request"] = json!({
            "url": format!("https://api.github.com/repos/{repo}/pulls/{number}"),
            "html_url": format!("https://github.com/{repo}/pull/{number}"),
            "diff_url": format!("https://github.com/{repo}/pull/{number}.diff"),
            "patch_url": format!("https://github.com/{repo}/pull/{number}.patch"),
            "merged_at": null,
        });
    }
    body["issue"] = issue;
    body["comment"] = self::comment(fake, repo, number, comment);
    body
}

pub(crate) fn ping_event(fake: &Fake, repo: &str) -> Value {
    let mut body = envelope(fake, repo, repo.split('/').next().unwrap_or(repo));
    body["zen"] = json!("Design for failure.");
    body["hook_id"] = json!(424_242);
    body["hook"] = json!({
        "type": "Repository",
        "id": 424_242,
        "name": "web",
        "active": true,
        "events": ["pull_request", "issue_comment"],
        "config": { "content_type": "json", "insecure_ssl": "0", "url": "https://slipway.example/webhooks/github" },
    });
    body
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_are_written_as_github_does() {
        assert_eq!(super::iso(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::iso(1_800_005_400), "2027-01-15T09:30:00Z");
        assert_eq!(super::iso(951_782_400), "2000-02-29T00:00:00Z");
    }
}
