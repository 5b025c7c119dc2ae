#!/usr/bin/env bash
# Trains auscope's shipped default AU weights (demo quality) from blendshape
# teacher pseudo-labels on ../shared/data, then copies each final model with
# its run file and held-out metrics into models/au_<arch>/.
#
#   tools/train_defaults.sh            # all runs, in order (about 1 h on 2 CPU cores)
#   DEVICE=wgpu tools/train_defaults.sh
#
# The runs (tools/defaults/*.json, in file-name order):
#   1 FAN distillation on the landmarker's 68-point heat-maps
#   2 FAN-Trans from the distilled FAN (FAN frozen, OKD)
#   3 TransAU   4 LRP-ARL-FF
#   5-8 PIAP: stage 1 (DW-UNet generator), stage 2 (generator + 12-channel
#       B1), stage 3 (B1 + PI decoder on generator-1 maps), PIAP-DF.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --workspace --all-targets
BIN="${CARGO_TARGET_DIR:-target}/release/auscope"
for config in tools/defaults/*.json; do
    echo "== $config"
    "$BIN" train --config "$config" --device "${DEVICE:-auto}" --fresh
done
copy() { # run-folder model-folder
    mkdir -p "models/$2"
    cp "runs/defaults/$1/model.bpk" "models/$2/model.bpk"
    cp "runs/defaults/$1/run.json" "models/$2/run.json"
    cp "runs/defaults/$1/metrics.json" "models/$2/metrics.json"
}
copy fan-trans au_fan_trans
copy transau au_transau
copy lrp-arl-ff au_lrp_arl_ff
copy piap-df au_piap
sha256sum models/au_*/model.bpk
python3 tools/model_cards.py
