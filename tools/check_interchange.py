#!/usr/bin/env python3
"""Reliability and ELAN interchange checked against reference implementations.

1. Krippendorff's alpha: three coders' random labels (occurrence with
   missing values, intensities A-E) go into a project; `auscope labels
   agreement --json` must give the alpha of PyPI `krippendorff` (nominal
   over occurrence, ordinal over intensity with absent = 0) to 1e-9.
2. ELAN: `auscope labels export --out x.eaf` is read with PyPI
   `pympi-ling`: one tier per coder and AU with the events' times and
   intensities, an apex child tier, the media linked. An .eaf written by
   pympi (as another tool would) imports back with every event.

Usage: python3 tools/check_interchange.py [--auscope PATH] [--shared ../shared]
Needs: pip install krippendorff pympi-ling numpy
Exits non-zero on the first mismatch.
"""
import argparse
import csv
import json
import pathlib
import random
import shutil
import subprocess
import sys
import tempfile

import krippendorff
import numpy as np
import pympi

ROOT = pathlib.Path(__file__).resolve().parent.parent


def run(auscope, *args):
    out = subprocess.run([auscope, *args], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"auscope {' '.join(args)} failed: {out.stderr}")
    return out.stdout


def check_alpha(auscope, clip, tmp):
    rng = random.Random(7)
    coders, frames, aus = ["ann", "bob", "cat"], 60, ["AU01", "AU12"]
    truth = {au: [rng.random() < 0.4 for _ in range(frames)] for au in aus}
    header = "frame,face,au,source,who,occurrence,intensity,score,time_ms\n"
    occ = {au: np.full((len(coders), frames), np.nan) for au in aus}
    grade = {au: np.full((len(coders), frames), np.nan) for au in aus}
    for c, who in enumerate(coders):
        rows = header
        for au in aus:
            for f in range(frames):
                if rng.random() < 0.15:  # not labelled by this coder
                    continue
                present = truth[au][f] if rng.random() < 0.8 else not truth[au][f]
                letter = rng.choice("ABCDE") if present and rng.random() < 0.85 else ""
                rows += f"{f},0,{au},coder,{who},{int(present)},{letter},,\n"
                occ[au][c, f] = int(present)
                if not present:
                    grade[au][c, f] = 0
                elif letter:
                    grade[au][c, f] = "ABCDE".index(letter) + 1
        path = tmp / f"{who}.csv"
        path.write_text(rows)
        run(auscope, "labels", "import", "--project", str(clip), str(path))
    got = json.loads(run(auscope, "labels", "agreement", "--project", str(clip), *[f"coder:{c}" for c in coders], "--json"))
    for au in aus:
        row = next(r for r in got["alpha"] if r["au"] == au)
        want = krippendorff.alpha(reliability_data=occ[au], level_of_measurement="nominal")
        want_i = krippendorff.alpha(reliability_data=grade[au], level_of_measurement="ordinal")
        for name, a, b in [("nominal", row["alpha"], want), ("ordinal", row["alpha_intensity"], want_i)]:
            if abs(a - b) > 1e-9:
                sys.exit(f"{au} alpha {name}: auscope {a}, krippendorff {b}")
            print(f"{au} alpha {name}: auscope {a:.10f}  krippendorff {b:.10f}  ok")
    # Two coders: the pairwise alpha equals the reference on their rows.
    pair = next(p for p in got["pairs"] if p["a"] == "coder:ann" and p["b"] == "coder:bob")
    for au in aus:
        both = ~np.isnan(occ[au][0]) & ~np.isnan(occ[au][1])
        want = krippendorff.alpha(reliability_data=occ[au][:2, both], level_of_measurement="nominal")
        a = next(r for r in pair["aus"] if r["au"] == au)["alpha"]
        if abs(a - want) > 1e-9:
            sys.exit(f"{au} pairwise alpha: auscope {a}, krippendorff {want}")
        print(f"{au} pairwise alpha ann/bob: {a:.10f} ok")


def read_events(auscope, clip, tmp):
    path = tmp / "events.csv"
    run(auscope, "labels", "export", "--project", str(clip), "--events", "--out", str(path))
    with path.open() as f:
        return sorted((r["who"], r["au"], int(r["onset"]), int(r["apex"]), int(r["offset"]), r["intensity"]) for r in csv.DictReader(f))


