//! The one printer that owns stdout, and file output for `--out-*` flags.

use std::io::Write;

/// Writes to stdout; a closed pipe (`| head`) is not an error worth a panic.
pub fn stdout(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// Writes `text` to a file, or to stdout for `-`.
pub fn write_target(target: &str, text: &str) -> anyhow::Result<()> {
    if target == "-" {
        stdout(text);
        Ok(())
    } else {
        std::fs::write(target, text).map_err(|e| anyhow::anyhow!("cannot write `{target}`: {e}"))
    }
}
