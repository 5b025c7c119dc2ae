//! The Explain section of the face panel: method, AU / landmark, layer,
//! colour map and opacity; the AU x AU matrix view with hover values and a
//! colour bar. Explanations are computed by the worker thread; this keeps
//! the request for what is on screen and the latest result.

use std::sync::Arc;

use auscope_core::explain::render::{Colormap, OverlayStyle};
use auscope_core::explain::{ExplainOptions, Explanation, MapStack, Matrix, Method, face_too_small};
use auscope_core::face::Face;
use auscope_core::frame::Roi;
use eframe::egui::{self, Color32, Pos2, Rect, Sense, Stroke, Vec2};

use crate::overlay_gpu::MapData;
use crate::worker::{ExplainRequest, ModelInfo, Request, Worker};

#[derive(Default)]
pub struct ExplainState {
    /// Which viewer this panel drives (0: main, 1: side by side).
    pub view: usize,
    /// The Export button was pressed; the app asks for a folder.
    pub export_clicked: bool,
    /// None: no overlay.
    pub method: Option<Method>,
    /// The map shown (an AU, "L34", "all"); None: the first.
    pub label: Option<String>,
    /// Score-CAM layer; None: the explainer's default.
    pub layer: Option<String>,
    pub style: OverlayStyle,
    /// Index of the matrix shown.
    pub matrix: usize,
    sent: Option<ExplainRequest>,
    result: Option<(ExplainRequest, Arc<Explanation>, f64)>,
    error: Option<(ExplainRequest, String)>,
    /// The map handed to the viewer: (request, label) it shows.
    map: Option<(ExplainRequest, String, Arc<MapData>)>,
    next_id: u64,
    /// The models run on the device the window renders with, so the shader
    /// may read maps from the model's buffers (set by the app).
    pub share_maps: bool,
}

/// A map ready for the viewer.
pub struct MapOverlay {
    pub map: Arc<MapData>,
    pub roi: Roi,
    pub style: OverlayStyle,
}

impl ExplainState {
    /// The panel of viewer `view`.
    pub fn for_view(view: usize) -> Self {
        ExplainState { view, ..Self::default() }
    }

    /// Index of the map shown: the chosen label, or the first map.
    fn shown_map(&self, maps: &MapStack) -> usize {
        self.label.as_deref().and_then(|l| maps.index_of(l)).unwrap_or(0)
    }

    /// One line naming what is shown: method and map.
    pub fn caption(&self, wanted: Option<&ExplainRequest>) -> Option<String> {
        let e = self.current(wanted)?;
        let map = e.maps.as_ref().and_then(|m| m.labels.get(self.shown_map(m))).map(|l| format!(", {l}"));
        Some(format!("{}{}", e.method.title(), map.unwrap_or_default()))
    }

    /// The request for what the panel asks to show, if anything.
    pub fn wanted(&self, frame: usize, face: Option<usize>, model: Option<&ModelInfo>) -> Option<ExplainRequest> {
        let method = self.method?;
        let model = model?;
        Some(ExplainRequest {
            view: self.view,
            frame,
            face: face?,
            method,
            options: ExplainOptions { layer: if method == Method::ScoreCam { self.layer.clone() } else { None } },
            model: model.source.clone(),
        })
    }

    /// Ask the worker for `wanted` unless it was already asked.
    pub fn request(&mut self, worker: &Worker, wanted: Option<ExplainRequest>) {
        if let Some(w) = wanted
            && self.sent.as_ref() != Some(&w)
            && worker.send(Request::Explain(w.clone()))
        {
            self.sent = Some(w);
        }
    }

    pub fn on_reply(&mut self, request: ExplainRequest, result: Result<Arc<Explanation>, String>, ms: f64) {
        match result {
            Ok(e) => {
                self.result = Some((request, e, ms));
                self.error = None;
            }
            Err(e) => self.error = Some((request, e)),
        }
    }

    /// Forget what was sent (the worker restarts from scratch, e.g. after a model change).
    pub fn reset(&mut self) {
        self.sent = None;
    }

