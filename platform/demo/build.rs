//! Builds the demo app (`app/main.rs`, std only) as a static executable with the same
//! rustc, so `slipway` carries it and can pack it into images on any machine.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let source = "app/main.rs";
    println!("cargo::rerun-if-changed={source}");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let status = Command::new(rustc)
        .args([
            "--edition",
            "2024",
            "--crate-name",
            "demo_app",
            "-C",
            "opt-level=2",
            "-C",
            "strip=symbols",
            // glibc linked in: no loader or libraries needed in the image.
            "-C",
            "target-feature=+crt-static",
            "-o",
        ])
        .arg(out.join("demo-app"))
        .arg(source)
        .status()
        .expect("running rustc for the demo app");
    assert!(status.success(), "building the demo app failed");
}