def check_elan(auscope, clip, tmp, fps):
    events = "who,person,au,onset,apex,offset,intensity,origin,time_ms\n"
    events += "dana,0,AU12,10,14,30,C,,\ndana,0,AU12,40,40,44,,,\ndana,0,AU06,12,20,28,B,,\neli,0,AU12,11,16,29,D,,\n"
    path = tmp / "coded.csv"
    path.write_text(events)
    run(auscope, "labels", "import", "--project", str(clip), str(path))
    want = read_events(auscope, clip, tmp)
    eaf_path = tmp / "coded.eaf"
    run(auscope, "labels", "export", "--project", str(clip), "--out", str(eaf_path))
    eaf = pympi.Elan.Eaf(str(eaf_path))
    ms = lambda f: round(f * 1000 / fps)
    for who, au, onset, apex, offset, letter in want:
        tier = f"{au} {who}"
        data = eaf.get_annotation_data_for_tier(tier)
        if (ms(onset), ms(offset + 1), letter) not in [(a, b, v) for a, b, v in data]:
            sys.exit(f"{tier}: no annotation {ms(onset)}-{ms(offset + 1)} '{letter}' in {data}")
        apexes = eaf.get_annotation_data_for_tier(f"{tier} apex")
        if (ms(apex), ms(apex + 1), "apex") not in [(a, b, v) for a, b, v in apexes]:
            sys.exit(f"{tier} apex: no {ms(apex)} in {apexes}")
        if eaf.tiers[tier][2].get("ANNOTATOR") != who or eaf.get_parameters_for_tier(f"{tier} apex").get("PARENT_REF") != tier:
            sys.exit(f"{tier}: annotator or apex parent wrong")
    media = eaf.media_descriptors[0]
    if not media["MEDIA_URL"].endswith(clip.name) or media["RELATIVE_MEDIA_URL"] != f"./{clip.name}":
        sys.exit(f"media not linked: {media}")
    print(f"pympi reads {len(want)} events on {len(eaf.get_tier_names())} tiers, media {media['MEDIA_URL']}  ok")
    # Back in: an .eaf written by pympi as another tool would (no apex tier:
    # the apex falls in the middle), into a fresh project of the same clip.
    other = tmp / "other" / clip.name
    other.parent.mkdir()
    shutil.copy(clip, other)
    foreign = pympi.Elan.Eaf()
    foreign.add_linked_file(str(other), mimetype="video/mp4")
    foreign.add_tier("AU04 fay", part="person 0", ann="fay")
    foreign.add_annotation("AU04 fay", ms(5), ms(15), "E")
    foreign.add_annotation("AU04 fay", ms(20), ms(23), "")
    foreign_path = tmp / "foreign.eaf"
    foreign.remove_tier("default")
    foreign.to_file(str(foreign_path))
    run(auscope, "labels", "import", "--project", str(other), str(foreign_path))
    got = read_events(auscope, other, tmp)
    if got != [("fay", "AU04", 5, 9, 14, "E"), ("fay", "AU04", 20, 21, 22, "")]:
        sys.exit(f"pympi's file imported as {got}")
    print(f"pympi-written .eaf imports as {got}  ok")
    # And auscope's own export imports back with nothing lost.
    again = tmp / "again" / clip.name
    again.parent.mkdir()
    shutil.copy(clip, again)
    run(auscope, "labels", "import", "--project", str(again), str(eaf_path))
    back = read_events(auscope, again, tmp)
    if back != want:
        sys.exit(f"round trip: {back} != {want}")
    print(f"auscope's .eaf imports back: {len(back)} events equal  ok")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--auscope", default=str(pathlib.Path.home() / ".cache/auscope-target/release/auscope"))
    ap.add_argument("--shared", default=str(ROOT.parent / "shared"))
    args = ap.parse_args()
    clip_src = pathlib.Path(args.shared) / "data/video/single_face.mp4"
    fps = 30.0
    with tempfile.TemporaryDirectory() as d:
        tmp = pathlib.Path(d)
        for name, check in [("alpha", check_alpha), ("elan", check_elan)]:
            clip = tmp / name / "clip.mp4"
            clip.parent.mkdir()
            shutil.copy(clip_src, clip)
            if name == "alpha":
                check(args.auscope, clip, tmp)
            else:
                probe = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=r_frame_rate", "-of", "csv=p=0", str(clip)], capture_output=True, text=True).stdout.strip()
                num, den = probe.split("/")
                fps = int(num) / int(den)
                check(args.auscope, clip, tmp, fps)
    print("all checks passed")


if __name__ == "__main__":
    main()
