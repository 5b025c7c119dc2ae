//! The review panel's "Fine-tune" section: options, the job's progress and
//! live loss plot, cancel, before/after F1, and the model versions with
//! adopt and roll back. The job itself is the core's `FinetuneJob` on its
//! own thread; this only reads its events.

use auscope_core::training::finetune::{FinetuneEvent, FinetuneJob, FinetuneOutcome, Version};
use auscope_core::training::trainer::TrainEvent;
use eframe::egui::{self, Color32, Sense, Stroke, Vec2};

/// What the section asks the review panel to do.
#[derive(Debug, Clone, PartialEq)]
pub enum FinetuneAction {
    Start,
    /// Adopt a version (None: the base weights).
    Adopt(Option<String>),
    RollBack,
}

pub struct FinetunePanel {
    pub epochs: usize,
    /// Add teacher pseudo-labels of every `teacher_every`th uncorrected frame.
    pub teacher: bool,
    pub teacher_every: usize,
    job: Option<FinetuneJob>,
    status: String,
    preparing: (usize, usize),
    steps_per_epoch: usize,
    epoch: usize,
    losses: Vec<f32>,
    /// The last run's outcome.
    pub result: Option<Result<Version, String>>,
    pub versions: Vec<Version>,
    pub adopted: Option<String>,
}

impl Default for FinetunePanel {
    fn default() -> Self {
        FinetunePanel {
            epochs: 5,
            teacher: false,
            teacher_every: 10,
            job: None,
            status: String::new(),
            preparing: (0, 0),
            steps_per_epoch: 0,
            epoch: 0,
            losses: Vec::new(),
            result: None,
            versions: Vec::new(),
            adopted: None,
        }
    }
}

impl FinetunePanel {
    pub fn running(&self) -> bool {
        self.job.is_some()
    }

    /// Training steps reported by the running (or last) job.
    pub fn steps(&self) -> usize {
        self.losses.len()
    }

    pub fn started(&mut self, job: FinetuneJob, epochs: usize) {
        self.job = Some(job);
        self.status = "starting".into();
        self.preparing = (0, 0);
        self.steps_per_epoch = 0;
        self.epoch = 0;
        self.epochs = epochs;
        self.losses.clear();
        self.result = None;
    }

    pub fn cancel(&mut self) {
        if let Some(job) = &self.job {
            job.cancel();
            self.status = "cancelling…".into();
        }
    }

    /// Read the job's events; true when it just finished (the caller
    /// refreshes the versions).
    pub fn poll(&mut self) -> bool {
        let Some(job) = &self.job else { return false };
        let mut finished = None;
        while let Ok(ev) = job.events.try_recv() {
            match ev {
                FinetuneEvent::Status(s) => self.status = s,
                FinetuneEvent::Preparing { done, total } => self.preparing = (done, total),
                FinetuneEvent::Train(TrainEvent::Started { steps_per_epoch, epochs, .. }) => {
                    self.steps_per_epoch = steps_per_epoch;
                    self.epochs = epochs;
                }
                FinetuneEvent::Train(TrainEvent::Step { epoch, loss, .. }) => {
                    self.epoch = epoch;
                    self.losses.push(loss);
                }
                FinetuneEvent::Train(TrainEvent::Epoch { epoch, train_loss, .. }) => {
                    self.status = format!("epoch {} of {} done, mean loss {train_loss:.4}", epoch + 1, self.epochs);
                }
                FinetuneEvent::Train(_) => {}
                FinetuneEvent::Finished(o) => {
                    finished = Some(o);
                    break;
                }
            }
        }
        let Some(outcome) = finished else { return false };
        if let Some(job) = self.job.take() {
            job.join();
        }
        self.result = match outcome {
            FinetuneOutcome::Done(v) => Some(Ok(*v)),
            FinetuneOutcome::Cancelled => Some(Err("cancelled; no version was saved".into())),
            FinetuneOutcome::Failed(e) => Some(Err(e)),
        };
        true
    }

