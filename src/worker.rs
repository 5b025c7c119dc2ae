//! The named background thread that decodes frames and finds faces, so the
//! UI never blocks on FFmpeg or the models. It talks to the UI through
//! bounded channels; when requests pile up (scrubbing), only the newest frame
//! request is served.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};
use std::thread::JoinHandle;
use std::time::Instant;

use std::sync::Arc;

use auscope_core::analysis::{Engine, Tracker};
use auscope_core::explain::cache::{CacheKey, ExplainCache};
use auscope_core::explain::{ExplainOptions, Explanation, Method, explain, input_for};
use auscope_core::face::{DetectorKind, Face, FacePipeline};
use auscope_core::frame::Frame;
use auscope_core::models::{ModelFiles, Predictor, PredictorKind, open_predictor};
use auscope_core::source::{FrameSource, SourceInfo, open_source};
use burn::tensor::Device;

pub enum Request {
    Open(PathBuf),
    Frame(usize),
    SetDetector(DetectorKind),
    /// Run this AU model on every frame (None: no AU model).
    SetModel(Option<ModelRequest>),
    /// Load a second model for side-by-side explanations (None: unload it).
    /// It explains on request only; AU probabilities stay the main model's.
    SetCompareModel(Option<ModelRequest>),
    /// Explain a face of the frame last analysed.
    Explain(ExplainRequest),
}

/// What to explain; the reply carries it back so the UI can drop stale ones.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExplainRequest {
    /// Which viewer asks (0: main, 1: the side-by-side one); each viewer's
    /// newest request is served.
    pub view: usize,
    pub frame: usize,
    pub face: usize,
    pub method: Method,
    pub options: ExplainOptions,
    /// The model's source, so a model change invalidates the request.
    pub model: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModelRequest {
    pub kind: PredictorKind,
    /// A .bpk or PyTorch checkpoint; None: the shipped demo weights.
    pub weights: Option<PathBuf>,
}

/// The AU model in use, as the UI shows it.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    pub kind: PredictorKind,
    pub aus: Vec<String>,
    pub source: String,
    pub params: usize,
    /// True when no weights were loaded.
    pub random: bool,
    /// True for the shipped demo weights.
    pub demo: bool,
    /// Every explanation method, with why this model cannot give it (None: it can).
    pub methods: Vec<(Method, Option<String>)>,
    /// Score-CAM layers, best first.
    pub cam_layers: Vec<String>,
}

/// A frame with its faces, ready to show.
pub struct AnalyzedFrame {
    pub frame: Frame,
    pub faces: Vec<Face>,
    pub decode_ms: f64,
    pub faces_ms: f64,
    /// Per face, the AU probabilities of the current model (None: no model).
    pub aus: Option<Result<Vec<Vec<f32>>, String>>,
    pub aus_ms: f64,
}

pub enum Reply {
    Opened(Result<SourceInfo, String>),
    Frame {
        index: usize,
        result: Result<AnalyzedFrame, String>,
    },
    /// The models could not be loaded; nothing can be analysed.
    Fatal(String),
    /// The AU model was (un)loaded, or failed to load (the previous one stays).
    Model(Result<Option<ModelInfo>, String>),
    /// The same for the side-by-side model.
    CompareModel(Result<Option<ModelInfo>, String>),
    Explanation {
        request: ExplainRequest,
        result: Result<Arc<Explanation>, String>,
        ms: f64,
    },
}

pub struct Worker {
    /// The device the models run on (background jobs use it too).
    pub device: Device,
    requests: SyncSender<Request>,
    pub replies: Receiver<Reply>,
    _thread: JoinHandle<()>,
}

impl Worker {
    /// `repaint` is called after each reply so the UI wakes up to read it.
    pub fn spawn(device: Device, repaint: Box<dyn Fn() + Send>) -> std::io::Result<Self> {
        let (req_tx, req_rx) = sync_channel::<Request>(64);
        let (rep_tx, rep_rx) = sync_channel::<Reply>(8);
        let thread = std::thread::Builder::new()
            .name("auscope-frames".into())
            .spawn({
                let device = device.clone();
                move || serve(device, req_rx, rep_tx, repaint)
            })?;
        Ok(Worker {
            device,
            requests: req_tx,
            replies: rep_rx,
            _thread: thread,
        })
    }

