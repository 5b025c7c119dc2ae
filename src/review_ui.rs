//! The coder's review in the window: the AU table with prediction,
//! confidence and label, the review keys, the AU timeline tracks, the
//! queue of faces to look at, "Analyse video" (the engine's results kept in
//! the project), track identities, label import/export, agreement, and the
//! fine-tune section. Labels live in the media's project file (core
//! `annotations`); this module only draws and forwards.
//!
//! Saving: an edit shows at once and is written in one transaction before
//! the next frame is drawn. When the project cannot take it (locked,
//! read-only, newer format) the edit stays in memory, the panel says why
//! and offers Retry; edits still unsaved when the media changes or the
//! window closes are written to a label file next to the project (or in
//! the temp folder) that `auscope labels import` reads back.

use std::path::{Path, PathBuf};

use auscope_core::annotations::agreement::{AuAgreement, agreement};
use auscope_core::annotations::review::{QueueEntry, Reason, ReviewIndex, next_in_queue};
use auscope_core::annotations::store::{Change, Store, project_path};
use auscope_core::annotations::{Label, Source, intensity_letter, plain};
use auscope_core::models::{ModelKind, PredictorKind};
use auscope_core::training::finetune::{self, FinetuneJob, FinetuneSpec, list_versions};
use burn::tensor::Device;
use eframe::egui::{self, Color32, Key, Sense, Vec2};

use auscope_core::analysis::project::ProjectOutcome;
use auscope_core::CoreError;
use auscope_core::annotations::analysed::AnalysisProgress;
use auscope_core::face::Face;

use crate::analysis_job::{AnalysisEvent, AnalysisJob, AnalysisSpec};
use crate::finetune_ui::{FinetuneAction, FinetunePanel};
use crate::worker::ModelRequest;

/// What the review asks the app to do.
#[derive(Debug, Clone, PartialEq)]
pub enum ReviewAction {
    /// Show this frame and select this face.
    Seek { frame: usize, face: usize },
    /// Run the current model kind on these weights (None: its base weights).
    UseWeights(Option<PathBuf>),
}

/// An edit not yet in the project file.
struct Unsaved {
    what: String,
    changes: Vec<Change>,
}

/// What the window derives from the index: the queue and, per AU, each
/// frame's (probability, coder's occurrence) of the identity followed.
struct Derived {
    queue: Vec<QueueEntry>,
    tracks: Vec<Vec<(Option<f32>, Option<bool>)>>,
}

/// What the loading thread reads.
struct Loaded {
    index: ReviewIndex,
    coders: Vec<String>,
    analysis: Option<AnalysisProgress>,
}

pub struct Review {
    media: Option<PathBuf>,
    frames: usize,
    store: Option<Store>,
    /// Why the project cannot be opened or written (shown; edits wait).
    problem: Option<String>,
    coder: String,
    new_coder: String,
    coders: Vec<String>,
    index: ReviewIndex,
    /// The name the current model's predictions are stored under, and its kind.
    model_who: Option<String>,
    model_kind: Option<PredictorKind>,
    au_on: Vec<bool>,
    selected_au: usize,
    unsaved: Vec<Unsaved>,
    /// Unlabelled AUs within this distance of 0.5 are "unsure".
    band: f32,
    /// The queue and the timeline tracks, recomputed after a change.
    derived: Option<Derived>,
    /// The labels being read in the background.
    loading: Option<std::sync::mpsc::Receiver<Result<Loaded, String>>>,
    /// The stored analysis' progress (None: never analysed).
    analysis: Option<AnalysisProgress>,
    analysing: Option<AnalysisJob>,
    analysis_progress: (usize, usize),
    /// The identity the timeline follows (None: each frame's first face).
    follow: Option<u32>,
    agreement: Option<Result<(String, Vec<AuAgreement>), String>>,
    /// A passing message (what an import or export did).
    pub notice: Option<String>,
    pub finetune: FinetunePanel,
}

impl Default for Review {
    fn default() -> Self {
        let coder = std::env::var("AUSCOPE_CODER").or_else(|_| std::env::var("USER")).unwrap_or_else(|_| "coder".into());
        Review {
            media: None,
            frames: 0,
            store: None,
            problem: None,
            coder,
            new_coder: String::new(),
            coders: Vec::new(),
            index: ReviewIndex::default(),
            model_who: None,
            model_kind: None,
            au_on: Vec::new(),
            selected_au: 0,
            unsaved: Vec::new(),
            band: 0.15,
            derived: None,
            loading: None,
            analysis: None,
            analysing: None,
            analysis_progress: (0, 0),
            follow: None,
            agreement: None,
            notice: None,
            finetune: FinetunePanel::default(),
        }
    }
}

/// The name a model's predictions are stored under: the kind, plus the
/// version or file name when it does not run on its base weights.
pub fn model_who(request: &ModelRequest) -> String {
    request.kind.stored_name(request.weights.as_deref())
}

impl Review {
    pub fn coder(&self) -> &str {
        &self.coder
    }

