//! The auscope window: menu, frame viewer, timeline, face panel, status bar.

use std::path::PathBuf;

use auscope_core::face::DetectorKind;
use auscope_core::face::crop::{CropSpec, crop_face};
use auscope_core::source::{SourceInfo, SourceKind};
use eframe::egui::{self, ColorImage, Key, TextureHandle, TextureOptions, Vec2};
use eframe::egui_wgpu::wgpu;

use crate::viewer::{OverlayOptions, ViewTransform, viewer_ui};
use auscope_core::models::PredictorKind;

use crate::explain_ui::ExplainState;
use crate::worker::{AnalyzedFrame, ModelInfo, ModelRequest, Reply, Request, Worker};

/// The second viewer of a side-by-side comparison: the same frame and face,
/// another method or another model.
struct Compare {
    /// None: the main model.
    kind: Option<PredictorKind>,
    /// The other model once the worker loaded it.
    model: Option<ModelInfo>,
    loading: bool,
    explain: ExplainState,
}

/// What is on screen for the current frame.
struct Shown {
    analyzed: AnalyzedFrame,
    texture: TextureHandle,
    crop: Option<(usize, CropSpec, TextureHandle)>,
}

pub struct AuscopeApp {
    worker: Worker,
    device_status: String,
    source: Option<SourceInfo>,
    /// Frame the user asked for; `shown` may still be an older one.
    wanted: usize,
    requested: Option<usize>,
    shown: Option<Shown>,
    selected_face: Option<usize>,
    overlay: OverlayOptions,
    show_crop: bool,
    show_timings: bool,
    crop_spec: CropSpec,
    detector: DetectorKind,
    view: ViewTransform,
    /// The last error, shown until dismissed; the app stays usable.
    error: Option<String>,
    busy: bool,
    /// The AU model asked for, and the one the worker confirmed.
    model_wanted: Option<PredictorKind>,
    model: Option<ModelInfo>,
    model_loading: bool,
    explain: ExplainState,
    /// Side by side: a second viewer with its own explanation.
    compare: Option<Compare>,
    /// The GPU overlay pipeline is installed in egui's renderer.
    gpu_overlay: bool,
    /// The wgpu device egui renders with, and the one the models run on
    /// (None: the CPU); when they are one, maps are drawn in place.
    render_device: Option<wgpu::Device>,
    model_device: Option<wgpu::Device>,
    /// A passing message (e.g. what Export wrote), shown until dismissed.
    notice: Option<String>,
    /// The model asked for last, and the one in use (jobs load their own copy).
    model_pending: Option<ModelRequest>,
    model_request: Option<ModelRequest>,
    correlation: crate::correlation_ui::CorrelationPanel,
    review: crate::review_ui::Review,
    /// The face to select when the frame asked for arrives (review seeks).
    want_face: Option<usize>,
}

impl AuscopeApp {
    pub fn new(worker: Worker, device_status: String, open: Option<PathBuf>) -> Self {
        let mut app = AuscopeApp {
            worker,
            device_status,
            source: None,
            wanted: 0,
            requested: None,
            shown: None,
            selected_face: None,
            overlay: OverlayOptions {
                boxes: true,
                landmarks: true,
            },
            show_crop: true,
            show_timings: true,
            crop_spec: CropSpec::Rgb256,
            detector: DetectorKind::default(),
            view: ViewTransform::default(),
            error: None,
            busy: false,
            model_wanted: None,
            model: None,
            model_loading: false,
            explain: ExplainState::for_view(0),
            compare: None,
            gpu_overlay: false,
            render_device: None,
            model_device: None,
            notice: None,
            model_pending: None,
            model_request: None,
            correlation: Default::default(),
            review: Default::default(),
            want_face: None,
        };
        if let Some(path) = open {
            app.open(path);
        }
        app
    }

    /// Draw explanation maps with our WGSL shader in egui's wgpu renderer
    /// (None: no wgpu renderer; maps are coloured on the CPU).
    pub fn with_gpu(mut self, render_state: Option<&eframe::egui_wgpu::RenderState>) -> Self {
        if let Some(rs) = render_state {
            crate::overlay_gpu::install(rs);
            self.gpu_overlay = crate::overlay_gpu::installed(rs);
            self.render_device = Some(rs.device.clone());
        }
        self
    }

    /// The wgpu device the worker's models run on (`Compute::gpu_device`;
    /// None: the CPU). When egui renders with the same device, the overlay
    /// shader reads maps from the models' own buffers.
    pub fn with_model_device(mut self, device: Option<&wgpu::Device>) -> Self {
        self.set_model_device(device);
        self
    }

    /// The same, after start (tests compare drawing in place with uploading).
    pub fn set_model_device(&mut self, device: Option<&wgpu::Device>) {
        self.model_device = device.cloned();
    }

    /// Whether maps are drawn from the models' GPU buffers (no copy).
    fn maps_shared(&self) -> bool {
        self.gpu_overlay && self.model_device.is_some() && self.model_device == self.render_device
    }