    /// `why_not`: why a fine-tune cannot start now (None: it can).
    pub fn ui(&mut self, ui: &mut egui::Ui, why_not: Option<&str>) -> Option<FinetuneAction> {
        let mut action = None;
        ui.separator();
        ui.strong("Fine-tune");
        if self.job.is_some() {
            ui.label(&self.status);
            let fraction = if self.steps_per_epoch > 0 {
                (self.losses.len() as f32 / (self.steps_per_epoch * self.epochs.max(1)) as f32).min(1.0)
            } else if self.preparing.1 > 0 {
                self.preparing.0 as f32 / self.preparing.1 as f32
            } else {
                0.0
            };
            let text = if self.steps_per_epoch > 0 {
                format!("epoch {} of {}", self.epoch + 1, self.epochs)
            } else {
                format!("preparing faces {}/{}", self.preparing.0, self.preparing.1)
            };
            ui.add(egui::ProgressBar::new(fraction).text(text));
            loss_plot(ui, &self.losses);
            if ui.button("Cancel fine-tune").clicked() {
                self.cancel();
            }
        } else {
            ui.horizontal(|ui| {
                let label = ui.label("Epochs");
                ui.add(egui::DragValue::new(&mut self.epochs).range(1..=100)).labelled_by(label.id);
            });
            ui.horizontal(|ui| {
                let label = ui
                    .checkbox(&mut self.teacher, "Teacher labels on every")
                    .on_hover_text("Add the blendshape teacher's pseudo-labels of frames you did not correct");
                ui.add_enabled(self.teacher, egui::DragValue::new(&mut self.teacher_every).range(1..=1000)).labelled_by(label.id);
                ui.label("th other frame");
            });
            let button = ui.add_enabled(why_not.is_none(), egui::Button::new("Fine-tune on my corrections"));
            let button = match why_not {
                Some(w) => button.on_disabled_hover_text(w),
                None => button.on_hover_text("Retrain the model on the corrected frames in the background; the last 20% of them are held out"),
            };
            if let Some(w) = why_not {
                ui.weak(w);
            }
            if button.clicked() {
                action = Some(FinetuneAction::Start);
            }
            if !self.losses.is_empty() {
                loss_plot(ui, &self.losses);
            }
        }
        match &self.result {
            Some(Err(e)) => {
                ui.colored_label(Color32::from_rgb(255, 110, 110), format!("Fine-tune: {e}"));
            }
            Some(Ok(v)) => {
                ui.label(format!(
                    "{}: {} faces trained ({} teacher), {} held out. F1 on the held-out corrections:",
                    v.name, v.train_faces, v.teacher_faces, v.held_out_faces
                ));
                egui::Grid::new("finetune-f1").num_columns(3).striped(true).show(ui, |ui| {
                    ui.strong("AU");
                    ui.strong("before");
                    ui.strong("after");
                    ui.end_row();
                    for (b, a) in v.before.per_au.iter().zip(&v.after.per_au) {
                        ui.label(&b.au);
                        ui.label(format!("{:.2}", b.f1));
                        ui.label(format!("{:.2}", a.f1));
                        ui.end_row();
                    }
                    ui.strong("mean");
                    ui.strong(format!("{:.2}", v.before.mean_f1));
                    ui.strong(format!("{:.2}", v.after.mean_f1));
                    ui.end_row();
                });
            }
            None => {}
        }
        if !self.versions.is_empty() || self.adopted.is_some() {
            ui.label("Versions of this model for this media:");
            let in_use = self.adopted.clone();
            egui::Grid::new("finetune-versions").num_columns(3).show(ui, |ui| {
                ui.label(if in_use.is_none() { "base (in use)" } else { "base" });
                ui.label("shipped or loaded weights");
                if ui.add_enabled(in_use.is_some(), egui::Button::new("Use")).clicked() {
                    action = Some(FinetuneAction::Adopt(None));
                }
                ui.end_row();
                for v in &self.versions {
                    let current = in_use.as_deref() == Some(v.name.as_str());
                    ui.label(if current { format!("{} (in use)", v.name) } else { v.name.clone() });
                    ui.label(format!("F1 {:.2} -> {:.2}, {} faces", v.before.mean_f1, v.after.mean_f1, v.train_faces + v.teacher_faces));
                    if ui.add_enabled(!current, egui::Button::new("Adopt")).on_hover_text(v.dir.display().to_string()).clicked() {
                        action = Some(FinetuneAction::Adopt(Some(v.name.clone())));
                    }
                    ui.end_row();
                }
            });
            if ui.button("Roll back").on_hover_text("Return to the version used before the last adoption").clicked() {
                action = Some(FinetuneAction::RollBack);
            }
        }
        action
    }
}

/// The training loss per step, as a line.
fn loss_plot(ui: &mut egui::Ui, losses: &[f32]) {
    let (rect, _) = ui.allocate_exact_size(Vec2::new(ui.available_width().min(260.0), 70.0), Sense::hover());
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, 2.0, Color32::from_gray(30));
    if losses.len() < 2 {
        return;
    }
    let (lo, hi) = losses.iter().fold((f32::MAX, f32::MIN), |(lo, hi), &l| (lo.min(l), hi.max(l)));
    let span = (hi - lo).max(1e-6);
    let points: Vec<egui::Pos2> = losses
        .iter()
        .enumerate()
        .map(|(i, &l)| {
            let x = rect.left() + rect.width() * i as f32 / (losses.len() - 1) as f32;
            let y = rect.bottom() - 4.0 - (rect.height() - 8.0) * (l - lo) / span;
            egui::pos2(x, y)
        })
        .collect();
    painter.add(egui::Shape::line(points, Stroke::new(1.5, Color32::from_rgb(120, 200, 255))));
    painter.text(rect.left_top() + Vec2::new(4.0, 2.0), egui::Align2::LEFT_TOP, format!("loss {hi:.3}"), egui::FontId::proportional(10.0), Color32::GRAY);
    painter.text(rect.left_bottom() + Vec2::new(4.0, -2.0), egui::Align2::LEFT_BOTTOM, format!("{lo:.3}"), egui::FontId::proportional(10.0), Color32::GRAY);
}