    /// Where the map on screen for `wanted` is drawn from (MapData::source).
    pub fn map_source(&self, wanted: Option<&ExplainRequest>) -> Option<&'static str> {
        self.map.as_ref().filter(|(r, _, _)| Some(r) == wanted).map(|(_, _, m)| m.source())
    }

    /// The latest result for `wanted`.
    pub fn current(&self, wanted: Option<&ExplainRequest>) -> Option<&Arc<Explanation>> {
        let w = wanted?;
        self.result.as_ref().filter(|(r, _, _)| r == w).map(|(_, e, _)| e)
    }

    /// The map to draw over the frame for `wanted`.
    pub fn overlay(&mut self, wanted: Option<&ExplainRequest>) -> Option<MapOverlay> {
        let e = self.current(wanted)?.clone();
        let maps = e.maps.as_ref()?;
        let i = self.shown_map(maps);
        let label = maps.labels.get(i)?.clone();
        let w = wanted?;
        // The worker resolved the buffer already (see worker.rs); an error
        // there (or maps made on the CPU) means an upload.
        let n = maps.width * maps.height;
        let shared = maps
            .device
            .as_ref()
            .filter(|_| self.share_maps)
            .and_then(|d| d.resolved())
            .and_then(Result::ok)
            .and_then(|b| Some((b, u32::try_from(i * n).ok()?)));
        let fresh = !matches!(&self.map, Some((r, l, m)) if r == w && *l == label && m.shared.is_some() == shared.is_some());
        if fresh {
            self.next_id += 1;
            let data = MapData { id: self.next_id, width: maps.width as u32, height: maps.height as u32, values: maps.map(i).to_vec(), shared };
            self.map = Some((w.clone(), label, Arc::new(data)));
        }
        let (_, _, map) = self.map.as_ref()?;
        Some(MapOverlay { map: map.clone(), roi: e.roi, style: self.style })
    }

    /// The Explain section. `face` is the selected face; `timings` adds the
    /// computation time (View > Frame timings).
    pub fn panel_ui(
        &mut self,
        ui: &mut egui::Ui,
        title: &str,
        model: Option<&ModelInfo>,
        face: Option<&Face>,
        wanted: Option<&ExplainRequest>,
        timings: bool,
    ) {
        ui.separator();
        ui.strong(title);
        let Some(model) = model else {
            ui.label("Choose an AU model to explain it.");
            return;
        };
        let title = self.method.map_or("Off", |m| m.title());
        egui::ComboBox::from_label("Method").selected_text(title).show_ui(ui, |ui| {
            ui.selectable_value(&mut self.method, None, "Off");
            for (m, why) in &model.methods {
                let why = why.clone().or_else(|| face.and_then(|f| face_too_small(*m, f.box_xywh()[2])));
                let r = ui.add_enabled(why.is_none(), egui::Button::selectable(self.method == Some(*m), m.title()));
                if let Some(why) = why {
                    r.on_disabled_hover_text(why);
                } else if r.clicked() {
                    self.method = Some(*m);
                    self.matrix = 0;
                }
            }
        });
        let Some(method) = self.method else { return };
        if method == Method::ScoreCam && !model.cam_layers.is_empty() {
            let shown = self.layer.clone().unwrap_or_else(|| "default (finest of at least 7x7)".into());
            egui::ComboBox::from_label("Layer").selected_text(shown).show_ui(ui, |ui| {
                ui.selectable_value(&mut self.layer, None, "default (finest of at least 7x7)");
                for l in &model.cam_layers {
                    ui.selectable_value(&mut self.layer, Some(l.clone()), l);
                }
            });
        }
        if let Some((r, e)) = &self.error
            && Some(r) == wanted
        {
            ui.colored_label(Color32::from_rgb(255, 110, 110), e);
            return;
        }
        let Some(e) = self.current(wanted).cloned() else {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label(format!("Computing {}…", method.title()));
            });
            return;
        };
        let ms = self.result.as_ref().map_or(0.0, |r| r.2);
        if let Some(maps) = &e.maps {
            let current = maps.labels[self.shown_map(maps)].clone();
            egui::ComboBox::from_label("Map").selected_text(&current).show_ui(ui, |ui| {
                for l in &maps.labels {
                    if ui.selectable_label(*l == current, l).clicked() {
                        self.label = Some(l.clone());
                    }
                }
            });
            ui.add(egui::Slider::new(&mut self.style.opacity, 0.0..=1.0).text("Opacity"));
            colormap_ui(ui, &mut self.style.colormap);
            colour_bar(ui, self.style.colormap, self.style.range);
        }
        if !e.matrices.is_empty() {
            ui.label(format!("{} matrices: see the panel on the left.", e.matrices.len()));
            colormap_ui(ui, &mut self.style.colormap);
        }
        let drawn = self.map_source(wanted).map(|s| format!("; {s}"));
        ui.small(if timings { format!("{} ({ms:.0} ms{})", e.note, drawn.unwrap_or_default()) } else { e.note.clone() });
        if ui
            .button("Export…")
            .on_hover_text("Write every map of this explanation as an overlay PNG and a float array (.npy), and its matrices, to a folder")
            .clicked()
        {
            self.export_clicked = true;
        }
    }
}

impl ExplainState {
    /// True when the explanation on screen has matrices to show.
    pub fn has_matrices(&self, wanted: Option<&ExplainRequest>) -> bool {
        self.current(wanted).is_some_and(|e| !e.matrices.is_empty())
    }