    /// Review as another coder (their labels are shown and edited).
    pub fn set_coder(&mut self, coder: &str) {
        self.rescue();
        self.coder = coder.to_string();
        self.reload();
    }

    pub fn project(&self) -> Option<&Store> {
        self.store.as_ref()
    }

    pub fn problem(&self) -> Option<&str> {
        self.problem.as_deref()
    }

    pub fn unsaved(&self) -> usize {
        self.unsaved.len()
    }

    pub fn index(&self) -> &ReviewIndex {
        &self.index
    }

    /// Open the project of `media` (created if new).
    pub fn open(&mut self, media: &Path, frames: usize) {
        self.rescue();
        self.media = Some(media.to_path_buf());
        self.frames = frames;
        self.analysing = None;
        self.analysis = None;
        self.agreement = None;
        self.finetune.result = None;
        self.index.predictions.clear();
        self.store = None;
        self.problem = None;
        // Looking creates nothing: a new project is made at the first write.
        if project_path(media).exists() {
            self.ensure_store();
        }
        self.reload();
    }

    /// The project, opened (or created) on demand.
    fn ensure_store(&mut self) -> Option<&mut Store> {
        if self.store.is_none() {
            let media = self.media.as_ref()?;
            match Store::open_for_media(media) {
                Ok(store) => {
                    self.problem = store.read_only().then(|| format!("{} is read-only: labels are shown but edits cannot be saved", store.path().display()));
                    self.store = Some(store);
                }
                Err(e) => {
                    self.problem = Some(format!("{e}. Edits are kept in memory and written to a label file when you leave this media."));
                }
            }
        }
        self.store.as_mut()
    }

    /// The model whose predictions are shown (None: no model).
    pub fn set_model(&mut self, aus: Option<&[String]>, request: Option<&ModelRequest>) {
        let who = request.map(model_who);
        let same = self.model_who == who && aus.is_some_and(|a| a == self.index.aus.as_slice());
        if !same {
            self.index.predictions.clear();
        }
        self.model_who = who;
        self.model_kind = request.map(|r| r.kind);
        self.index.aus = aus.map(<[String]>::to_vec).unwrap_or_default();
        if self.au_on.len() != self.index.aus.len() {
            self.au_on = vec![true; self.index.aus.len()];
        }
        self.selected_au = self.selected_au.min(self.index.aus.len().saturating_sub(1));
        self.reload();
    }

    /// Reread the coder's labels and the stored analysis from the project,
    /// on a named thread with its own connection, so the window never waits
    /// on it (docs/benchmarks.md: well under a second at 100,000 frames).
    /// Edits wait until it is in.
    fn reload(&mut self) {
        let aus = self.index.aus.clone();
        let seen = std::mem::take(&mut self.index.predictions);
        self.index = ReviewIndex { aus: aus.clone(), predictions: seen, ..Default::default() };
        self.derived = None;
        self.loading = None;
        let Some(s) = &self.store else { return };
        if let Some(PredictorKind::Net(kind)) = self.model_kind {
            self.finetune.versions = list_versions(s.path(), kind);
            self.finetune.adopted = finetune::adopted(s, kind).ok().flatten();
        }
        let (path, model, coder) = (s.path().to_path_buf(), self.model_who.clone(), self.coder.clone());
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let spawned = std::thread::Builder::new().name("auscope-labels".into()).spawn(move || {
            let loaded = Store::open(&path).and_then(|store| {
                Ok(Loaded { index: ReviewIndex::load(&store, &aus, model.as_deref(), &coder)?, coders: store.who(Source::Coder)?, analysis: store.analysis()? })
            });
            let _ = tx.send(loaded.map_err(|e| e.to_string()));
        });
        match spawned {
            Ok(_) => self.loading = Some(rx),
            Err(e) => self.problem = Some(format!("could not start loading the labels: {e}")),
        }
    }

    /// True while the labels are being read (edits wait).
    pub fn loading(&self) -> bool {
        self.loading.is_some()
    }

    /// The label key (index in the stored analysis) of each face the
    /// viewer found in `frame`: faces are matched to the stored ones by
    /// box, those the analysis does not have come after them.
    pub fn face_keys(&self, frame: usize, faces: &[Face]) -> Vec<usize> {
        let stored = self.index.faces.range((frame, 0)..(frame + 1, 0)).count();
        let mut extra = stored;
        let mut taken = Vec::with_capacity(faces.len());
        for f in faces {
            let key = self.index.stored_index(frame, f.box_xywh()).filter(|k| !taken.contains(k)).unwrap_or_else(|| {
                extra += 1;
                extra - 1
            });
            taken.push(key);
        }
        taken
    }

    /// The model's probabilities of the faces of a frame on screen, with
    /// their label keys ([`Self::face_keys`]). Stored probabilities win.
    pub fn on_predictions(&mut self, frame: usize, keys: &[usize], probs: &[Vec<f32>]) {
        for (&face, p) in keys.iter().zip(probs) {
            if self.index.faces.contains_key(&(frame, face)) && self.index.predictions.contains_key(&(frame, face)) {
                continue;
            }
            if p.len() == self.index.aus.len() && self.index.predictions.get(&(frame, face)) != Some(p) {
                self.index.predictions.insert((frame, face), p.clone());
                self.derived = None;
            }
        }
    }

