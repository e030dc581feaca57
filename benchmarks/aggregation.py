"""Test-time aggregation: how a trained run's window scores become a recording's answer.

Takes a run directory (from ``accuracy.py --methods recipe``, which keeps it) and a test
folder, scores each recording's windows once with the Keras model, and compares the
per-recording top-1 of several rules and window budgets against the library's (mean of
window probabilities over the config's windows):

    .venv/bin/python benchmarks/aggregation.py RUN_DIR TEST_DIR
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir")
    ap.add_argument("test_dir")
    ap.add_argument("--windows", nargs="+", type=int, default=[8, 20])
    ap.add_argument(
        "--hops",
        nargs="+",
        type=float,
        default=[None],
        help="test-time window hops in seconds (default: the run's own)",
    )
    args = ap.parse_args()

    from birdsong.dataset import index_dataset
    from birdsong.model import load_keras_model
    from birdsong.pipeline import recording_windows
    from birdsong.rundir import RunDir

    config, labels = RunDir(args.run_dir).read()
    model = load_keras_model(args.run_dir)
    index = index_dataset(args.test_dir, labels=labels, min_species=1)
    results: dict[str, float] = {}
    for hop, budget in [(h, b) for h in args.hops for b in args.windows]:
        cfg = dataclasses.replace(
            config,
            windows=dataclasses.replace(
                config.windows,
                max_windows=budget,
                hop_seconds=config.windows.hop_seconds if hop is None else hop,
            ),
        )
        tag = f"@{budget}" if hop is None else f"@{budget}/hop{hop:g}"
        rules: dict[str, list[int]] = {
            "mean_prob": [],
            "mean_log_prob": [],
            "max_prob": [],
            "vote": [],
        }
        truth = []
        for rec in index.recordings:
            w = recording_windows(rec.path, cfg)
            p = np.concatenate(
                [np.asarray(model(w[i : i + 32], training=False)) for i in range(0, len(w), 32)]
            )
            rules["mean_prob"].append(int(p.mean(0).argmax()))
            rules["mean_log_prob"].append(int(np.log(p + 1e-7).mean(0).argmax()))
            rules["max_prob"].append(int(p.max(0).argmax()))
            rules["vote"].append(int(np.bincount(p.argmax(1), minlength=len(labels)).argmax()))
            truth.append(labels.index(rec.label))
        for rule, pred in rules.items():
            acc = float(np.mean(np.asarray(pred) == np.asarray(truth)))
            results[f"{rule}{tag}"] = acc
            print(f"{rule:14s} {tag:14s} top-1 {acc:.3f}  (n={len(truth)})", flush=True)
    out = HERE / "results" / f"aggregation-{Path(args.run_dir).name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps({"run_dir": args.run_dir, "test_dir": args.test_dir, "top1": results}, indent=1)
        + "\n"
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
