//! Image garbage collection, as the kubelet's: when the filesystem of the data directory
//! is fuller than the high threshold (used = capacity − available to unprivileged users),
//! images no container uses and that are older than the minimum age are removed, least
//! recently used first, until it is down to the low threshold.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use slipway_runtime::{Image, Runtime};
use tokio::time::Instant;

/// When and how far to collect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GcPolicy {
    /// Collect when the disk is at least this full, in percent (the kubelet's 85).
    pub high_percent: u8,
    /// Stop once it is below this, in percent (the kubelet's 80).
    pub low_percent: u8,
    /// How often to look (the kubelet's 5 minutes).
    pub period: Duration,
    /// Images the agent first saw or last used more recently than this stay (the
    /// kubelet's 2 minutes), so an image imported for a pod about to start is not lost.
    pub min_age: Duration,
}

impl Default for GcPolicy {
    fn default() -> Self {
        GcPolicy {
            high_percent: 85,
            low_percent: 80,
            period: Duration::from_secs(300),
            min_age: Duration::from_secs(120),
        }
    }
}

/// When each image last started a container, or was first seen, for least-recently-used
/// order and the minimum age.
#[derive(Debug, Default)]
pub struct Usage(Mutex<HashMap<String, Instant>>);

impl Usage {
    /// Records that `image` started a container now.
    pub fn touch(&self, image: &str) {
        if let Ok(mut used) = self.0.lock() {
            used.insert(image.to_owned(), Instant::now());
        }
    }

    /// When the image was last used, or first seen (now, if never).
    fn last(&self, image: &str) -> Instant {
        match self.0.lock() {
            Ok(mut used) => *used.entry(image.to_owned()).or_insert_with(Instant::now),
            Err(_) => Instant::now(),
        }
    }
}

/// Used and total bytes of the filesystem holding `dir`.
fn disk(dir: &Path) -> Option<(u64, u64)> {
    let stat = nix::sys::statvfs::statvfs(dir).ok()?;
    let total = stat.blocks() * stat.fragment_size();
    let free = stat.blocks_available() * stat.fragment_size();
    Some((total.saturating_sub(free), total))
}

/// The images to remove to bring `used` of `total` bytes below `low` percent: unused
/// ones, least recently used (never used first), until their sizes cover the excess.
pub(crate) fn choose(
    mut unused: Vec<(Image, Instant)>,
    used: u64,
    total: u64,
    low_percent: u8,
) -> Vec<Image> {
    let target = total / 100 * u64::from(low_percent);
    let mut excess = used.saturating_sub(target);
    unused.sort_by_key(|(_, last)| *last);
    let mut chosen = Vec::new();
    for (image, _) in unused {
        if excess == 0 {
            break;
        }
        excess = excess.saturating_sub(image.size);
        chosen.push(image);
    }
    chosen
}

/// One collection pass; returns the images removed.
pub async fn collect(
    runtime: &dyn Runtime,
    usage: &Usage,
    data_dir: &Path,
    policy: GcPolicy,
) -> Vec<String> {
    let Some((used, total)) = disk(data_dir) else {
        return Vec::new();
    };
    if total == 0 || used * 100 < total * u64::from(policy.high_percent) {
        return Vec::new();
    }
    let (Ok(images), Ok(containers)) = (runtime.images().await, runtime.list().await) else {
        return Vec::new();
    };
    let in_use: Vec<&str> = containers.iter().map(|c| c.image.as_str()).collect();
    let unused: Vec<(Image, Instant)> = images
        .into_iter()
        .filter(|i| !in_use.contains(&i.name.as_str()))
        .map(|i| {
            let last = usage.last(&i.name);
            (i, last)
        })
        .filter(|(_, last)| last.elapsed() >= policy.min_age)
        .collect();
    let mut removed = Vec::new();
    for image in choose(unused, used, total, policy.low_percent) {
        match runtime.remove_image(&image.name).await {
            Ok(()) => {
                tracing::info!(image = %image.name, "removed an unused image to free disk space");
                removed.push(image.name);
            }
            Err(e) => {
                tracing::warn!(image = %image.name, error = %e, "image garbage collection failed");
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(name: &str, size: u64) -> Image {
        Image {
            name: name.into(),
            digest: String::new(),
            size,
            config: slipway_runtime::ImageConfig::default(),
        }
    }

    #[test]
    fn least_recently_used_go_first_until_below_the_low_mark() {
        let now = Instant::now();
        let unused = vec![
            (image("recent", 30), now),
            (image("old", 30), now - Duration::from_secs(60)),
            (image("older", 30), now - Duration::from_secs(120)),
        ];
        let names = |images: Vec<Image>| images.into_iter().map(|i| i.name).collect::<Vec<_>>();
        assert_eq!(
            names(choose(unused.clone(), 850, 1000, 80)),
            ["older", "old"]
        );
        assert_eq!(names(choose(unused.clone(), 810, 1000, 80)), ["older"]);
        assert!(choose(unused.clone(), 700, 1000, 80).is_empty());
        assert_eq!(
            names(choose(unused, 1000, 1000, 0)),
            ["older", "old", "recent"]
        );
    }
}
