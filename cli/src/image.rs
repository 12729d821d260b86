//! `slipway image import|list|remove`: container images on every node, through the API
//! server's `/slipway/v1/images` (the archive goes to each node's agent).

use std::path::PathBuf;

use serde_json::Value;

use crate::exit::Failure;

/// What the command was asked to do.
pub(crate) enum Action {
    /// Load an OCI-layout or `docker save` archive into every node.
    Import(PathBuf),
    /// Show the images of every node.
    List,
    /// Remove an image from every node.
    Remove(String),
}

/// Runs the action against the server of `client`.
pub(crate) async fn run(client: kube::Client, action: Action) -> Result<(), Failure> {
    let request = match &action {
        Action::Import(file) => {
            let archive = std::fs::read(file)
                .map_err(|e| Failure::bad_input(format!("cannot read {}: {e}", file.display())))?;
            say!(
                "importing {} ({:.1} MB) into every node",
                file.display(),
                archive.len() as f64 / 1e6
            );
            http::Request::post("/slipway/v1/images")
                .header(http::header::CONTENT_TYPE, "application/x-tar")
                .body(archive)
        }
        Action::List => http::Request::get("/slipway/v1/images").body(Vec::new()),
        Action::Remove(name) => {
            let encoded: String = name
                .bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                        (b as char).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect();
            http::Request::delete(format!("/slipway/v1/images?name={encoded}")).body(Vec::new())
        }
    }
    .map_err(|e| Failure::failed(format!("building the request: {e}")))?;
    let sent = request.body().len();
    let began = std::time::Instant::now();
    let text = with_progress(&action, client.request_text(request))
        .await
        .map_err(|e| Failure::from_kube("", e))?;
    if let Action::Import(_) = &action {
        let seconds = began.elapsed().as_secs_f64();
        say!(
            "imported {:.1} MB in {seconds:.1} s ({:.1} MB/s)",
            sent as f64 / 1e6,
            sent as f64 / 1e6 / seconds.max(0.001)
        );
    }
    let answer: Value = serde_json::from_str(&text)
        .map_err(|e| Failure::failed(format!("the server's answer is not JSON: {e}")))?;
    let mut failed = Vec::new();
    say!(
        "{:<20} {:<48} {:<20} {:>10}",
        "NODE",
        "IMAGE",
        "DIGEST",
        "SIZE"
    );
    for node in answer["nodes"].as_array().into_iter().flatten() {
        let name = node["node"].as_str().unwrap_or_default();
        if let Some(error) = node["error"].as_str() {
            failed.push(format!("{name}: {error}"));
            continue;
        }
        for image in node["images"].as_array().into_iter().flatten() {
            let digest = image["digest"].as_str().unwrap_or_default();
            let short = digest.get(..19).unwrap_or(digest);
            say!(
                "{name:<20} {:<48} {short:<20} {:>9.1}M",
                image["name"].as_str().unwrap_or_default(),
                image["size"].as_f64().unwrap_or_default() / 1e6
            );
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Failure::failed(format!(
            "failed on {} node(s): {}",
            failed.len(),
            failed.join("; ")
        )))
    }
}

/// Awaits `work`; an import shows, on a terminal's stderr, how long it has been going.
async fn with_progress<T>(action: &Action, work: impl std::future::Future<Output = T>) -> T {
    use std::io::{IsTerminal as _, Write as _};
    let Action::Import(file) = action else {
        return work.await;
    };
    if !std::io::stderr().is_terminal() {
        return work.await;
    }
    let began = std::time::Instant::now();
    let mut ticks = tokio::time::interval(std::time::Duration::from_millis(250));
    tokio::pin!(work);
    let done = loop {
        tokio::select! {
            done = &mut work => break done,
            _ = ticks.tick() => {
                let _ = write!(
                    std::io::stderr(),
                    "\r  sending {} and loading it on every node: {:.1} s",
                    file.display(),
                    began.elapsed().as_secs_f64()
                );
            }
        }
    };
    let _ = write!(std::io::stderr(), "\r\x1b[2K");
    done
}
