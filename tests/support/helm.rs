//! The Helm CLI for the chart tests, built from the Go module proxy like the
//! testbed binaries.
//!
//! Include it from a test file with
//!
//! ```ignore
//! #[path = "support/helm.rs"]
//! mod helm;
//! ```
//!
//! and call [`helm()`] for the binary's path. The first call in a test
//! process runs `tests/testbed/build-helm.sh`: a no-op of well under a
//! second when `~/.cache/kompox-testbed/helm/<version>/bin/helm` (or under
//! `$KOMPOX_TESTBED_CACHE`) is current, otherwise a `go install` of
//! `helm.sh/helm/v3/cmd/helm` with the version ldflags (measured on 2
//! cores: 70 s when the testbed build has already compiled the shared
//! k8s.io packages, 165 s with an empty Go build cache, plus the module
//! downloads on a new machine). Concurrent test processes serialise on the
//! script's `flock`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// The path of the helm binary, built on first use. A failed build is
/// remembered, so every test fails at once with the same error.
pub fn helm() -> &'static Path {
    static HELM: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match HELM.get_or_init(build) {
        Ok(p) => p,
        Err(e) => panic!("helm is not available: {e}"),
    }
}

/// Runs helm with `args` (no stdin, a clean helm home under the temp dir so
/// the user's repositories and plugins play no part); returns its output.
pub fn run(args: &[&str]) -> Output {
    let home = std::env::temp_dir().join("kompox-helm-home");
    Command::new(helm())
        .args(args)
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", helm().display()))
}

/// stdout + stderr of an output, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn build() -> Result<PathBuf, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testbed/build-helm.sh");
    let t = std::time::Instant::now();
    let out = Command::new("bash")
        .arg(&script)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("running {}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!("{} failed ({})", script.display(), out.status));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let path = stdout
        .lines()
        .rfind(|l| !l.trim().is_empty())
        .ok_or("build-helm.sh printed no path")?;
    let path = PathBuf::from(path.trim());
    if !path.is_file() {
        return Err(format!(
            "build-helm.sh printed {path:?}, which is not a file"
        ));
    }
    if t.elapsed().as_secs() > 5 {
        eprintln!(
            "[helm] built {} in {:.0}s",
            path.display(),
            t.elapsed().as_secs_f64()
        );
    }
    Ok(path)
}