    /// Queue a request; a full queue drops it (the UI asks again on the next interaction).
    pub fn send(&self, request: Request) -> bool {
        self.requests.try_send(request).is_ok()
    }
}

fn serve(
    device: Device,
    requests: Receiver<Request>,
    replies: SyncSender<Reply>,
    repaint: Box<dyn Fn() + Send>,
) {
    let reply = |r: Reply| {
        let ok = replies.send(r).is_ok();
        repaint();
        ok
    };
    let mut detector = DetectorKind::default();
    let mut engine = match FacePipeline::new(detector, &device) {
        Ok(p) => Engine::faces_only(p),
        Err(e) => {
            reply(Reply::Fatal(format!("face models failed to load: {e}")));
            return;
        }
    };
    // Stepping on through a video tracks the faces as an analysis does; a
    // seek detects afresh.
    let mut tracker = engine.tracker();
    let mut source: Option<Box<dyn FrameSource>> = None;
    let mut source_path = String::new();
    let mut compare: Option<Predictor> = None;
    // The frame last analysed (explanations are of its faces) and recent
    // explanations.
    let mut current: Option<(usize, auscope_core::frame::Frame, Vec<Face>)> = None;
    let mut cache = ExplainCache::new(32);
    while let Ok(first) = requests.recv() {
        // Coalesce: opens and detector changes all apply; only the last frame request is served.
        let mut batch = vec![first];
        loop {
            match requests.try_recv() {
                Ok(r) => batch.push(r),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return,
            }
        }
        let last_frame = batch.iter().rposition(|r| matches!(r, Request::Frame(_)));
        let last_explain = |view: usize| batch.iter().rposition(|r| matches!(r, Request::Explain(e) if e.view == view));
        let last_explain = [last_explain(0), last_explain(1)];
        for (i, request) in batch.into_iter().enumerate() {
            let alive = match request {
                Request::Open(path) => {
                    let opened = open_source(&path);
                    let info = opened
                        .as_ref()
                        .map(|s| s.info().clone())
                        .map_err(|e| e.to_string());
                    if let Ok(s) = opened {
                        source = Some(s);
                        source_path = path.display().to_string();
                        current = None;
                        tracker = engine.tracker();
                    }
                    reply(Reply::Opened(info))
                }
                Request::SetDetector(kind) if kind != detector => {
                    match FacePipeline::new(kind, &device) {
                        Ok(p) => {
                            engine.set_pipeline(p);
                            tracker = engine.tracker();
                            detector = kind;
                            true
                        }
                        Err(e) => reply(Reply::Fatal(format!("detector failed to load: {e}"))),
                    }
                }
                Request::SetDetector(_) => true,
                Request::SetModel(None) => {
                    engine.set_models(Vec::new());
                    reply(Reply::Model(Ok(None)))
                }
                Request::SetModel(Some(req)) => match load_model(&req, &device) {
                    Ok((m, info)) => {
                        engine.set_models(vec![m]);
                        reply(Reply::Model(Ok(Some(info))))
                    }
                    Err(e) => reply(Reply::Model(Err(e))),
                },
                Request::SetCompareModel(None) => {
                    compare = None;
                    reply(Reply::CompareModel(Ok(None)))
                }
                Request::SetCompareModel(Some(req)) => match load_model(&req, &device) {
                    Ok((m, info)) => {
                        compare = Some(m);
                        reply(Reply::CompareModel(Ok(Some(info))))
                    }
                    Err(e) => reply(Reply::CompareModel(Err(e))),
                },
                Request::Frame(index) if Some(i) == last_frame => match source.as_mut() {
                    Some(s) => {
                        let result = analyze(s.as_mut(), &engine, &mut tracker, index);
                        if let Ok(a) = &result {
                            current = Some((index, a.frame.clone(), a.faces.clone()));
                        }
                        reply(Reply::Frame { index, result })
                    }
                    None => true,
                },
                Request::Frame(_) => true,
                Request::Explain(request) if last_explain.contains(&Some(i)) => {
                    let t0 = Instant::now();
                    let key = CacheKey {
                        frame: (source_path.clone(), request.frame),
                        face: request.face,
                        model: request.model.clone(),
                        method: request.method,
                        options: request.options.clone(),
                    };
                    // The main or the side-by-side model, whichever the request names.
                    let named = engine.models().first().into_iter().chain(compare.as_ref()).find(|m| m.source() == request.model);
                    let result = match (cache.get(&key), &current, named) {
                        (Some(hit), _, _) => Ok(hit),
                        (None, Some((index, frame, faces)), Some(m)) if *index == request.frame => {
                            match faces.get(request.face) {
                                Some(face) => {
                                    let input = input_for(m, &frame.image, face);
                                    explain(request.method, &request.options, m, &input, &device)
                                        .map(|e| {
                                            // Resolve the maps' GPU buffer here, where they were
                                            // computed: it blocks on burn's server, and the UI
                                            // thread must not (it only reads the result).
                                            // On failure the window uploads the host copy.
                                            if let Some(Err(why)) = e.maps.as_ref().and_then(|m| m.device.as_ref()).map(|d| d.shared()) {
                                                eprintln!("auscope: maps are uploaded, not shared: {why}");
                                            }
                                            let e = Arc::new(e);
                                            cache.insert(key, e.clone());
                                            e
                                        })
                                        .map_err(|e| e.to_string())
                                }
                                None => Err(format!("frame {} has no face {}", request.frame, request.face + 1)),
                            }
                        }
                        (None, _, None) if engine.models().is_empty() && compare.is_none() => Err("choose an AU model first".into()),
                        // The UI moved on; it asks again for what it shows.
                        _ => continue,
                    };
                    reply(Reply::Explanation { request, result, ms: t0.elapsed().as_secs_f64() * 1e3 })
                }
                Request::Explain(_) => true,
            };
            if !alive {
                return;
            }
        }
    }
}

