//! Child processes of tests stopped the way a service manager stops a service: SIGTERM,
//! a bounded wait for it to exit by itself, then SIGKILL, so a failing test leaves nothing
//! running and a process that cleans up on SIGTERM (an agent stopping its containerd) gets
//! the chance to.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Sends SIGTERM to `child` (through `kill`, as tests use no unsafe code); whether it was
/// delivered.
pub fn sigterm(child: &Child) -> bool {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .is_ok_and(|s| s.success())
}

/// Stops `child`: SIGTERM, then up to `patience` for it to exit, then SIGKILL. Gives its
/// exit status when it exited by itself within `patience`.
pub fn stop(child: &mut Child, patience: Duration) -> Option<ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    sigterm(child);
    let deadline = Instant::now() + patience;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// Spawns `command`, a `slipway server`, and reads where its API answers from the first
/// line it prints (`slipway server: API on URL ...`); the rest of its output is read on a
/// thread, so it never blocks on a full pipe. A server that says something else is
/// stopped and the test fails.
pub fn spawn_server(command: &mut Command) -> (Child, String) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting slipway server");
    let mut lines = BufReader::new(child.stdout.take().expect("its stdout")).lines();
    let first = lines.next().and_then(Result::ok).unwrap_or_default();
    let url = first
        .strip_prefix("slipway server: API on ")
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_owned);
    std::thread::spawn(move || for _ in lines {});
    match url {
        Some(url) => (child, url),
        None => {
            stop(&mut child, Duration::from_secs(10));
            panic!("slipway server printed {first:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_that_exits_on_sigterm_gives_its_status_and_one_that_ignores_it_is_killed() {
        let mut polite = Command::new("sleep").arg("60").spawn().expect("sleep");
        let status = stop(&mut polite, Duration::from_secs(30)).expect("exited by itself");
        assert!(!status.success(), "ended by the signal: {status}");

        // SIGTERM ignored survives the exec; the line says it is in place.
        let mut stubborn = Command::new("sh")
            .args(["-c", "trap '' TERM; echo ready; exec sleep 60"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("sh");
        let mut ready = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(stubborn.stdout.take().expect("stdout")),
            &mut ready,
        )
        .expect("the ready line");
        assert_eq!(stop(&mut stubborn, Duration::from_millis(300)), None);
        assert!(
            stubborn.try_wait().expect("waited").is_some(),
            "killed and reaped"
        );
    }
}
