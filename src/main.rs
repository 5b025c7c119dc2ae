//! auscope-gui: the desktop app. `auscope-gui [--model NAME [--weights FILE]] [FILE]`
//! opens FILE at start with that AU model.

use auscope_app::app::AuscopeApp;
use auscope_app::gpu::wgpu_configuration;
use auscope_app::worker::Worker;
use auscope_core::{Compute, DeviceChoice};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args_os().skip(1);
    let mut device = DeviceChoice::Auto;
    let mut open = None;
    let mut model = None;
    let mut weights = None;
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some("--device") => {
                let value = args
                    .next()
                    .and_then(|v| v.into_string().ok())
                    .unwrap_or_default();
                device = value.parse().map_err(anyhow::Error::msg)?;
            }
            Some("--model") => {
                let value = args.next().and_then(|v| v.into_string().ok()).unwrap_or_default();
                model = Some(auscope_core::models::PredictorKind::parse(&value)?);
            }
            Some("--weights") => weights = args.next().map(std::path::PathBuf::from),
            Some("--help" | "-h") => {
                println!(
                    "usage: auscope-gui [--device auto|wgpu|cpu] [--model fan-trans|transau|piap|lrp-arl-ff|blendshape-baseline \
                     [--weights FILE]] [IMAGE|FOLDER|VIDEO]"
                );
                return Ok(());
            }
            _ => open = Some(std::path::PathBuf::from(arg)),
        }
    }
    let compute = Compute::init(device)?;
    let status = compute.status_line();
    let options = eframe::NativeOptions {
        viewport: eframe::egui::ViewportBuilder::default()
            .with_inner_size([1280.0, 800.0])
            .with_title("auscope"),
        wgpu_options: wgpu_configuration(&compute),
        ..Default::default()
    };
    eframe::run_native(
        "auscope",
        options,
        Box::new(move |cc| {
            let ctx = cc.egui_ctx.clone();
            let worker = Worker::spawn(
                compute.device.clone(),
                Box::new(move || ctx.request_repaint()),
            )?;
            let mut app = AuscopeApp::new(worker, status, open)
                .with_gpu(cc.wgpu_render_state.as_ref())
                .with_model_device(compute.gpu_device());
            if model.is_some() {
                app.set_model(model, weights);
            }
            Ok(Box::new(app))
        }),
    )
    .map_err(|e| anyhow::anyhow!("window: {e}"))
}
