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

/// The devices a bench times: the CPU (burn Flex), and wgpu when Auto picks
/// it (a hardware GPU), or on any adapter with AUSCOPE_BENCH_WGPU=any.
#[allow(dead_code)]
pub fn bench_devices() -> Vec<(String, burn::tensor::Device)> {
    use auscope_core::{Compute, DeviceChoice};
    let any_wgpu = std::env::var("AUSCOPE_BENCH_WGPU").is_ok_and(|v| v == "any");
    let mut devices = vec![("cpu (Flex)".to_string(), burn::tensor::Device::flex())];
    // One init per process: burn registers the wgpu runtime once.
    match Compute::init(if any_wgpu { DeviceChoice::Wgpu } else { DeviceChoice::Auto }) {
        Ok(c) if c.gpu_device().is_some() => devices.push((c.name.clone(), c.device.clone())),
        Ok(c) => eprintln!("wgpu column skipped (AUSCOPE_BENCH_WGPU=any times it anyway): {}", c.fallback_reason.unwrap_or_default()),
        Err(e) => eprintln!("wgpu column skipped: {e}"),
    }
    devices
}

/// Mean milliseconds per call of `f` over `iters` calls, after one warm-up
/// call (kernel compilation, autotune, caches), with the device synced
/// before and after so queued GPU work is counted.
#[allow(dead_code)]
pub fn mean_ms(iters: usize, device: &burn::tensor::Device, mut f: impl FnMut()) -> f64 {
    f();
    let _ = device.sync();
    let start = std::time::Instant::now();
    for _ in 0..iters {
        f();
    }
    let _ = device.sync();
    start.elapsed().as_secs_f64() * 1e3 / iters as f64
}
