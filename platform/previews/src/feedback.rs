//! What a preview says on GitHub: the sticky comment (found again by its hidden marker and
//! our own login, edited in place), and the texts of deployment and commit statuses.

use jiff::Timestamp;
use slipway_platform_db::{Phase, Preview};

/// The hidden marker that makes a comment ours; with the author's login it finds it again.
pub const MARKER: &str = "<!-- slipway-preview -->";

/// The commit status context previews report under.
pub const CONTEXT: &str = "slipway/preview";

fn ago_or_in(now: Timestamp, then: Timestamp) -> String {
    let seconds = then.as_second() - now.as_second();
    let (sign, seconds) = if seconds < 0 {
        ("ago", -seconds)
    } else {
        ("in", seconds)
    };
    let text = if seconds >= 86_400 {
        format!("{}d{}h", seconds / 86_400, (seconds % 86_400) / 3600)
    } else if seconds >= 3600 {
        format!("{}h{}m", seconds / 3600, (seconds % 3600) / 60)
    } else {
        format!("{}m", (seconds + 59) / 60)
    };
    if sign == "in" {
        format!("in {text}")
    } else {
        format!("{text} ago")
    }
}

fn short(sha: &str) -> &str {
    sha.get(..7).unwrap_or(sha)
}

/// The headline of a preview's state, as the comment's first line says it.
pub fn headline(preview: &Preview) -> String {
    let status = &preview.status;
    match status.phase {
        Phase::Pending => "⏳ Preview queued".to_owned(),
        Phase::AwaitingApproval => {
            "✋ Preview waiting: this pull request comes from a fork, so a squad member must \
             comment `/slipway deploy` (or add the `slipway:preview` label) to deploy it"
                .to_owned()
        }
        Phase::Queued => format!(
            "⏳ Preview waiting: squad `{}` has all its preview slots in use; it deploys when one frees",
            preview.squad
        ),
        Phase::Deploying => format!("🚧 Deploying `{}`", short(&status.head_sha)),
        Phase::Ready => "✅ Preview ready".to_owned(),
        Phase::Failed => "❌ Preview failed".to_owned(),
        Phase::Sleeping => "💤 Preview asleep (the next request wakes it)".to_owned(),
        Phase::Destroyed => "🗑️ Preview destroyed".to_owned(),
    }
}

/// The sticky comment's body: state, URL, commit, expiry, the reason of a failure, and the
/// commands. It holds no relative times, so it changes only when the preview does.
pub fn comment(preview: &Preview) -> String {
    let status = &preview.status;
    let mut body = format!("{MARKER}\n### {}\n\n", headline(preview));
    body.push_str("| | |\n|---|---|\n");
    if let Some(url) = &status.url
        && matches!(
            status.phase,
            Phase::Ready | Phase::Sleeping | Phase::Deploying
        )
    {
        body.push_str(&format!("| URL | {url} |\n"));
    }
    if let Some(sha) = &status.deployed_sha {
        body.push_str(&format!("| Commit | `{}` |\n", short(sha)));
    }
    body.push_str(&format!("| Namespace | `{}` |\n", preview.namespace));
    if status.phase != Phase::Destroyed {
        if status.pinned {
            body.push_str("| Expires | never while the PR is open (`slipway:keep`) |\n");
        } else if let Some(expires) = status.expires_at {
            body.push_str(&format!("| Expires | {expires} |\n"));
        }
    }
    if !status.message.is_empty() {
        let quoted: Vec<String> = status.message.lines().map(|l| format!("> {l}")).collect();
        body.push_str(&format!("\n{}\n", quoted.join("\n")));
    }
    if status.phase != Phase::Destroyed {
        body.push_str(
            "\n<sub>Commands (squad members): `/slipway deploy` · `/slipway extend [DURATION]` · \
             label `slipway:keep` pins it until the PR closes.</sub>\n",
        );
    }
    body
}

/// The warning posted once, an hour before a preview expires.
pub fn expiry_warning(preview: &Preview, now: Timestamp) -> String {
    let when = preview
        .status
        .expires_at
        .map(|at| format!("{at} ({})", ago_or_in(now, at)))
        .unwrap_or_default();
    format!(
        "⏰ The preview of this pull request (`{}`) expires {when}. Comment `/slipway extend` \
         (or `/slipway extend 12h`) to keep it, or add the `slipway:keep` label.",
        preview.namespace
    )
}

/// Cuts a description to GitHub's 140 characters.
pub fn description(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default();
    if line.chars().count() <= 140 {
        line.to_owned()
    } else {
        let mut cut: String = line.chars().take(139).collect();
        cut.push('…');
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_platform_db::PreviewStatus;

    fn preview(phase: Phase) -> Preview {
        let at = Timestamp::from_second(1_800_000_000).unwrap();
        Preview {
            id: 1,
            repo_id: 1,
            repo: "acme/shop".to_owned(),
            squad: "web".to_owned(),
            pr: 4,
            namespace: "pr-shop-4".to_owned(),
            generation: 1,
            extended_until: None,
            destroy_requested: false,
            last_request_at: None,
            status: PreviewStatus {
                phase,
                head_sha: "0123456789abcdef".to_owned(),
                deployed_sha: Some("0123456789abcdef".to_owned()),
                url: Some("http://pr-shop-4.preview.localhost:8080/".to_owned()),
                expires_at: Some(Timestamp::from_second(1_800_000_000 + 5400).unwrap()),
                ..PreviewStatus::default()
            },
            created_at: at,
            updated_at: at,
        }
    }

    #[test]
    fn the_comment_carries_marker_url_commit_and_expiry() {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let body = comment(&preview(Phase::Ready));
        assert!(body.starts_with(MARKER));
        assert!(body.contains("✅ Preview ready"));
        assert!(body.contains("| URL | http://pr-shop-4.preview.localhost:8080/ |"));
        assert!(body.contains("`0123456`"));
        assert!(
            body.contains("| Expires | 2027-01-15T09:30:00Z |"),
            "{body}"
        );
        assert!(expiry_warning(&preview(Phase::Ready), now).contains("(in 1h30m)"));
        assert!(body.contains("/slipway extend"));

        let mut failed = preview(Phase::Failed);
        failed.status.message = ".slipway.yaml:4:1: preview.ttl: invalid".to_owned();
        let body = comment(&failed);
        assert!(!body.contains("| URL |"));
        assert!(body.contains("> .slipway.yaml:4:1: preview.ttl: invalid"));

        let body = comment(&preview(Phase::Destroyed));
        assert!(!body.contains("Expires") && !body.contains("Commands"));
    }

    #[test]
    fn descriptions_fit_github() {
        assert_eq!(description("short\nsecond line"), "short");
        let long = "é".repeat(200);
        assert_eq!(description(&long).chars().count(), 140);
    }
}
