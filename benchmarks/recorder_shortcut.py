"""Does a model learn the recorder instead of the bird?

On the synthetic field set (seed given), every training recording of one species is
re-encoded at 22.05 kHz and no other training recording is (others that were at 22.05 kHz
are re-encoded at 32 kHz). The held-out birds are then scored twice: as they are (mixed
rates), and all re-encoded at 22.05 kHz. A model that learned "22.05 kHz = that species"
calls many other species' 22.05 kHz recordings by its name.

    .venv/bin/python benchmarks/recorder_shortcut.py --methods mfcc probe --seed 0
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
from accuracy import (
    CACHE,
    HERE,
    _config,
    _files,
    _link_tree,
    _logreg,
    _probe_embeddings,
    mfcc_features,
    scores,
    synthetic_set,
)

RATE = 22050


def _reencode(src: Path, dst: Path, rate: int) -> None:
    import soundfile as sf

    from birdsong.audio import load_audio

    audio, _ = load_audio(src, sample_rate=rate)
    dst.parent.mkdir(parents=True, exist_ok=True)
    sf.write(dst.with_suffix(".wav"), audio, rate, subtype="PCM_16")


def shortcut_set(seed: int, species: str) -> tuple[Path, Path, Path]:
    """(train with ``species`` alone at 22.05 kHz, test as is, test all at 22.05 kHz)."""
    import soundfile as sf

    train, test = synthetic_set(seed, species=12, individuals=12, recordings=3, test_individuals=3)
    base = CACHE / "shortcut" / f"s{seed}-{species}"
    if not (base / "done").exists():
        shutil.rmtree(base, ignore_errors=True)
        for f in sorted(p for p in train.rglob("*") if p.is_file()):
            rel = f.relative_to(train)
            if rel.parts[0] == species:
                _reencode(f, base / "train" / rel, RATE)
            elif sf.info(f).samplerate == RATE:
                _reencode(f, base / "train" / rel, 32000)
            else:
                _link_tree([f], train, base / "train")
        for f in sorted(p for p in test.rglob("*") if p.is_file()):
            _reencode(f, base / "test22k" / f.relative_to(test), RATE)
        (base / "done").write_text("ok\n")
    return base / "train", test, base / "test22k"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--species", default="Coal_Tit")
    ap.add_argument(
        "--methods", nargs="+", choices=("mfcc", "probe", "recipe"), default=["mfcc", "probe"]
    )
    ap.add_argument("--recipe-config")
    ap.add_argument("--image-size", type=int)
    args = ap.parse_args()
    config = _config(
        argparse.Namespace(recipe_config=args.recipe_config, image_size=args.image_size)
    )
    train, test, test22 = shortcut_set(args.seed, args.species)
    ptr, ytr = _files(train)
    labels = sorted(set(ytr))
    out: dict[str, dict] = {}
    for method in args.methods:
        t0 = time.perf_counter()
        preds: dict[str, tuple[list[str], list[str]]] = {}
        if method == "mfcc":
            xtr = mfcc_features(ptr)
            for name, folder in (("as_recorded", test), ("all_22k", test22)):
                pte, yte = _files(folder)
                preds[name] = (yte, _logreg(xtr, ytr, mfcc_features(pte), args.seed))
        elif method == "probe":
            from birdsong.model import build_model, feature_extractor

            extract = feature_extractor(build_model(labels, config))
            xtr = _probe_embeddings(extract, ptr, config)
            for name, folder in (("as_recorded", test), ("all_22k", test22)):
                pte, yte = _files(folder)
                preds[name] = (
                    yte,
                    _logreg(xtr, ytr, _probe_embeddings(extract, pte, config), args.seed),
                )
        else:
            import dataclasses

            from birdsong.evaluation import evaluate
            from birdsong.workflow import train as train_model

            run_dir = CACHE / "runs" / f"shortcut-{args.seed}-{int(time.time())}"
            train_model(
                train, run_dir, config=dataclasses.replace(config, seed=args.seed), export=False
            )
            for name, folder in (("as_recorded", test), ("all_22k", test22)):
                recs = evaluate(run_dir, folder)["recordings"]
                preds[name] = ([r["label"] for r in recs], [r["predicted"] for r in recs])
        res = {"seconds": time.perf_counter() - t0}
        for name, (yt, yp) in preds.items():
            yt, yp = np.asarray(yt), np.asarray(yp)
            others = yt != args.species
            res[name] = {
                **scores(list(yt), list(yp), labels),
                "others_called_species": float(np.mean(yp[others] == args.species)),
                "species_recall": float(np.mean(yp[~others] == args.species)),
                "n": int(len(yt)),
            }
        out[method] = res
        a, b = res["as_recorded"], res["all_22k"]
        print(
            f"{method:6s} top-1 {a['top1']:.3f} -> {b['top1']:.3f} at 22.05 kHz; other "
            f"species called {args.species}: {a['others_called_species']:.3f} -> "
            f"{b['others_called_species']:.3f}; its recall {a['species_recall']:.2f} -> "
            f"{b['species_recall']:.2f} ({res['seconds']:.0f} s)",
            flush=True,
        )
    path = HERE / "results" / f"recorder-shortcut-s{args.seed}-{'-'.join(args.methods)}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {
                "seed": args.seed,
                "species": args.species,
                "methods": out,
                "load_average": list(os.getloadavg()),
            },
            indent=1,
        )
        + "\n"
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