    /// Where the map on screen is drawn from ("drawn from the model's GPU
    /// buffer" or "uploaded from the CPU"); None without a map.
    pub fn map_source(&self) -> Option<&'static str> {
        self.explain.map_source(self.explain_wanted().as_ref())
    }

    /// Choose an explanation (None: off) and the map shown (an AU, "L34", "all").
    pub fn set_explain(&mut self, method: Option<auscope_core::explain::Method>, label: Option<&str>) {
        self.explain.method = method;
        self.explain.label = label.map(str::to_string);
    }

    /// Overlay opacity and colour map.
    pub fn set_overlay_style(&mut self, opacity: f32, colormap: auscope_core::explain::render::Colormap) {
        self.explain.style.opacity = opacity;
        self.explain.style.colormap = colormap;
    }

    /// The explanation on screen for the selected face, if computed.
    pub fn explanation(&self) -> Option<std::sync::Arc<auscope_core::explain::Explanation>> {
        self.explain.current(self.explain_wanted().as_ref()).cloned()
    }

    /// Turn the side-by-side view on with `kind` on the right (None: the
    /// main model), or off.
    pub fn set_compare(&mut self, on: bool, kind: Option<PredictorKind>) {
        if !on {
            self.compare = None;
            self.worker.send(Request::SetCompareModel(None));
            return;
        }
        let c = self.compare.get_or_insert_with(|| Compare { kind: None, model: None, loading: false, explain: ExplainState::for_view(1) });
        if c.kind != kind || (kind.is_some() && c.model.is_none() && !c.loading) {
            c.kind = kind;
            c.model = None;
            c.explain.reset();
            let request = kind.map(|kind| ModelRequest { kind, weights: None });
            c.loading = request.is_some() && self.worker.send(Request::SetCompareModel(request));
        }
    }

    /// Choose the right viewer's explanation (None: off) and map.
    pub fn set_compare_explain(&mut self, method: Option<auscope_core::explain::Method>, label: Option<&str>) {
        if let Some(c) = &mut self.compare {
            c.explain.method = method;
            c.explain.label = label.map(str::to_string);
        }
    }

    /// The right viewer's explanation, if computed.
    pub fn compare_explanation(&self) -> Option<std::sync::Arc<auscope_core::explain::Explanation>> {
        let c = self.compare.as_ref()?;
        c.explain.current(self.compare_wanted().as_ref()).cloned()
    }

    /// The model the right viewer explains: its own, or the main one.
    fn compare_model(&self) -> Option<&ModelInfo> {
        let c = self.compare.as_ref()?;
        match c.kind {
            Some(_) => c.model.as_ref(),
            None => self.model.as_ref(),
        }
    }

    /// The explanation the panel asks for: the selected face of the frame on screen.
    fn explain_wanted(&self) -> Option<crate::worker::ExplainRequest> {
        self.wanted_of(&self.explain, self.model.as_ref())
    }

    /// The same for the right viewer.
    fn compare_wanted(&self) -> Option<crate::worker::ExplainRequest> {
        self.wanted_of(&self.compare.as_ref()?.explain, self.compare_model())
    }

    fn wanted_of(&self, state: &ExplainState, model: Option<&ModelInfo>) -> Option<crate::worker::ExplainRequest> {
        let shown = self.shown.as_ref()?;
        let face = self.selected_face.filter(|&i| i < shown.analyzed.faces.len());
        state.wanted(shown.analyzed.frame.id.index, face, model)
    }

    /// Write the explanation of viewer `view` (0: main, 1: right) on screen
    /// to `dir`: every map as an overlay PNG and a .npy, every matrix, and
    /// explain.json. Returns the files written.
    pub fn export_explanation(&self, view: usize, dir: &std::path::Path) -> Result<Vec<PathBuf>, String> {
        use auscope_core::explain::export::{ExportIndex, MapSelection, slug, write_explanation};
        let (state, wanted, model) = match view {
            0 => (&self.explain, self.explain_wanted(), self.model.as_ref()),
            _ => {
                let c = self.compare.as_ref().ok_or("the side-by-side view is off")?;
                (&c.explain, self.compare_wanted(), self.compare_model())
            }
        };
        let (Some(shown), Some(model), Some(w)) = (&self.shown, model, wanted.as_ref()) else {
            return Err("nothing to export: choose a model, a face and a method".into());
        };
        let e = state.current(Some(w)).ok_or("the explanation is still being computed")?;
        std::fs::create_dir_all(dir).map_err(|err| format!("{}: {err}", dir.display()))?;
        let input = self.source.as_ref().map(|s| s.path.clone()).unwrap_or_default();
        let stem = input.file_stem().and_then(|s| s.to_str()).unwrap_or("frame").to_string();
        let base = format!("{}_f{:05}_face{}_{}_{}", stem, w.frame, w.face, slug(model.kind.name()), e.method.name());
        let style = auscope_core::explain::render::OverlayStyle { range: [0.0, 1.0], ..state.style };
        let files = write_explanation(dir, &base, &shown.analyzed.frame.image, e, MapSelection::All, &style, w.frame, w.face)
            .map_err(|err| err.to_string())?;
        let index = ExportIndex {
            input: input.display().to_string(),
            model: model.kind.name().into(),
            weights: model.source.clone(),
            method: e.method,
            layer: w.options.layer.clone(),
            note: e.note.clone(),
            files,
            skipped: Vec::new(),
        };
        let json = index.write(dir).map_err(|err| err.to_string())?;
        let mut written: Vec<PathBuf> = index.files.iter().flat_map(|f| [dir.join(&f.png), dir.join(&f.npy)]).collect();
        written.push(json);
        Ok(written)
    }

    /// Export pressed in a panel: ask for a folder and write there.
    fn handle_export(&mut self) {
        let views: Vec<usize> = [
            std::mem::take(&mut self.explain.export_clicked).then_some(0),
            self.compare.as_mut().and_then(|c| std::mem::take(&mut c.explain.export_clicked).then_some(1)),
        ]
        .into_iter()
        .flatten()
        .collect();
        for view in views {
            let Some(dir) = rfd::FileDialog::new().set_title("Export the explanation to a folder").pick_folder() else { continue };
            match self.export_explanation(view, &dir) {
                Ok(files) => self.notice = Some(format!("Exported {} files to {}", files.len(), dir.display())),
                Err(e) => self.error = Some(format!("export: {e}")),
            }
        }
    }

    /// Whether a frame is on screen (tests wait for this).
    pub fn has_frame(&self) -> bool {
        self.shown.is_some()
    }

    /// Start "AU correlation over the video" on every `every`th frame of the
    /// open source with the current model, labels from `labels` if given.
    pub fn start_video_correlation(&mut self, every: usize, labels: Option<crate::correlation_job::LabelSource>) {
        self.correlation.every = every;
        self.correlation.labels = labels;
        self.correlation.start_clicked = true;
        self.handle_correlation();
    }

    /// The finished correlation: matrices and the frames left out, or the error.
    pub fn video_correlation(&self) -> Option<&Result<(auscope_core::explain::video::VideoCorrelation, Vec<String>), String>> {
        self.correlation.result.as_ref()
    }

    fn handle_correlation(&mut self) {
        if !std::mem::take(&mut self.correlation.start_clicked) {
            return;
        }
        let (Some(source), Some(model)) = (&self.source, &self.model_request) else {
            self.correlation.result = Some(Err("open a video and choose an AU model first".into()));
            return;
        };
        let spec = crate::correlation_job::CorrelationSpec {
            video: source.path.clone(),
            model: model.clone(),
            detector: self.detector,
            every: self.correlation.every.max(1),
            labels: self.correlation.labels.clone(),
        };
        match crate::correlation_job::spawn(spec, self.worker.device.clone()) {
            Ok(job) => self.correlation.started(job),
            Err(e) => self.correlation.result = Some(Err(format!("could not start the job: {e}"))),
        }
    }

    /// Width and height of the frame on screen.
    pub fn frame_size(&self) -> Option<(u32, u32)> {
        self.shown.as_ref().map(|s| s.analyzed.frame.image.dimensions())
    }

    /// Frames of the open media (0: none open).
    pub fn frame_count(&self) -> usize {
        self.source.as_ref().map_or(0, |s| s.frame_count)
    }

    /// Faces in the frame on screen.
    pub fn face_count(&self) -> Option<usize> {
        self.shown.as_ref().map(|s| s.analyzed.faces.len())
    }

    /// Show or hide per-frame timings in the status bar (View > Frame timings).
    pub fn set_show_timings(&mut self, show: bool) {
        self.show_timings = show;
    }

    /// The error on screen, if any.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// The AU model in use (tests wait for this).
    pub fn model(&self) -> Option<&ModelInfo> {
        self.model.as_ref()
    }

    /// AU probabilities of the selected face on screen.
    pub fn selected_aus(&self) -> Option<Vec<f32>> {
        let shown = self.shown.as_ref()?;
        let probs = shown.analyzed.aus.as_ref()?.as_ref().ok()?;
        probs.get(self.selected_face?).cloned()
    }

    /// Switch the AU model; `weights` None runs it on its shipped demo weights.
    pub fn set_model(&mut self, kind: Option<PredictorKind>, weights: Option<PathBuf>) {
        let request = kind.map(|kind| ModelRequest { kind, weights });
        if self.worker.send(Request::SetModel(request.clone())) {
            self.model_pending = request;
            self.model_wanted = kind;
            self.model_loading = true;
            self.requested = None;
        }
    }

    /// The review panel (tests drive it).
    pub fn review(&self) -> &crate::review_ui::Review {
        &self.review
    }

    pub fn review_mut(&mut self) -> &mut crate::review_ui::Review {
        &mut self.review
    }

    /// The model request in use (kind and weights).
    pub fn model_request(&self) -> Option<&ModelRequest> {
        self.model_request.as_ref()
    }

    /// The label key of each face on screen (its index in the project's
    /// stored analysis; see `Review::face_keys`).
    fn face_keys(&self) -> Vec<usize> {
        self.shown.as_ref().map(|s| self.review.face_keys(s.analyzed.frame.id.index, &s.analyzed.faces)).unwrap_or_default()
    }

    /// The label key of the selected face.
    fn selected_key(&self) -> Option<usize> {
        self.selected_face.and_then(|i| self.face_keys().get(i).copied())
    }

    /// The person (stored identity) of the selected face.
    fn selected_person(&self) -> Option<u32> {
        self.selected_key().and_then(|k| self.shown_frame().and_then(|f| self.review.identity(f, k)))
    }

    /// Frame index on screen.
    pub fn shown_frame(&self) -> Option<usize> {
        self.shown.as_ref().map(|s| s.analyzed.frame.id.index)
    }

    /// The media's adopted fine-tuned version of the current model replaces
    /// its base weights (the user chose it in this project).
    fn use_adopted(&mut self) {
        let Some(ModelRequest { kind: PredictorKind::Net(kind), weights: None }) = self.model_request.clone() else { return };
        if self.model_pending.is_some() {
            return;
        }
        if let Some(w) = self.review.adopted_weights(kind) {
            self.notice = Some(format!("Using this media's adopted fine-tuned {} ({})", kind.title(), w.display()));
            self.set_model(Some(PredictorKind::Net(kind)), Some(w));
        }
    }

    fn on_review(&mut self, action: Option<crate::review_ui::ReviewAction>) {
        match action {
            Some(crate::review_ui::ReviewAction::Seek { frame, face }) => {
                if self.shown.as_ref().is_some_and(|s| s.analyzed.frame.id.index == frame) {
                    self.selected_face = self.face_keys().iter().position(|&k| k == face).or(self.selected_face);
                } else {
                    self.want_face = Some(face);
                }
                self.go_to(frame);
            }
            Some(crate::review_ui::ReviewAction::UseWeights(w)) => {
                if let Some(kind) = self.model_request.as_ref().map(|m| m.kind) {
                    self.set_model(Some(kind), w);
                }
            }
            None => {}
        }
    }

    pub fn open(&mut self, path: PathBuf) {
        self.busy = self.worker.send(Request::Open(path));
    }

    /// Show frame `index` (clamped to the source).
    pub fn seek(&mut self, index: usize) {
        self.go_to(index);
    }

    fn go_to(&mut self, index: usize) {
        let Some(info) = &self.source else { return };
        self.wanted = index.min(info.frame_count.saturating_sub(1));
    }

    fn poll_worker(&mut self, ctx: &egui::Context) {
        while let Ok(reply) = self.worker.replies.try_recv() {
            match reply {
                Reply::Opened(Ok(info)) => {
                    self.review.open(&info.path, info.frame_count);
                    self.source = Some(info);
                    self.correlation.clear();
                    self.use_adopted();
                    self.wanted = 0;
                    self.requested = None;
                    self.shown = None;
                    self.selected_face = None;
                    self.view = ViewTransform::default();
                    self.error = None;
                }
                Reply::Opened(Err(e)) => {
                    self.busy = false;
                    self.error = Some(e);
                }
                Reply::Frame { index, result } => {
                    self.busy = false;
                    match result {
                        Ok(analyzed) => {
                            let texture = frame_texture(ctx, &analyzed);
                            let keys = self.review.face_keys(index, &analyzed.faces);
                            if let Some(Ok(probs)) = &analyzed.aus {
                                self.review.on_predictions(index, &keys, probs);
                            }
                            let n = analyzed.faces.len();
                            // The face wanted (a label key), else the person followed, else the first.
                            let by_person = self.selected_person().and_then(|id| keys.iter().position(|&k| self.review.identity(index, k) == Some(id)));
                            self.selected_face = self.want_face.take().and_then(|k| keys.iter().position(|&x| x == k)).or(by_person).or((n > 0).then_some(0));
                            self.shown = Some(Shown {
                                analyzed,
                                texture,
                                crop: None,
                            });
                        }
                        Err(e) => {
                            self.error = Some(format!("frame {index}: {e}"));
                            self.shown = None;
                        }
                    }
                }
                Reply::Fatal(e) => {
                    self.busy = false;
                    self.error = Some(e);
                }
                Reply::Model(result) => {
                    self.model_loading = false;
                    match result {
                        Ok(info) => {
                            self.model_wanted = info.as_ref().map(|i| i.kind);
                            self.model = info;
                            self.model_request = self.model_pending.take();
                            self.correlation.clear();
                            self.review.set_model(self.model.as_ref().map(|m| m.aus.as_slice()), self.model_request.as_ref());
                            self.use_adopted();
                        }
                        Err(e) => {
                            self.model_wanted = self.model.as_ref().map(|i| i.kind);
                            self.error = Some(e);
                        }
                    }
                    self.requested = None;
                    self.explain.reset();
                    if let Some(c) = &mut self.compare {
                        c.explain.reset();
                    }
                }
                Reply::CompareModel(result) => {
                    if let Some(c) = &mut self.compare {
                        c.loading = false;
                        match result {
                            Ok(info) => c.model = info,
                            Err(e) => {
                                c.kind = None;
                                self.error = Some(format!("side-by-side model: {e}"));
                            }
                        }
                        c.explain.reset();
                    }
                }
                Reply::Explanation { request, result, ms } => match (request.view, &mut self.compare) {
                    (1, Some(c)) => c.explain.on_reply(request, result, ms),
                    (1, None) => {}
                    _ => self.explain.on_reply(request, result, ms),
                },
            }
        }
        if self.source.is_some()
            && self.requested != Some(self.wanted)
            && self.worker.send(Request::Frame(self.wanted))
        {
            self.requested = Some(self.wanted);
            self.busy = true;
        }
    }

    fn menu_ui(&mut self, ui: &mut egui::Ui) {
        egui::MenuBar::new().ui(ui, |ui| {
            ui.menu_button("File", |ui| {
                if ui.button("Open image or video…").clicked() {
                    let picked = rfd::FileDialog::new()
                        .add_filter(
                            "Images and videos",
                            &[
                                auscope_core::source::IMAGE_EXTENSIONS,
                                auscope_core::source::VIDEO_EXTENSIONS,
                            ]
                            .concat(),
                        )
                        .pick_file();
                    if let Some(path) = picked {
                        self.open(path);
                    }
                    ui.close();
                }
                if ui.button("Open folder of images…").clicked() {
                    if let Some(path) = rfd::FileDialog::new().pick_folder() {
                        self.open(path);
                    }
                    ui.close();
                }
                if ui.button("Quit").clicked() {
                    ui.ctx().send_viewport_cmd(egui::ViewportCommand::Close);
                }
            });
            ui.menu_button("View", |ui| {
                ui.checkbox(&mut self.overlay.boxes, "Face boxes");
                ui.checkbox(&mut self.overlay.landmarks, "68 landmarks");
                ui.checkbox(&mut self.show_crop, "Model crop");
                ui.checkbox(&mut self.show_timings, "Frame timings");
                if ui.button("Fit to window").clicked() {
                    self.view = ViewTransform::default();
                    ui.close();
                }
            });
            ui.menu_button("Model", |ui| {
                let mut wanted = self.model_wanted;
                let mut changed = ui.radio_value(&mut wanted, None, "No AU model").clicked();
                for kind in PredictorKind::all() {
                    changed |= ui.radio_value(&mut wanted, Some(kind), kind.title()).clicked();
                }
                if changed && wanted != self.model_wanted {
                    self.set_model(wanted, None);
                    ui.close();
                }
                ui.separator();
                let kind = self.model_wanted;
                if ui
                    .add_enabled(matches!(kind, Some(PredictorKind::Net(_))), egui::Button::new("Load weights…"))
                    .on_disabled_hover_text("Choose one of the four networks first")
                    .clicked()
                {
                    let picked = rfd::FileDialog::new()
                        .add_filter("auscope or PyTorch weights", &["bpk", "safetensors", "pth", "pt"])
                        .pick_file();
                    if let Some(path) = picked {
                        self.set_model(kind, Some(path));
                    }
                    ui.close();
                }
            });
            ui.menu_button("Detector", |ui| {
                for (kind, label) in [
                    (DetectorKind::Full, "BlazeFace full-range (group photos)"),
                    (DetectorKind::Short, "BlazeFace short-range (close-ups)"),
                ] {
                    if ui.radio_value(&mut self.detector, kind, label).clicked() {
                        self.worker.send(Request::SetDetector(kind));
                        self.requested = None;
                    }
                }
            });
        });
    }

    fn timeline_ui(&mut self, ui: &mut egui::Ui) {
        let Some(info) = self.source.clone() else {
            ui.label("File > Open to load an image, a folder of images or a video.");
            return;
        };
        let last = info.frame_count.saturating_sub(1);
        ui.horizontal(|ui| {
            if ui
                .button("|<")
                .on_hover_text("First frame (Home)")
                .clicked()
            {
                self.go_to(0);
            }
            if ui.button("<").on_hover_text("Previous frame (←)").clicked() {
                self.go_to(self.wanted.saturating_sub(1));
            }
            if ui.button(">").on_hover_text("Next frame (→)").clicked() {
                self.go_to(self.wanted + 1);
            }
            if ui.button(">|").on_hover_text("Last frame (End)").clicked() {
                self.go_to(last);
            }
            let mut index = self.wanted;
            let label = match info.fps {
                Some(fps) => format!("/ {last}  ({:.2} s)", index as f64 / fps),
                None => format!("/ {last}"),
            };
            ui.spacing_mut().slider_width = (ui.available_width() - 160.0).max(100.0);
            let slider = egui::Slider::new(&mut index, 0..=last).text(label);
            if ui.add_enabled(last > 0, slider).changed() {
                self.go_to(index);
            }
        });
        if let Some(frame) = self.review.tracks_ui(ui, self.wanted, self.selected_person()) {
            self.go_to(frame);
        }
    }

    fn keyboard(&mut self, ctx: &egui::Context) {
        if ctx.egui_wants_keyboard_input() {
            return;
        }
        let (left, right, home, end) = ctx.input(|i| {
            (
                i.key_pressed(Key::ArrowLeft),
                i.key_pressed(Key::ArrowRight),
                i.key_pressed(Key::Home),
                i.key_pressed(Key::End),
            )
        });
        if left {
            self.go_to(self.wanted.saturating_sub(1));
        }
        if right {
            self.go_to(self.wanted + 1);
        }
        if home {
            self.go_to(0);
        }
        if end {
            self.go_to(usize::MAX);
        }
        if let Some(shown) = &self.shown {
            let frame = shown.analyzed.frame.id.index;
            let key = self.selected_key();
            let action = self.review.keys(ctx, frame, key);
            self.on_review(action);
        }
    }

    fn face_panel_ui(&mut self, ui: &mut egui::Ui) {
        let Some(shown) = &mut self.shown else {
            ui.label("No frame");
            return;
        };
        let faces = &shown.analyzed.faces;
        ui.heading(format!("{} face(s)", faces.len()));
        if faces.is_empty() {
            ui.label("No face found in this frame.");
            return;
        }
        let frame = shown.analyzed.frame.id.index;
        let keys = self.review.face_keys(frame, faces);
        let video = self.source.as_ref().is_some_and(|s| s.frame_count > 1);
        for (i, face) in faces.iter().enumerate() {
            let b = face.box_xywh();
            // The person from the stored analysis (merges included), else
            // the live track; a still has no people to follow.
            let person = keys.get(i).and_then(|&k| self.review.identity(frame, k)).or(face.track).filter(|_| video);
            let text = format!(
                "Face {}{}  score {:.2}  {:.0}x{:.0} px",
                i + 1,
                person.map(|p| format!("  person {p}")).unwrap_or_default(),
                face.detection.score,
                b[2],
                b[3]
            );
            if ui
                .selectable_label(self.selected_face == Some(i), text)
                .clicked()
            {
                self.selected_face = Some(i);
            }
        }
        let selected = self.selected_face.filter(|&i| i < faces.len());
        let review = &mut self.review;
        au_panel_ui(ui, self.model.as_ref(), self.model_loading, &shown.analyzed, selected, &mut |ui, face| review.au_table_ui(ui, frame, keys.get(face).copied().unwrap_or(face)));
        // Reviewing needs a model's AUs to label.
        if self.model.is_some() {
            let key = selected.and_then(|i| keys.get(i).copied());
            let action = self.review.panel_ui(ui, frame, key, self.model_request.as_ref(), &self.worker.device);
            self.on_review(action);
        }
        let wanted = self.explain_wanted();
        let compare_wanted = self.compare_wanted();
        let compare_model = self.compare_model().cloned();
        let Some(shown) = &mut self.shown else { return };
        let faces = &shown.analyzed.faces;
        let face = selected.map(|i| &faces[i]);
        let title = if self.compare.is_some() { "Explain (left)" } else { "Explain" };
        self.explain.panel_ui(ui, title, self.model.as_ref(), face, wanted.as_ref(), self.show_timings);
        if self.model.is_some() {
            let mut on = self.compare.is_some();
            let mut kind = self.compare.as_ref().and_then(|c| c.kind);
            let mut changed = ui
                .checkbox(&mut on, "Side by side")
                .on_hover_text("A second view of the same face: another method, or another model")
                .changed();
            if let Some(c) = &mut self.compare {
                ui.push_id("compare", |ui| {
                    let shown = kind.map_or("Same model", |k| k.title());
                    egui::ComboBox::from_label("Right model").selected_text(shown).show_ui(ui, |ui| {
                        changed |= ui.selectable_value(&mut kind, None, "Same model").changed();
                        for k in PredictorKind::all() {
                            changed |= ui.selectable_value(&mut kind, Some(k), k.title()).changed();
                        }
                    });
                    if c.loading {
                        ui.horizontal(|ui| {
                            ui.spinner();
                            ui.label("Loading the right model…");
                        });
                    } else {
                        c.explain.panel_ui(ui, "Explain (right)", compare_model.as_ref(), face, compare_wanted.as_ref(), self.show_timings);
                    }
                });
            }
            if changed {
                self.set_compare(on, kind);
            }
        }
        let video = self.source.as_ref().is_some_and(|s| s.frame_count > 1);
        self.correlation.panel_ui(ui, video, self.model.is_some(), self.review.coder());
        let Some(shown) = &mut self.shown else { return };
        let faces = &shown.analyzed.faces;
        if !self.show_crop {
            return;
        }
        ui.separator();
        egui::ComboBox::from_label("Model crop")
            .selected_text(self.crop_spec.label())
            .show_ui(ui, |ui| {
                for spec in CropSpec::ALL {
                    ui.selectable_value(&mut self.crop_spec, spec, spec.label());
                }
            });
        let Some(face_index) = self.selected_face.filter(|&i| i < faces.len()) else {
            return;
        };
        let stale =
            !matches!(&shown.crop, Some((i, s, _)) if *i == face_index && *s == self.crop_spec);
        if stale {
            let crop = crop_face(
                &shown.analyzed.frame.image,
                &faces[face_index],
                self.crop_spec,
            );
            let rgba = crop.image.to_rgba8();
            let size = [rgba.width() as usize, rgba.height() as usize];
            let image = ColorImage::from_rgba_unmultiplied(size, rgba.as_raw());
            let texture = ui
                .ctx()
                .load_texture("face-crop", image, TextureOptions::NEAREST);
            shown.crop = Some((face_index, self.crop_spec, texture));
        }
        if let Some((_, spec, texture)) = &shown.crop {
            let side = spec.size() as f32;
            ui.add(
                egui::Image::new(texture)
                    .fit_to_exact_size(Vec2::splat(side.min(ui.available_width()))),
            );
            ui.label("What the AU models see: the detector box, upright, with a 1.25x margin.");
        }
    }

    fn status_ui(&self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.label(&self.device_status);
            ui.separator();
            if let Some(info) = &self.source {
                let name = info
                    .path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let kind = match info.kind {
                    SourceKind::Image => "image".to_string(),
                    SourceKind::Folder => format!("folder, {} images", info.frame_count),
                    SourceKind::Video => format!(
                        "video, {} frames at {:.2} fps",
                        info.frame_count,
                        info.fps.unwrap_or(0.0)
                    ),
                };
                ui.label(format!("{name} ({kind})"));
            }
            if let Some(shown) = &self.shown {
                let a = &shown.analyzed;
                ui.separator();
                ui.label(format!(
                    "frame {}  {}x{}",
                    a.frame.id.index,
                    a.frame.image.width(),
                    a.frame.image.height()
                ));
                if self.show_timings {
                    ui.label(format!(
                        "decode {:.0} ms, faces {:.0} ms",
                        a.decode_ms, a.faces_ms
                    ));
                    if a.aus.is_some() {
                        ui.label(format!("AUs {:.0} ms", a.aus_ms));
                    }
                }
            }
            if self.busy {
                ui.spinner();
            }
        });
    }
}

