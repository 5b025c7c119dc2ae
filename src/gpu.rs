//! One wgpu device for burn and egui: burn creates it (asking for the
//! features its kernels need) and egui renders through the same handles, so
//! model outputs can stay on the GPU for our shaders.

use auscope_core::Compute;
use eframe::egui_wgpu::{WgpuConfiguration, WgpuSetup, WgpuSetupExisting};

/// eframe's wgpu configuration: the compute device's handles when there are
/// any; otherwise eframe picks its own adapter (models then run on the CPU).
pub fn wgpu_configuration(compute: &Compute) -> WgpuConfiguration {
    let mut config = WgpuConfiguration::default();
    if let Some(setup) = &compute.wgpu {
        config.wgpu_setup = WgpuSetup::Existing(WgpuSetupExisting {
            instance: setup.instance.clone(),
            adapter: setup.adapter.clone(),
            device: setup.device.clone(),
            queue: setup.queue.clone(),
        });
    }
    config
}
