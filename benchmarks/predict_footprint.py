"""Cold start and peak memory of ``birdsong predict`` with the default model.

    .venv/bin/python benchmarks/predict_footprint.py [--model birds.tflite] [--runs 7]

Without ``--model`` it exports the default user model (``TrainConfig()``: MobileNetV2
alpha 1.0, 224 px, 32 kHz, 12 species; untrained, since time and memory do not depend on
the weights' values). It then times ``birdsong predict clip.wav`` as a new process (the
median of ``--runs`` runs after one untimed run) and measures the peak memory of
``birdsong predict`` over a one-hour 32 kHz WAV, through the launcher of
``run_benchmarks.py`` (a child's RSS high-water mark, not this process's). Targets
(issue 13): cold start <= 0.5 s, one-hour file <= 120 MB.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from run_benchmarks import bench_process, machine  # noqa: E402


def default_model(work: Path) -> Path:
    from birdsong.config import TrainConfig, save_config
    from birdsong.exporting import export_model
    from birdsong.model import build_model
    from birdsong.synth import DEFAULT_SPECIES

    config = TrainConfig(weights=None)
    labels = list(DEFAULT_SPECIES[:12])
    run = work / "run"
    run.mkdir()
    build_model(labels, config).save(run / "model.keras")
    save_config(config, run / "config.json")
    (run / "labels.txt").write_text("\n".join(labels) + "\n")
    return export_model(run, work / "default.tflite", remember=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--seconds", type=int, default=3600)
    parser.add_argument("--out", default="benchmarks/results/predict-footprint.json")
    parser.add_argument(
        "--compare-hops",
        nargs="*",
        type=float,
        default=[1.5],
        help="also time the long file at these window hops (s)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = args.model or default_model(work)
        res = bench_process(
            model, work, args.runs, args.seconds, 32000, compare_hops=tuple(args.compare_hops)
        )
    res["machine"] = machine()
    print(
        f"cold start of `birdsong predict clip.wav`: {res['cold_start_s']:.2f} s (median of "
        f"{args.runs}; target <= 0.5 s)"
    )
    print(
        f"peak memory over a {args.seconds / 3600:g}-hour WAV: "
        f"{res['long_predict_max_rss_mb']:.0f} MB (target <= 120 MB), "
        f"{res['long_predict_audio_s_per_s']:.0f} audio-s/s including decoding at the "
        "model's window hop"
        + "".join(
            f", {v:.0f} at {hop} s" for hop, v in res["long_predict_audio_s_per_s_at_hop"].items()
        )
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