/// The selected face's AU probabilities under the current model.
fn au_panel_ui(
    ui: &mut egui::Ui,
    model: Option<&ModelInfo>,
    loading: bool,
    analyzed: &AnalyzedFrame,
    selected: Option<usize>,
    table: &mut dyn FnMut(&mut egui::Ui, usize),
) {
    ui.separator();
    let Some(model) = model else {
        ui.label(if loading { "Loading AU model…" } else { "No AU model (Model menu)." });
        return;
    };
    ui.heading(format!("AUs: {}", model.kind.title()));
    if model.random {
        ui.colored_label(
            egui::Color32::from_rgb(255, 170, 60),
            "Random weights: this model is not trained, its probabilities mean nothing. \
             Load weights from the Model menu.",
        );
    } else if model.demo {
        ui.colored_label(
            egui::Color32::from_rgb(255, 210, 120),
            "Demo weights: a small model trained on blendshape-teacher pseudo-labels of a few \
             public clips, not on FACS-coded data (BP4D/DISFA). Not for research use; \
             load your own weights from the Model menu.",
        );
    } else {
        ui.label(format!("Weights: {}", model.source));
    }
    if model.kind == PredictorKind::BlendshapeBaseline {
        ui.colored_label(
            egui::Color32::from_rgb(255, 210, 120),
            "Approximate: MediaPipe blendshapes mapped to AUs by hand, not trained on FACS data.",
        );
    } else {
        ui.label(format!("{:.1} M parameters", model.params as f64 / 1e6));
    }
    match (&analyzed.aus, selected) {
        (Some(Err(e)), _) => {
            ui.colored_label(egui::Color32::from_rgb(255, 110, 110), format!("Model failed: {e}"));
        }
        (Some(Ok(probs)), Some(i)) if i < probs.len() => table(ui, i),
        (None, _) if loading => {
            ui.label("Loading AU model…");
        }
        _ => {
            ui.label("Running…");
        }
    }
}