    /// The adopted fine-tuned weights of `kind` for this media, if any.
    pub fn adopted_weights(&self, kind: ModelKind) -> Option<PathBuf> {
        finetune::adopted_weights(self.store.as_ref()?, kind).ok().flatten()
    }

    /// Apply an edit now and save it (see the module's "Saving").
    pub fn edit(&mut self, what: &str, changes: Vec<Change>) {
        if changes.is_empty() {
            return;
        }
        if self.loading.is_some() {
            self.notice = Some("The labels of this media are still being read; edit again in a moment".into());
            return;
        }
        self.index.apply(&changes);
        self.derived = None;
        self.agreement = None;
        self.unsaved.push(Unsaved { what: what.to_string(), changes });
        self.save();
    }

    /// Write the edits waiting, in order; stop at the first refusal.
    pub fn save(&mut self) {
        if self.unsaved.is_empty() {
            return;
        }
        if self.ensure_store().is_none() {
            return;
        }
        let Some(store) = &mut self.store else { return };
        while let Some(u) = self.unsaved.first() {
            // What the coder saw: the model's predictions of the faces edited.
            if let Some(who) = &self.model_who {
                let seen = self.index.prediction_rows(u.changes.iter().map(|c| (c.key.frame, c.key.face)));
                if let Err(e) = store.put_predictions(who, &seen) {
                    self.problem = Some(e.to_string());
                    return;
                }
            }
            match store.edit(&self.coder, &u.what, &u.changes) {
                Ok(()) => {
                    self.unsaved.remove(0);
                    if !self.coders.contains(&self.coder) {
                        self.coders.push(self.coder.clone());
                    }
                }
                Err(e) => {
                    self.problem = Some(e.to_string());
                    return;
                }
            }
        }
        if self.store.as_ref().is_some_and(|s| !s.read_only()) {
            self.problem = None;
        }
    }

    /// Undo or redo the coder's last step; returns where it was.
    pub fn replay(&mut self, undo: bool) -> Option<ReviewAction> {
        if !self.unsaved.is_empty() {
            self.problem = Some(format!("{} edit(s) are not saved yet: Retry saving before undo or redo", self.unsaved.len()));
            return None;
        }
        let store = self.store.as_mut()?;
        match store.replay(&self.coder, undo) {
            Ok(Some(changes)) => {
                self.index.apply(&changes);
                self.derived = None;
                self.agreement = None;
                changes.first().map(|c| ReviewAction::Seek { frame: c.key.frame, face: c.key.face })
            }
            Ok(None) => {
                self.notice = Some(format!("nothing to {}", if undo { "undo" } else { "redo" }));
                None
            }
            Err(e) => {
                self.problem = Some(e.to_string());
                None
            }
        }
    }

