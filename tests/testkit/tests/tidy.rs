//! Workspace-wide source rules, checked like rust-analyzer's tidy test: every Rust file
//! starts with a `//!` line saying what the module is for.

use std::fs;
use std::path::{Path, PathBuf};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every `.rs` file under `dir`, skipping build output and hidden directories.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
    for entry in entries {
        let entry = entry.unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let file_type = entry
            .file_type()
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if file_type.is_dir() {
            if name != "target" && !name.starts_with('.') {
                rust_files(&path, out);
            }
        } else if file_type.is_file() && name.ends_with(".rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_module_starts_with_a_doc_line() {
    let root = workspace_root();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    assert!(!files.is_empty(), "no Rust files under {}", root.display());
    files.sort();
    let offenders: Vec<String> = files
        .iter()
        .filter(|path| {
            let text = fs::read_to_string(path)
                .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            !text
                .lines()
                .next()
                .is_some_and(|line| line.starts_with("//!"))
        })
        .map(|path| {
            path.strip_prefix(&root)
                .unwrap_or(path)
                .display()
                .to_string()
        })
        .collect();
    assert!(
        offenders.is_empty(),
        "these files must start with a `//!` line saying what the module is for:\n  {}",
        offenders.join("\n  ")
    );
}