/// Upload a frame for display, downscaled if it exceeds the GPU's texture limit.
fn frame_texture(ctx: &egui::Context, analyzed: &AnalyzedFrame) -> TextureHandle {
    let max_side = ctx.input(|i| i.max_texture_side) as u32;
    let image = &analyzed.frame.image;
    let scaled;
    let shown = if image.width() > max_side || image.height() > max_side {
        let k = max_side as f32 / image.width().max(image.height()) as f32;
        let (w, h) = (
            (image.width() as f32 * k) as u32,
            (image.height() as f32 * k) as u32,
        );
        scaled = image::imageops::resize(
            image.as_ref(),
            w.max(1),
            h.max(1),
            image::imageops::FilterType::Triangle,
        );
        &scaled
    } else {
        image.as_ref()
    };
    let color = ColorImage::from_rgb(
        [shown.width() as usize, shown.height() as usize],
        shown.as_raw(),
    );
    ctx.load_texture("frame", color, TextureOptions::LINEAR)
}

impl eframe::App for AuscopeApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let ctx = ui.ctx().clone();
        self.poll_worker(&ctx);
        self.handle_export();
        self.handle_correlation();
        if self.review.poll() {
            ctx.request_repaint_after(std::time::Duration::from_millis(100));
        }
        if self.correlation.poll() {
            // The job has no handle on the context; look again shortly.
            ctx.request_repaint_after(std::time::Duration::from_millis(100));
        }
        self.keyboard(&ctx);
        let dropped = ctx.input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .collect::<Vec<_>>()
        });
        if let Some(path) = dropped.into_iter().next() {
            self.open(path);
        }
        egui::Panel::top("menu").show(ui, |ui| self.menu_ui(ui));
        egui::Panel::bottom("status").show(ui, |ui| self.status_ui(ui));
        egui::Panel::bottom("timeline").show(ui, |ui| self.timeline_ui(ui));
        egui::Panel::right("faces")
            .default_size(300.0)
            .min_size(280.0)
            .show(ui, |ui| {
                egui::ScrollArea::vertical().show(ui, |ui| self.face_panel_ui(ui));
            });
        let wanted = self.explain_wanted();
        let compare_wanted = self.compare_wanted();
        let compare_matrices = self.compare.as_ref().is_some_and(|c| c.explain.has_matrices(compare_wanted.as_ref()));
        let video_matrices = self.correlation.has_matrices();
        if self.explain.has_matrices(wanted.as_ref()) || compare_matrices || video_matrices {
            egui::Panel::left("matrices")
                .default_size(380.0)
                .min_size(300.0)
                .show(ui, |ui| {
                    egui::ScrollArea::vertical().show(ui, |ui| {
                        self.explain.matrix_panel_ui(ui, wanted.as_ref());
                        if let Some(c) = &mut self.compare
                            && compare_matrices
                        {
                            ui.separator();
                            ui.push_id("compare-matrices", |ui| {
                                ui.label("Right view:");
                                c.explain.matrix_panel_ui(ui, compare_wanted.as_ref());
                            });
                        }
                        if video_matrices {
                            ui.separator();
                            self.correlation.matrix_panel_ui(ui, self.explain.style.colormap);
                        }
                    });
                });
        }
        egui::CentralPanel::default().show(ui, |ui| {
            if let Some(notice) = self.notice.clone() {
                ui.horizontal(|ui| {
                    ui.label(notice);
                    if ui.small_button("OK").clicked() {
                        self.notice = None;
                    }
                });
            }
            if let Some(error) = self.error.clone() {
                ui.horizontal(|ui| {
                    ui.colored_label(
                        egui::Color32::from_rgb(255, 110, 110),
                        format!("Error: {error}"),
                    );
                    if ui.small_button("Dismiss").clicked() {
                        self.error = None;
                    }
                });
            }
            self.explain.request(&self.worker, wanted.clone());
            let share = self.maps_shared();
            self.explain.share_maps = share;
            let map = self.explain.overlay(wanted.as_ref());
            let compare = self.compare.as_mut().map(|c| {
                c.explain.request(&self.worker, compare_wanted.clone());
                c.explain.share_maps = share;
                let caption = c.explain.caption(compare_wanted.as_ref());
                let model = match c.kind {
                    Some(k) => k.title(),
                    None => self.model.as_ref().map_or("", |m| m.kind.title()),
                };
                (c.explain.overlay(compare_wanted.as_ref()), format!("{model}: {}", caption.unwrap_or_else(|| "no explanation".into())))
            });
            match &self.shown {
                Some(shown) => {
                    let size = Vec2::new(
                        shown.analyzed.frame.image.width() as f32,
                        shown.analyzed.frame.image.height() as f32,
                    );
                    let viewer = |ui: &mut egui::Ui, map: Option<&crate::explain_ui::MapOverlay>, slot: usize, view: &mut ViewTransform| {
                        viewer_ui(ui, &shown.texture, size, &shown.analyzed.faces, self.selected_face, self.overlay, view, map, self.gpu_overlay, slot)
                    };
                    let clicked = match compare {
                        None => viewer(ui, map.as_ref(), 0, &mut self.view),
                        Some((right, right_caption)) => {
                            // One pan/zoom for both, so the same pixels line up.
                            let left_caption = format!(
                                "{}: {}",
                                self.model.as_ref().map_or("", |m| m.kind.title()),
                                self.explain.caption(wanted.as_ref()).unwrap_or_else(|| "no explanation".into())
                            );
                            let mut view = self.view;
                            let mut clicked = None;
                            ui.columns(2, |cols| {
                                cols[0].label(left_caption);
                                clicked = clicked.or(viewer(&mut cols[0], map.as_ref(), 0, &mut view));
                                let synced = view;
                                cols[1].label(right_caption);
                                let mut right_view = synced;
                                clicked = clicked.or(viewer(&mut cols[1], right.as_ref(), 1, &mut right_view));
                                if right_view != synced {
                                    view = right_view;
                                }
                            });
                            self.view = view;
                            clicked
                        }
                    };
                    if clicked.is_some() {
                        self.selected_face = clicked;
                    }
                }
                None => {
                    ui.centered_and_justified(|ui| {
                        ui.label(if self.busy {
                            "Loading…"
                        } else {
                            "Open an image, a folder or a video (File > Open, or drop a file here)."
                        });
                    });
                }
            }
        });
    }
}