    /// The side panel with the AU x AU matrices of the explanation on screen.
    pub fn matrix_panel_ui(&mut self, ui: &mut egui::Ui, wanted: Option<&ExplainRequest>) {
        let Some(e) = self.current(wanted).cloned() else { return };
        if e.matrices.is_empty() {
            return;
        }
        ui.strong(e.method.title());
        self.matrix = self.matrix.min(e.matrices.len() - 1);
        egui::ComboBox::from_label("Matrix")
            .selected_text(&e.matrices[self.matrix].name)
            .width(ui.available_width() - 60.0)
            .show_ui(ui, |ui| {
                for (i, m) in e.matrices.iter().enumerate() {
                    ui.selectable_value(&mut self.matrix, i, &m.name);
                }
            });
        matrix_ui(ui, &e.matrices[self.matrix], self.style.colormap);
        ui.small("Rows: queries (or the first AU); columns: keys.");
    }
}

fn colormap_ui(ui: &mut egui::Ui, c: &mut Colormap) {
    egui::ComboBox::from_label("Colour map").selected_text(c.name()).show_ui(ui, |ui| {
        for m in Colormap::ALL {
            ui.selectable_value(c, m, m.name());
        }
    });
}

fn color32(c: [u8; 3]) -> Color32 {
    Color32::from_rgb(c[0], c[1], c[2])
}

/// A horizontal colour bar with its range at the ends.
pub fn colour_bar(ui: &mut egui::Ui, colormap: Colormap, range: [f32; 2]) {
    let width = ui.available_width().min(240.0);
    let (rect, _) = ui.allocate_exact_size(Vec2::new(width, 12.0), Sense::hover());
    let steps = 64;
    for i in 0..steps {
        let x0 = rect.left() + rect.width() * i as f32 / steps as f32;
        let x1 = rect.left() + rect.width() * (i + 1) as f32 / steps as f32;
        let c = colormap.color((i as f32 + 0.5) / steps as f32);
        ui.painter().rect_filled(Rect::from_min_max(Pos2::new(x0, rect.top()), Pos2::new(x1 + 0.5, rect.bottom())), 0.0, color32(c));
    }
    ui.horizontal(|ui| {
        ui.small(format!("{:.3}", range[0]));
        ui.add_space((width - 90.0).max(0.0));
        ui.small(format!("{:.3}", range[1]));
    });
}

/// An AU x AU matrix: labelled rows and columns, the value under the
/// pointer, and a colour bar.
pub fn matrix_ui(ui: &mut egui::Ui, m: &Matrix, colormap: Colormap) {
    let n = m.labels.len().max(1);
    let label_w = 54.0;
    let side = (ui.available_width() - label_w - 4.0).clamp(120.0, 420.0);
    let cell = side / n as f32;
    let (rect, response) = ui.allocate_exact_size(Vec2::new(label_w + side, label_w + side), Sense::hover());
    let painter = ui.painter_at(rect);
    let origin = rect.min + Vec2::new(label_w, label_w);
    let style = OverlayStyle { colormap, opacity: 1.0, range: m.range };
    let font = egui::FontId::proportional((cell * 0.55).clamp(7.0, 12.0));
    let text_color = ui.visuals().text_color();
    for (i, l) in m.labels.iter().enumerate() {
        let short = l.trim_start_matches("AU");
        painter.text(origin + Vec2::new(-4.0, (i as f32 + 0.5) * cell), egui::Align2::RIGHT_CENTER, l, font.clone(), text_color);
        painter.text(origin + Vec2::new((i as f32 + 0.5) * cell, -4.0), egui::Align2::CENTER_BOTTOM, short, font.clone(), text_color);
    }
    for r in 0..n {
        for c in 0..n {
            let v = m.values.get(r * n + c).copied().unwrap_or(0.0);
            let min = origin + Vec2::new(c as f32 * cell, r as f32 * cell);
            painter.rect_filled(Rect::from_min_size(min, Vec2::splat(cell + 0.5)), 0.0, color32(colormap.lut_color(style.normalise(v))));
        }
    }
    if let Some(p) = response.hover_pos() {
        let d = p - origin;
        if d.x >= 0.0 && d.y >= 0.0 {
            let (c, r) = ((d.x / cell) as usize, (d.y / cell) as usize);
            if r < n && c < n {
                let min = origin + Vec2::new(c as f32 * cell, r as f32 * cell);
                painter.rect_stroke(Rect::from_min_size(min, Vec2::splat(cell)), 0.0, Stroke::new(1.5, Color32::WHITE), egui::StrokeKind::Inside);
                let v = m.values.get(r * n + c).copied().unwrap_or(0.0);
                response.on_hover_text(format!("{} → {}: {v:.4}", m.labels[r], m.labels[c]));
            }
        }
    }
    colour_bar(ui, colormap, m.range);
}
