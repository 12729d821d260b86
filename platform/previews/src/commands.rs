//! The `/slipway` commands squad members write in pull request comments.

use std::time::Duration;

/// A command found in a comment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `/slipway deploy`: deploy this pull request (approves a fork's head).
    Deploy,
    /// `/slipway extend [DURATION]`: keep the preview longer (the squad's TTL if no duration).
    Extend(Option<Duration>),
}

/// The commands in a comment, one per line that starts with `/slipway`; a line that starts
/// with `/slipway` but says nothing known is an error with its text, to answer on the PR.
pub fn parse(comment: &str) -> Vec<Result<Command, String>> {
    comment
        .lines()
        .map(str::trim)
        .filter_map(|line| {
            let rest = line.strip_prefix("/slipway")?;
            if !(rest.is_empty() || rest.starts_with(char::is_whitespace)) {
                return None;
            }
            let words: Vec<&str> = rest.split_whitespace().collect();
            Some(match words.as_slice() {
                ["deploy"] => Ok(Command::Deploy),
                ["extend"] => Ok(Command::Extend(None)),
                ["extend", duration] => slipway_preview_config::parse_duration(duration)
                    .map(|d| Command::Extend(Some(d)))
                    .map_err(|e| format!("`{line}`: {e}")),
                _ => Err(format!(
                    "`{line}` is not a command; try `/slipway deploy` or `/slipway extend [DURATION]`"
                )),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_read_line_by_line() {
        assert_eq!(parse("/slipway deploy"), [Ok(Command::Deploy)]);
        assert_eq!(
            parse("thanks!\n  /slipway extend 2h  \n/slipway extend"),
            [
                Ok(Command::Extend(Some(Duration::from_secs(7200)))),
                Ok(Command::Extend(None))
            ]
        );
        assert!(parse("see /slipway deploy").is_empty());
        assert!(parse("/slipwayx deploy").is_empty());
        assert!(parse("/slipway").first().unwrap().is_err());
        assert!(parse("/slipway destroy-all").first().unwrap().is_err());
        assert!(parse("/slipway extend forever").first().unwrap().is_err());
    }
}
