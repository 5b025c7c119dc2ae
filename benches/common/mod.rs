//! Helpers shared by the benches.

use std::process::Command;

/// Run a PyTorch reference script from tools/ and parse the JSON it prints;
/// the default (an empty table) and a note on stderr when it fails, so the
/// burn columns are still printed.
pub fn python_json<T: serde::de::DeserializeOwned + Default>(script: &str, args: &[&str]) -> T {
    let parsed = Command::new("python3")
        .arg(script)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| serde_json::from_slice(&o.stdout).ok());
    parsed.unwrap_or_else(|| {
        eprintln!("PyTorch column: n/a (python3 {script} failed)");
        T::default()
    })
}
