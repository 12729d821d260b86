//! Where logs live: one directory per container, one log set per run (`<restart count>.log`
//! and its rotations `<restart count>.log.1`, `.2`, … from newest to oldest), kubelet's layout.

use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

/// The log of a container's run in `dir` (the container's log directory): `restart_count`
/// is 0 for the first run and one more for each restart, as the pod status counts them.
pub fn log_path(dir: &Path, restart_count: u32) -> PathBuf {
    dir.join(format!("{restart_count}.log"))
}

/// The log `kubectl logs --previous` reads: the run before `restart_count`, if any.
pub fn previous_log_path(dir: &Path, restart_count: u32) -> Option<PathBuf> {
    restart_count
        .checked_sub(1)
        .map(|previous| log_path(dir, previous))
}

/// Rotation `n` of the log at `path`: `path` with `.n` appended.
pub(crate) fn rotation(path: &Path, n: u32) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// The files of the log set at `path` that exist, oldest first: the rotations by
/// descending number, then `path` itself.
pub fn log_set(path: &Path) -> io::Result<Vec<PathBuf>> {
    let Some(name) = path.file_name() else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a log path must name a file",
        ));
    };
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut rotations = Vec::new();
    let mut current = false;
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry_name = entry?.file_name();
        if entry_name == name {
            current = true;
            continue;
        }
        let number = entry_name
            .as_bytes()
            .strip_prefix(name.as_bytes())
            .and_then(|rest| rest.strip_prefix(b"."))
            .and_then(|digits| std::str::from_utf8(digits).ok())
            // Only the names `rotation` makes: no sign, no leading zero.
            .filter(|digits| !digits.starts_with('0') && digits.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|digits| digits.parse::<u32>().ok());
        if let Some(n) = number {
            rotations.push(n);
        }
    }
    rotations.sort_unstable_by(|a, b| b.cmp(a));
    let mut files: Vec<PathBuf> = rotations.into_iter().map(|n| rotation(path, n)).collect();
    if current {
        files.push(path.to_owned());
    }
    Ok(files)
}

/// Deletes the log set at `path`, rotations included; what is already gone is no error.
pub fn remove_log_set(path: &Path) -> io::Result<()> {
    for file in log_set(path)? {
        match std::fs::remove_file(&file) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_restart_count() {
        let dir = Path::new("/pods/uid/logs/app");
        assert_eq!(log_path(dir, 0), Path::new("/pods/uid/logs/app/0.log"));
        assert_eq!(previous_log_path(dir, 0), None);
        assert_eq!(
            previous_log_path(dir, 3),
            Some(PathBuf::from("/pods/uid/logs/app/2.log"))
        );
        assert_eq!(
            rotation(&log_path(dir, 2), 10),
            Path::new("/pods/uid/logs/app/2.log.10")
        );
    }

    #[test]
    fn a_set_is_listed_oldest_first_and_removed_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("1.log");
        for name in [
            "1.log",
            "1.log.1",
            "1.log.2",
            "1.log.10",
            "1.log.x",
            "1.log.1.tmp",
            "1.log.01",
            "1.log.+3",
            "0.log",
            "0.log.1",
            "11.log",
            "1.logs",
        ] {
            std::fs::write(dir.path().join(name), name).expect("writing");
        }
        let names: Vec<String> = log_set(&path)
            .expect("listing")
            .iter()
            .map(|p| p.file_name().expect("name").to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["1.log.10", "1.log.2", "1.log.1", "1.log"]);

        remove_log_set(&path).expect("removing");
        assert_eq!(log_set(&path).expect("listing"), Vec::<PathBuf>::new());
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .expect("listing")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "0.log",
                "0.log.1",
                "1.log.+3",
                "1.log.01",
                "1.log.1.tmp",
                "1.log.x",
                "1.logs",
                "11.log"
            ]
        );
    }

    #[test]
    fn a_set_without_its_current_file_or_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("0.log");
        std::fs::write(rotation(&path, 1), "x").expect("writing");
        assert_eq!(log_set(&path).expect("listing"), vec![rotation(&path, 1)]);
        let missing = dir.path().join("nothing").join("0.log");
        assert_eq!(log_set(&missing).expect("listing"), Vec::<PathBuf>::new());
        remove_log_set(&missing).expect("removing nothing");
    }
}