/// Open a model and describe it for the UI.
fn load_model(req: &ModelRequest, device: &Device) -> Result<(Predictor, ModelInfo), String> {
    let m = open_predictor(req.kind, ModelFiles { weights: req.weights.as_deref(), ..ModelFiles::default() }, device).map_err(|e| e.to_string())?;
    let options = ExplainOptions::default();
    let info = ModelInfo {
        kind: req.kind,
        aus: m.aus().to_vec(),
        source: m.source(),
        params: m.num_params(),
        random: m.is_random(),
        demo: m.is_demo(),
        methods: Method::ALL
            .into_iter()
            .map(|method| (method, auscope_core::explain::unavailable(method, &options, &m, None)))
            .collect(),
        cam_layers: match &m {
            Predictor::Net(net) => net.cam_layers(),
            Predictor::Teacher(_) => Vec::new(),
        },
    };
    Ok((m, info))
}

fn analyze(source: &mut dyn FrameSource, engine: &Engine, tracker: &mut Tracker, index: usize) -> Result<AnalyzedFrame, String> {
    let t0 = Instant::now();
    let frame = source.frame(index).map_err(|e| e.to_string())?;
    let t1 = Instant::now();
    let (faces, _) = engine.faces(tracker, index, &frame.image).map_err(|e| e.to_string())?;
    let t2 = Instant::now();
    // A model failure is shown next to the faces; the frame still shows.
    let aus = (!engine.models().is_empty()).then(|| {
        let pairs: Vec<_> = faces.iter().map(|f| (frame.image.as_ref(), f)).collect();
        engine.aus(&pairs).map(|rows| rows.into_iter().map(|mut r| r.swap_remove(0)).collect()).map_err(|e| e.to_string())
    });
    let t3 = Instant::now();
    Ok(AnalyzedFrame {
        frame,
        faces,
        decode_ms: (t1 - t0).as_secs_f64() * 1e3,
        faces_ms: (t2 - t1).as_secs_f64() * 1e3,
        aus,
        aus_ms: (t3 - t2).as_secs_f64() * 1e3,
    })
}