    /// Edits that cannot be saved go to a label file, so none is lost.
    fn rescue(&mut self) {
        self.save();
        if self.unsaved.is_empty() {
            return;
        }
        let labels: Vec<Label> = self
            .unsaved
            .drain(..)
            .flat_map(|u| u.changes)
            .filter_map(|c| c.value.map(|value| Label { key: c.key, source: Source::Coder, who: self.coder.clone(), value, time_ms: 0 }))
            .collect();
        let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let name = format!(
            "{}.unsaved-{stamp}.json",
            self.media.as_ref().and_then(|m| m.file_name()).map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "labels".into())
        );
        let near = self.media.as_ref().map(|m| m.with_file_name(&name));
        let written = near
            .into_iter()
            .chain([std::env::temp_dir().join(&name)])
            .find(|path| plain::write(&labels, &[], None, path).is_ok());
        self.notice = Some(match written {
            Some(p) => format!("{} unsaved label(s) were written to {}; `auscope labels import` reads them back", labels.len(), p.display()),
            None => format!("{} unsaved label(s) could not be written anywhere", labels.len()),
        });
    }

    /// A face's key (None when there is no model or no face).
    fn face_key(&self, frame: usize, face: Option<usize>) -> Option<(usize, usize)> {
        (!self.index.aus.is_empty()).then_some((frame, face?))
    }

    fn visible(&self) -> Vec<usize> {
        (0..self.index.aus.len()).filter(|&j| self.au_on.get(j).copied().unwrap_or(true)).collect()
    }

    fn derived(&mut self) -> &Derived {
        let (index, band, au_on, frames, follow) = (&self.index, self.band, &self.au_on, self.frames, self.follow);
        self.derived.get_or_insert_with(|| Derived {
            queue: index.queue(band, Some(au_on)),
            tracks: index.tracks(frames, follow),
        })
    }

    /// The identity (person) of face `face` of `frame` in the stored analysis.
    pub fn identity(&self, frame: usize, face: usize) -> Option<u32> {
        self.index.identity((frame, face))
    }

    /// Change the stored identities through the track of `face` of
    /// `frame` (`change` says what it did), then show the project's.
    fn change_identity(&mut self, frame: usize, face: usize, change: impl FnOnce(&mut Store, u32) -> Result<String, CoreError>) {
        let Some(track) = self.index.faces.get(&(frame, face)).map(|f| f.track) else { return };
        let Some(store) = self.ensure_store() else { return };
        match change(store, track).and_then(|said| Ok((said, store.identities()?))) {
            Ok((said, ids)) => {
                self.index.identities = ids;
                self.derived = None;
                self.notice = Some(said);
            }
            Err(e) => self.problem = Some(e.to_string()),
        }
    }

    /// Merge the identity of `face` of `frame` with identity `other`.
    fn merge(&mut self, frame: usize, face: usize, other: u32) {
        self.change_identity(frame, face, |store, track| {
            let keep = store.merge_tracks(track, other)?;
            Ok(format!("person {other} and this face's person are now one: person {keep}"))
        });
    }

    /// Undo a merge for the track of `face` of `frame`.
    fn separate(&mut self, frame: usize, face: usize) {
        self.change_identity(frame, face, |store, track| {
            store.separate_track(track)?;
            Ok(format!("track {track} is its own person again"))
        });
    }

    fn queue(&mut self) -> &[QueueEntry] {
        &self.derived().queue
    }

    /// The next face of the queue after the one shown.
    pub fn next_queued(&mut self, frame: usize, face: usize) -> Option<ReviewAction> {
        let q = self.queue();
        let next = next_in_queue(q, (frame, face)).map(|e| ReviewAction::Seek { frame: e.frame, face: e.face });
        if next.is_none() {
            self.notice = Some("nothing left to review: no disagreement and no unsure prediction among the predicted frames".into());
        }
        next
    }

    /// The review keys; the app calls this only when no text field has focus.
    pub fn keys(&mut self, ctx: &egui::Context, frame: usize, face: Option<usize>) -> Option<ReviewAction> {
        let key = self.face_key(frame, face);
        let visible = self.visible();
        let (undo, redo) = ctx.input_mut(|i| {
            let redo = i.consume_key(egui::Modifiers::COMMAND | egui::Modifiers::SHIFT, Key::Z) || i.consume_key(egui::Modifiers::COMMAND, Key::Y);
            (i.consume_key(egui::Modifiers::COMMAND, Key::Z), redo)
        });
        if undo || redo {
            return self.replay(undo);
        }
        let pressed = |k: Key| ctx.input(|i| i.key_pressed(k) && !i.modifiers.command);
        if pressed(Key::N) {
            return self.next_queued(frame, face.unwrap_or(0));
        }
        let key = key?;
        if visible.is_empty() {
            return None;
        }
        let row = visible.iter().position(|&j| j == self.selected_au).unwrap_or(0);
        if pressed(Key::ArrowDown) {
            self.selected_au = visible[(row + 1).min(visible.len() - 1)];
        }
        if pressed(Key::ArrowUp) {
            self.selected_au = visible[row.saturating_sub(1)];
        }
        const DIGITS: [Key; 9] = [Key::Num1, Key::Num2, Key::Num3, Key::Num4, Key::Num5, Key::Num6, Key::Num7, Key::Num8, Key::Num9];
        for (n, k) in DIGITS.iter().enumerate() {
            if pressed(*k)
                && let Some(&j) = visible.get(n)
            {
                self.selected_au = j;
                let c = self.index.toggle(key, j);
                self.edit(&format!("toggle {}", self.index.aus[j]), vec![c]);
            }
        }
        let au = self.selected_au;
        if pressed(Key::Space) {
            let c = self.index.toggle(key, au);
            self.edit(&format!("toggle {}", self.index.aus[au]), vec![c]);
        }
        for (i, k) in [Key::A, Key::B, Key::C, Key::D, Key::E].into_iter().enumerate() {
            if pressed(k) {
                let c = self.index.set_intensity(key, au, i as u8 + 1);
                self.edit(&format!("{} intensity {}", self.index.aus[au], (b'A' + i as u8) as char), vec![c]);
            }
        }
        if pressed(Key::Delete) || pressed(Key::Backspace) {
            let c = self.index.clear(key, au);
            self.edit(&format!("clear {}", self.index.aus[au]), vec![c]);
        }
        if pressed(Key::Enter) {
            let cs = self.index.accept(key);
            self.edit("accept predictions", cs);
        }
        None
    }

    /// The AU table of one face: prediction, confidence, label.
    pub fn au_table_ui(&mut self, ui: &mut egui::Ui, frame: usize, face: usize) {
        if self.loading.is_some() {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label("Reading the labels of this media…");
            });
        }
        let key = (frame, face);
        let visible = self.visible();
        let mut toggled = None;
        egui::Grid::new("au-review").num_columns(4).striped(true).show(ui, |ui| {
            ui.weak("key");
            ui.weak("AU");
            ui.weak("model");
            ui.weak(format!("label ({})", self.coder));
            ui.end_row();
            for (n, &j) in visible.iter().enumerate() {
                let s = self.index.au_state(key, j);
                ui.weak(if n < 9 { format!("{}", n + 1) } else { String::new() });
                let name = &self.index.aus[j];
                if ui.selectable_label(self.selected_au == j, name).on_hover_text("Select (Up/Down); A-E set its intensity, Delete clears it").clicked() {
                    self.selected_au = j;
                }
                match s.p {
                    Some(p) => ui.add(egui::ProgressBar::new(p).desired_width(110.0).text(format!("{p:.2}"))),
                    None => ui.weak("-"),
                };
                let (text, colour) = match (s.label, s.present()) {
                    (Some(l), _) if l.occurrence => (
                        format!("present{}", l.intensity.and_then(intensity_letter).map(|c| format!(" {c}")).unwrap_or_default()),
                        Color32::from_rgb(110, 220, 110),
                    ),
                    (Some(_), _) => ("absent".to_string(), Color32::from_rgb(255, 120, 120)),
                    (None, Some(true)) => ("(present)".to_string(), Color32::GRAY),
                    (None, Some(false)) => ("(absent)".to_string(), Color32::GRAY),
                    (None, None) => ("-".to_string(), Color32::GRAY),
                };
                let mut text = egui::RichText::new(text).color(colour);
                if s.disagrees() {
                    text = text.strong();
                }
                if ui
                    .add(egui::Button::new(text).small())
                    .on_hover_text("Toggle (click, Space, or the row's number key). Grey: not labelled, the model's decision")
                    .clicked()
                {
                    toggled = Some(j);
                }
                ui.end_row();
            }
        });
        if let Some(j) = toggled {
            self.selected_au = j;
            let c = self.index.toggle(key, j);
            self.edit(&format!("toggle {}", self.index.aus[j]), vec![c]);
        }
        ui.horizontal(|ui| {
            if ui.button("Accept all (Enter)").on_hover_text("Label every AU you have not labelled as the model decided").clicked() {
                let cs = self.index.accept(key);
                self.edit("accept predictions", cs);
            }
            if ui.button("Undo").on_hover_text("Ctrl+Z").clicked() {
                self.replay(true);
            }
            if ui.button("Redo").on_hover_text("Ctrl+Y").clicked() {
                self.replay(false);
            }
        });
    }

    /// The review section: project, coder, filters, queue, predictions of
    /// every frame, import/export, agreement, fine-tune.
    pub fn panel_ui(&mut self, ui: &mut egui::Ui, frame: usize, face: Option<usize>, model: Option<&ModelRequest>, device: &Device) -> Option<ReviewAction> {
        let mut action = None;
        ui.separator();
        ui.strong("Review");
        if let Some(p) = self.problem.clone() {
            ui.colored_label(Color32::from_rgb(255, 140, 90), p);
        }
        if !self.unsaved.is_empty() {
            ui.horizontal(|ui| {
                ui.colored_label(Color32::from_rgb(255, 140, 90), format!("{} edit(s) not saved yet (kept in memory)", self.unsaved.len()));
                if ui.button("Retry saving").clicked() {
                    self.save();
                }
            });
        }
        if let Some(n) = self.notice.clone() {
            ui.horizontal(|ui| {
                ui.label(n);
                if ui.small_button("OK").clicked() {
                    self.notice = None;
                }
            });
        }
        if let Some(s) = &self.store {
            ui.weak(format!("Project: {}", s.path().display()));
        }
        let mut coder = self.coder.clone();
        ui.horizontal(|ui| {
            egui::ComboBox::from_label("Coder").selected_text(&coder).show_ui(ui, |ui| {
                let mut all = self.coders.clone();
                if !all.contains(&coder) {
                    all.push(coder.clone());
                }
                for c in all {
                    let label = c.clone();
                    ui.selectable_value(&mut coder, c, label);
                }
            });
            ui.add(egui::TextEdit::singleline(&mut self.new_coder).hint_text("new coder").desired_width(80.0));
            if ui.add_enabled(!self.new_coder.trim().is_empty(), egui::Button::new("Add")).clicked() {
                coder = self.new_coder.trim().to_string();
                self.new_coder.clear();
            }
        });
        if coder != self.coder {
            self.set_coder(&coder);
        }
        if !self.index.aus.is_empty() {
            egui::CollapsingHeader::new("Show AUs").id_salt("au-filter").show(ui, |ui| {
                ui.horizontal_wrapped(|ui| {
                    let mut changed = false;
                    for (j, au) in self.index.aus.iter().enumerate() {
                        if let Some(on) = self.au_on.get_mut(j) {
                            changed |= ui.checkbox(on, au).changed();
                        }
                    }
                    if changed {
                        self.derived = None;
                    }
                });
            });
            let count = self.queue().len();
            let entry = self.queue().iter().find(|e| (e.frame, Some(e.face)) == (frame, face)).cloned();
            ui.horizontal(|ui| {
                if ui.add_enabled(count > 0, egui::Button::new(format!("Next to review (N)  [{count} left]"))).on_hover_text(
                    "Faces where your label disagrees with the model first, then the ones the model is least sure of (p within 0.15 of 0.5)",
                ).clicked() {
                    action = self.next_queued(frame, face.unwrap_or(0));
                }
            });
            if let Some(e) = entry {
                ui.weak(match e.reason {
                    Reason::Disagrees(aus) => format!("Here your label disagrees with the model on {}", aus.join(", ")),
                    Reason::Unsure { au, p } => format!("Here the model is unsure of {au} (p = {p:.2})"),
                });
            }
        }
        if let Some(m) = model
            && self.frames > 1
        {
            self.analysis_ui(ui, m, device);
        }
        if let Some(f) = face {
            self.identity_ui(ui, frame, f);
        }
        ui.horizontal(|ui| {
            if ui.button("Import labels…").on_hover_text("An OpenFace CSV, or auscope's label CSV/JSON").clicked()
                && let Some(path) = rfd::FileDialog::new().add_filter("Labels", &["csv", "json"]).pick_file()
            {
                self.import(&path);
            }
            if ui.button("Export labels…").on_hover_text("Your labels as .csv or .json (auscope's plain format)").clicked()
                && let Some(path) = rfd::FileDialog::new().add_filter("CSV", &["csv"]).add_filter("JSON", &["json"]).set_file_name("labels.csv").save_file()
            {
                self.export(&path);
            }
        });
        if self.store.is_some() && self.model_who.is_some() && ui.button("Agreement with the model").clicked() {
            self.agreement = Some(self.compute_agreement());
        }
        match &self.agreement {
            Some(Ok((title, rows))) => {
                ui.label(title);
                egui::Grid::new("agreement").num_columns(4).striped(true).show(ui, |ui| {
                    for h in ["AU", "n", "F1", "kappa"] {
                        ui.strong(h);
                    }
                    ui.end_row();
                    let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}"));
                    for r in rows {
                        ui.label(&r.au);
                        ui.label(r.n.to_string());
                        ui.label(f(r.f1));
                        ui.label(f(r.kappa));
                        ui.end_row();
                    }
                });
            }
            Some(Err(e)) => {
                ui.colored_label(Color32::from_rgb(255, 140, 90), e);
            }
            None => {}
        }
        let why_not = self.finetune_blocker(model);
        if let Some(a) = self.finetune.ui(ui, why_not.as_deref()) {
            action = action.or(self.finetune_action(a, model, device));
        }
        action
    }

    /// "Analyse video": start, follow, stop or continue the stored analysis.
    fn analysis_ui(&mut self, ui: &mut egui::Ui, model: &ModelRequest, device: &Device) {
        let who = model_who(model);
        if self.analysing.is_some() {
            let mut stop = false;
            ui.horizontal(|ui| {
                let (d, t) = self.analysis_progress;
                ui.add(egui::ProgressBar::new(if t > 0 { d as f32 / t as f32 } else { 0.0 }).desired_width(160.0).text(format!("analysing {d}/{t}")));
                stop = ui.button("Stop").on_hover_text("Stop after the frames in flight; Continue picks up from there").clicked();
            });
            if stop {
                // Dropping the job stops it at its next commit.
                self.analysing = None;
                self.reload();
            }
            return;
        }
        let state = self.analysis.as_ref().filter(|a| a.models == [who.clone()]);
        let (text, hover) = match state {
            Some(a) if a.finished => {
                let mut done = format!("Analysed with {who}: {} frames, kept in the project", a.next);
                if let Some(at) = a.broke_off_at {
                    done += &format!(" (the video breaks off at frame {at})");
                }
                ui.weak(done);
                return;
            }
            Some(a) => (format!("Continue analysis (frame {} of {})", a.next, a.total), "Go on from where the analysis stopped"),
            None => (
                "Analyse video".to_string(),
                "Track every face through the video and run the model on every frame in the background. The results are kept in the project, so the video opens with its timeline next time",
            ),
        };
        if ui.button(text).on_hover_text(hover).clicked() {
            self.start_analysis(model, device);
        }
    }

    /// The person (track identity) of the selected face, and merging it
    /// with another person the tracker kept apart.
    fn identity_ui(&mut self, ui: &mut egui::Ui, frame: usize, face: usize) {
        let Some(track) = self.index.faces.get(&(frame, face)).map(|f| f.track) else { return };
        let id = self.index.identity_of(track);
        let people = self.index.people();
        let mut merge = None;
        let mut separate = false;
        ui.horizontal(|ui| {
            ui.label(if id == track { format!("Person {id}") } else { format!("Person {id} (track {track}, merged)") });
            if id != track && ui.button("Separate").on_hover_text("This track is its own person again").clicked() {
                separate = true;
            }
        });
        let others: Vec<&(u32, Vec<u32>, usize)> = people.iter().filter(|p| p.0 != id).collect();
        if !others.is_empty() {
            egui::CollapsingHeader::new("Same person as…")
                .id_salt("merge-person")
                .show(ui, |ui| {
                    ui.weak("The tracker lost this face and found it again as a new track? Merge it into the person it is:");
                    ui.horizontal_wrapped(|ui| {
                        for (other, _, frames) in others {
                            if ui.button(format!("person {other} ({frames} frames)")).clicked() {
                                merge = Some(*other);
                            }
                        }
                    });
                });
        }
        if let Some(other) = merge {
            self.merge(frame, face, other);
        }
        if separate {
            self.separate(frame, face);
        }
    }

    /// Why fine-tuning cannot start (None: it can).
    fn finetune_blocker(&self, model: Option<&ModelRequest>) -> Option<String> {
        let Some(m) = model else { return Some("Choose an AU model first (Model menu).".into()) };
        if !matches!(m.kind, PredictorKind::Net(_)) {
            return Some("The blendshape baseline has no trainable weights; choose one of the four networks.".into());
        }
        let Some(store) = &self.store else { return Some("No project file: see the message above.".into()) };
        if store.read_only() {
            return Some("The project is read-only.".into());
        }
        let corrected = self.index.coded.len();
        (corrected < 2).then(|| format!("Correct at least 2 faces first ({corrected} so far): one to train on, one to test on."))
    }

    fn finetune_action(&mut self, a: FinetuneAction, model: Option<&ModelRequest>, device: &Device) -> Option<ReviewAction> {
        let (Some(store), Some(m)) = (&mut self.store, model) else { return None };
        let PredictorKind::Net(kind) = m.kind else { return None };
        let result = match a {
            FinetuneAction::Start => {
                let Some(media) = self.media.clone() else { return None };
                let mut spec = FinetuneSpec::new(store.path().to_path_buf(), media, kind, m.weights.clone());
                spec.epochs = self.finetune.epochs;
                spec.teacher_every = self.finetune.teacher.then_some(self.finetune.teacher_every);
                match FinetuneJob::spawn(spec, device.clone()) {
                    Ok(job) => self.finetune.started(job, self.finetune.epochs),
                    Err(e) => self.finetune.result = Some(Err(format!("could not start the job: {e}"))),
                }
                return None;
            }
            FinetuneAction::Adopt(v) => finetune::adopt(store, kind, v.as_deref()).map(|()| v),
            FinetuneAction::RollBack => finetune::roll_back(store, kind),
        };
        match result {
            Ok(v) => {
                self.finetune.adopted = v.clone();
                let weights = v.and_then(|name| list_versions(store.path(), kind).into_iter().find(|x| x.name == name)).map(|x| x.weights());
                Some(ReviewAction::UseWeights(weights))
            }
            Err(e) => {
                self.problem = Some(e.to_string());
                None
            }
        }
    }

    /// Read the background jobs; true while one runs.
    pub fn poll(&mut self) -> bool {
        if let Some(rx) = &self.loading
            && let Ok(loaded) = rx.try_recv()
        {
            self.loading = None;
            match loaded {
                Ok(Loaded { index: mut ix, coders, analysis }) => {
                    // Predictions of frames seen meanwhile stay.
                    for (k, v) in std::mem::take(&mut self.index.predictions) {
                        ix.predictions.entry(k).or_insert(v);
                    }
                    self.index = ix;
                    self.coders = coders;
                    self.analysis = analysis;
                    self.derived = None;
                }
                Err(e) => self.problem = Some(format!("reading the labels: {e}")),
            }
        }
        if self.finetune.poll()
            && let Some(s) = &self.store
            && let Some(PredictorKind::Net(kind)) = self.model_kind
        {
            self.finetune.versions = list_versions(s.path(), kind);
        }
        let mut finished = None;
        if let Some(job) = &self.analysing {
            while let Ok(ev) = job.events.try_recv() {
                match ev {
                    AnalysisEvent::Stored { done, total, rows } => {
                        self.analysis_progress = (done, total);
                        for (key, face, probs) in rows {
                            self.index.faces.insert(key, face);
                            if probs.len() == self.index.aus.len() {
                                self.index.predictions.insert(key, probs);
                            }
                        }
                        self.derived = None;
                    }
                    AnalysisEvent::Finished(r) => finished = Some(r),
                }
            }
        }
        if let Some(r) = finished {
            self.analysing = None;
            match r {
                Ok(o @ ProjectOutcome::Done { frames, .. }) => self.notice = Some(format!("analysed {frames} frames{}", o.details())),
                Ok(ProjectOutcome::AlreadyDone { frames }) => self.notice = Some(format!("already analysed ({frames} frames)")),
                Ok(ProjectOutcome::Stopped { at }) => self.notice = Some(format!("analysis stopped at frame {at}")),
                Err(e) => self.problem = Some(format!("analysing the video: {e}")),
            }
            self.ensure_store();
            self.reload();
        }
        self.finetune.running() || self.analysing.is_some() || self.loading.is_some()
    }

    /// Analyse the video into its project with `model` (see `analysis_job`).
    pub fn start_analysis(&mut self, model: &ModelRequest, device: &Device) {
        let Some(media) = self.media.clone() else { return };
        let spec = AnalysisSpec { video: media, model: model.clone(), detector: Default::default() };
        match crate::analysis_job::spawn(spec, device.clone()) {
            Ok(job) => {
                self.analysing = Some(job);
                self.analysis_progress = (self.analysis.as_ref().map_or(0, |a| a.next), self.frames);
            }
            Err(e) => self.problem = Some(format!("could not start the analysis: {e}")),
        }
    }

    /// True while "Analyse video" runs.
    pub fn analysing(&self) -> bool {
        self.analysing.is_some()
    }

    pub fn import(&mut self, path: &Path) {
        let Some(store) = self.ensure_store() else {
            self.problem = Some("no project file to import into".into());
            return;
        };
        let timing = plain::Timing::of_project(store, None);
        let result = plain::import_any(store, path, (Source::Model, "OpenFace"), timing);
        match result {
            Ok(msg) => {
                self.notice = Some(msg);
                self.reload();
            }
            Err(e) => self.problem = Some(format!("import: {e}")),
        }
    }

    pub fn export(&mut self, path: &Path) {
        let Some(store) = &self.store else { return };
        match plain::export(store, Some(Source::Coder), Some(&self.coder), path) {
            Ok(n) => self.notice = Some(format!("wrote {n} labels to {}", path.display())),
            Err(e) => self.problem = Some(format!("export: {e}")),
        }
    }

    fn compute_agreement(&self) -> Result<(String, Vec<AuAgreement>), String> {
        let (Some(store), Some(who)) = (&self.store, &self.model_who) else { return Err("no project or model".into()) };
        let coder = store.labels(Some(Source::Coder), Some(&self.coder)).map_err(|e| e.to_string())?;
        let model = store.labels(Some(Source::Model), Some(who)).map_err(|e| e.to_string())?;
        let rows = agreement(&coder, &model);
        if rows.is_empty() {
            return Err(format!("{} and {who} share no labelled face yet", self.coder));
        }
        Ok((format!("{who} against {} (F1, Cohen's kappa):", self.coder), rows))
    }

    /// One track per shown AU under the timeline: the model's probability
    /// (brightness) and the coder's labels (green present, red absent);
    /// click or drag to seek.
    /// `follow`: the identity whose face the tracks show (None: each
    /// frame's first face).
    pub fn tracks_ui(&mut self, ui: &mut egui::Ui, current: usize, follow: Option<u32>) -> Option<usize> {
        if self.frames < 2 || self.index.aus.is_empty() {
            return None;
        }
        if self.follow != follow {
            self.follow = follow;
            self.derived = None;
        }
        let visible = self.visible();
        let name_w = 48.0;
        let row_h = 9.0;
        let width = ui.available_width();
        let (rect, response) = ui.allocate_exact_size(Vec2::new(width, row_h * visible.len() as f32 + 2.0), Sense::click_and_drag());
        let painter = ui.painter_at(rect);
        let track_x = rect.left() + name_w;
        let track_w = (rect.width() - name_w).max(1.0);
        let cols = track_w.floor().max(1.0) as usize;
        let frames = self.frames;
        let frame_of = |x: f32| (((x - track_x) / track_w).clamp(0.0, 1.0) * (frames - 1) as f32).round() as usize;
        self.derived();
        let Some(derived) = &self.derived else { return None };
        for (row, &j) in visible.iter().enumerate() {
            let y = rect.top() + 1.0 + row as f32 * row_h;
            painter.text(egui::pos2(rect.left(), y + row_h / 2.0), egui::Align2::LEFT_CENTER, &self.index.aus[j], egui::FontId::monospace(8.0), Color32::GRAY);
            let track = &derived.tracks[j];
            // Each pixel column: the mean probability and any label of its frames.
            for c in 0..cols {
                let lo = c * self.frames / cols;
                let hi = ((c + 1) * self.frames / cols).max(lo + 1).min(self.frames);
                let (mut sum, mut n, mut present, mut absent) = (0.0f32, 0, false, false);
                for (p, l) in &track[lo..hi] {
                    if let Some(p) = p {
                        sum += p;
                        n += 1;
                    }
                    present |= *l == Some(true);
                    absent |= *l == Some(false);
                }
                let x = track_x + c as f32;
                if n > 0 {
                    let v = (sum / n as f32 * 200.0) as u8 + 30;
                    painter.rect_filled(egui::Rect::from_min_size(egui::pos2(x, y), Vec2::new(1.0, row_h * 0.6)), 0.0, Color32::from_rgb(v / 2, v / 2, v));
                }
                if present || absent {
                    let colour = if present { Color32::from_rgb(90, 220, 90) } else { Color32::from_rgb(230, 80, 80) };
                    painter.rect_filled(egui::Rect::from_min_size(egui::pos2(x, y + row_h * 0.6), Vec2::new(1.0, row_h * 0.35)), 0.0, colour);
                }
            }
        }
        let x = track_x + track_w * current as f32 / (self.frames - 1) as f32;
        painter.vline(x, rect.y_range(), egui::Stroke::new(1.0, Color32::YELLOW));
        let response = response.on_hover_text("AU tracks: model probability (blue brightness) and your labels (green present, red absent). Click to seek.");
        if (response.clicked() || response.dragged())
            && let Some(pos) = response.interact_pointer_pos()
            && pos.x >= track_x
        {
            return Some(frame_of(pos.x));
        }
        None
    }
}

impl Drop for Review {
    fn drop(&mut self) {
        self.rescue();
    }
}
