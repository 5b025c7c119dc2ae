//! The face panel's "AU correlation over the video" section and its
//! matrices: options, progress, cancel, result (the job runs on its own
//! thread, `correlation_job`).

use auscope_core::explain::render::Colormap;
use auscope_core::explain::video::VideoCorrelation;
use eframe::egui::{self, Color32};

use crate::correlation_job::{CorrelationJob, JobEvent, LabelSource};
use crate::explain_ui::matrix_ui;

pub struct CorrelationPanel {
    /// Every Nth frame.
    pub every: usize,
    /// A label file or a coder's labels (None: predictions only).
    pub labels: Option<LabelSource>,
    pub job: Option<CorrelationJob>,
    progress: (usize, usize),
    pub result: Option<Result<(VideoCorrelation, Vec<String>), String>>,
    matrix: usize,
    /// Compute was pressed; the app starts the job.
    pub start_clicked: bool,
}

impl Default for CorrelationPanel {
    fn default() -> Self {
        CorrelationPanel { every: 5, labels: None, job: None, progress: (0, 0), result: None, matrix: 0, start_clicked: false }
    }
}

impl CorrelationPanel {
    pub fn started(&mut self, job: CorrelationJob) {
        self.job = Some(job);
        self.progress = (0, 0);
        self.result = None;
        self.matrix = 0;
    }

    /// Read the job's events; true while it runs.
    pub fn poll(&mut self) -> bool {
        let Some(job) = &self.job else { return false };
        while let Ok(event) = job.events.try_recv() {
            match event {
                JobEvent::Progress { done, total } => self.progress = (done, total),
                JobEvent::Done(r) => {
                    self.result = Some(r);
                    self.job = None;
                    return false;
                }
            }
        }
        true
    }

    /// Forget the result (another video or model).
    pub fn clear(&mut self) {
        self.job = None;
        self.result = None;
    }

    /// `video`: a multi-frame source is open (else nothing is shown);
    /// `model`: an AU model is chosen; `coder`: the review's coder.
    pub fn panel_ui(&mut self, ui: &mut egui::Ui, video: bool, model: bool, coder: &str) {
        if !video {
            return;
        }
        ui.separator();
        ui.strong("AU correlation over the video");
        ui.horizontal(|ui| {
            ui.label("every");
            ui.add(egui::DragValue::new(&mut self.every).range(1..=1000));
            ui.label("frames");
        });
        ui.horizontal(|ui| {
            let name = match &self.labels {
                None => "none (predictions only)".to_string(),
                Some(LabelSource::File(p)) => p.file_name().map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into_owned()),
                Some(LabelSource::Coder(c)) => format!("{c}'s labels in this project"),
            };
            ui.label(format!("Labels: {name}"));
        });
        ui.horizontal(|ui| {
            if ui.small_button("CSV…").on_hover_text("An OpenFace CSV of this video, or auscope's label CSV").clicked()
                && let Some(p) = rfd::FileDialog::new().add_filter("CSV", &["csv"]).pick_file()
            {
                self.labels = Some(LabelSource::File(p));
            }
            if !coder.is_empty()
                && ui
                    .small_button(format!("{coder}'s labels"))
                    .on_hover_text("The labels this coder made in the review (faces with every AU labelled)")
                    .clicked()
            {
                self.labels = Some(LabelSource::Coder(coder.to_string()));
            }
            if self.labels.is_some() && ui.small_button("x").on_hover_text("Predictions only").clicked() {
                self.labels = None;
            }
        });
        if let Some(job) = &self.job {
            let (done, total) = self.progress;
            ui.horizontal(|ui| {
                ui.add(egui::ProgressBar::new(if total > 0 { done as f32 / total as f32 } else { 0.0 }).desired_width(160.0).text(format!("{done}/{total} frames")));
                if ui.button("Cancel").clicked() {
                    job.cancel();
                }
            });
        } else if ui
            .add_enabled(model, egui::Button::new("Compute"))
            .on_disabled_hover_text("Choose an AU model first")
            .clicked()
        {
            self.start_clicked = true;
        }
        match &self.result {
            Some(Ok((c, skipped))) => {
                let d = c.distance.map_or(String::new(), |d| format!("; distance predictions-labels {d:.3}"));
                ui.label(format!("Over {} frames{d}. Matrices: see the panel on the left.", c.frames));
                if !skipped.is_empty() {
                    ui.small(format!("{} sampled frames left out (no face or unreadable).", skipped.len())).on_hover_text(skipped.join("\n"));
                }
            }
            Some(Err(e)) => {
                ui.colored_label(Color32::from_rgb(255, 110, 110), e);
            }
            None => {}
        }
    }

    pub fn has_matrices(&self) -> bool {
        matches!(&self.result, Some(Ok(_)))
    }

    /// The matrices in the left panel.
    pub fn matrix_panel_ui(&mut self, ui: &mut egui::Ui, colormap: Colormap) {
        let Some(Ok((c, _))) = &self.result else { return };
        ui.strong("AU correlation over the video");
        if let Some(d) = c.distance {
            ui.label(format!("Distance (element-wise Euclidean): {d:.3}"));
        }
        self.matrix = self.matrix.min(c.matrices.len().saturating_sub(1));
        ui.push_id("video-correlation", |ui| {
            egui::ComboBox::from_label("Correlation")
                .selected_text(&c.matrices[self.matrix].name)
                .width(ui.available_width() - 90.0)
                .show_ui(ui, |ui| {
                    for (i, m) in c.matrices.iter().enumerate() {
                        ui.selectable_value(&mut self.matrix, i, &m.name);
                    }
                });
            matrix_ui(ui, &c.matrices[self.matrix], colormap);
        });
    }
}
