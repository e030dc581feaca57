"""The README's demo figures, reproducible: run ``birdsong demo`` from scratch in fresh
folders (offline: no pretrained weights, as on a machine without internet) for a few
seeds and print what it printed, with the spread.

    .venv/bin/python benchmarks/demo_figures.py                # seeds 0 and 1
    .venv/bin/python benchmarks/demo_figures.py --seeds 0 1 2 --out figures.json

Each run is a new process (``birdsong demo OUT --weights none --seed S``), so the
figures are what a newcomer's first command prints. The same seed on the same machine
gives the same model (TensorFlow op determinism); other seeds give other datasets,
splits and initialisations, which is the spread worth stating.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
        "load_before": os.getloadavg()[0],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--weights", default="none")
    parser.add_argument("--out", default="benchmarks/results/demo-figures.json")
    args = parser.parse_args()
    exe = Path(sys.executable).with_name("birdsong")
    machine = _machine()
    runs = []
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "demo"
            env = dict(os.environ, BIRDSONG_CACHE_DIR=str(Path(tmp) / "cache"))
            started = time.perf_counter()
            proc = subprocess.run(
                [str(exe), "demo", str(out), "--weights", args.weights, "--seed", str(seed)],
                env=env,
                capture_output=True,
                text=True,
            )
            wall = time.perf_counter() - started
            if proc.returncode != 0:
                print(proc.stdout[-3000:], proc.stderr[-3000:], file=sys.stderr)
                return proc.returncode
            figures = json.loads((out / "demo_summary.json").read_text())
            figures["wall_seconds"] = wall
            runs.append(figures)
            print(
                f"seed {seed}: per-recording top-1 {figures['per_recording_top1']:.3f} "
                f"(n={figures['validation_recordings']}), new clips "
                f"{figures['new_clips_right']}/{figures['new_clips']}, soundscape cmAP "
                f"{figures['soundscape_cmap']:.3f}, event F1 "
                f"{figures['soundscape_event_f1'] or 0:.3f}, {wall / 60:.1f} min",
                flush=True,
            )

    def spread(key):
        values = [r[key] or 0.0 for r in runs]
        return (statistics.mean(values), statistics.pstdev(values), min(values), max(values))

    print("\nover seeds (mean, sd, min, max):")
    for key in (
        "per_recording_top1",
        "new_clips_right",
        "soundscape_cmap",
        "soundscape_event_f1",
        "wall_seconds",
    ):
        m, sd, lo, hi = spread(key)
        print(f"  {key:26s} {m:8.3f} {sd:8.3f} {lo:8.3f} {hi:8.3f}")
    machine["load_after"] = os.getloadavg()[0]
    result = {"machine": machine, "seeds": args.seeds, "weights": args.weights, "runs": runs}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
