"""The ``birdsong`` command line.

Silent library, talkative CLI: a dataset summary, phase names and progress bars on
stderr, results on stdout (a table a person can read, or JSON/CSV for machines).
``birdsong --help``, ``predict`` and ``info`` never import TensorFlow; the training
commands check their arguments and data first and import it only when they train.

Exit codes: 0 success; 1 some inputs failed, nothing was found to work on, or an
operating-system condition; 2 a bad option, file or dataset (one line on stderr saying
which and why); 130 interrupted; 141 a closed pipe. Without ``-v`` the start-up chatter
of TensorFlow, absl and LiteRT is suppressed.

The modules: :mod:`~birdsong.cli.main` (the parser and the error handling),
:mod:`~birdsong.cli.commands` (one function per command) and
:mod:`~birdsong.cli.predict` (``birdsong predict``, light tier).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Sequence

from .._io import printable
from .._version import __version__
from ..errors import BirdsongError
from . import interrupt
from .commands import (
    EXIT_FAILED_INPUTS,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    _cmd_demo,
    _cmd_demo_data,
    _cmd_evaluate,
    _cmd_export,
    _cmd_info,
    _cmd_predict,
    _cmd_spectrogram,
    _cmd_spectrograms,
    _cmd_train,
)

__all__ = ["OPTION_NAMES", "build_parser", "cli_message", "main", "quiet_native_output"]

log = logging.getLogger("birdsong")

#: Python parameter -> the option that sets it on the command line (errors raised by the
#: library are re-phrased with these, so the message names what the user typed).
OPTION_NAMES = {
    "output_dir": "-o/--output",
    "output": "-o/--output",
    "out_dir": "-o/--output",
    "model": "--model",
    "min_score": "--min-score",
    "top_k": "--top-k",
    "overlap": "--overlap",
    "hop_seconds": "--hop-seconds",
    "num_threads": "--threads",
    "resume": "--resume",
    "strategy": "--strategy",
    "weights": "--weights",
    "windows.hop_seconds": "--hop-seconds",
    "train_hop_seconds": "--train-hop-seconds",
    "validation_dir": "--validation-dir",
}


# -------------------------------------------------------------------------- parser
def _feature_options(p: argparse.ArgumentParser) -> None:
    from ..config import FeatureConfig

    d = FeatureConfig()
    p.add_argument(
        "--sample-rate", type=int, help=f"model sample rate in Hz (default {d.sample_rate})"
    )
    p.add_argument(
        "--clip-seconds", type=float, help=f"window length in s (default {d.clip_seconds:g})"
    )
    p.add_argument("--image-size", type=int, help=f"image side in px (default {d.image_size})")


def _hop_option(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument(
        "--hop-seconds",
        "--hop",
        dest="hop_seconds",
        type=float,
        help=f"window hop in s ({what}); --hop is the old name",
    )


def build_parser() -> argparse.ArgumentParser:
    from ..config import FINETUNE_SCHEDULES, TrainConfig

    d = TrainConfig()
    parser = argparse.ArgumentParser(
        prog="birdsong",
        description="Bird-song classifiers from folders of recordings: "
        "spectrograms, training, evaluation, TFLite export and prediction.",
        epilog="Exit codes: 0 success; 1 some inputs failed or none were found; 2 a bad "
        "option, file or dataset; 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"birdsong {__version__}")
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="log details, including TensorFlow's and LiteRT's own messages",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "demo",
        help="the whole job on generated demo data (minutes on 2 "
        "CPUs; see the README for measured times)",
    )
    p.add_argument("out_dir", nargs="?", default="birdsong-demo", help="default: birdsong-demo")
    p.add_argument(
        "--weights",
        default="imagenet",
        help="imagenet (falls back to none when it cannot be downloaded), none, or a weights file",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fast", action="store_true", help="a much smaller run (a smoke test)")
    p.add_argument(
        "--restart",
        action="store_true",
        help="start again from scratch (default: reuse the data and continue an interrupted run)",
    )
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("spectrogram", help="draw one recording's mel spectrogram to a PNG")
    p.add_argument("clip")
    p.add_argument("-o", "--output", required=True, help="PNG file to write")
    p.add_argument(
        "--windows", action="store_true", help="also draw the per-window images the model sees"
    )
    _hop_option(p, "for --windows; default: the window length")
    p.add_argument("--start", type=float, default=0.0, help="first second to draw (default 0)")
    p.add_argument(
        "--duration",
        type=float,
        default=600.0,
        help="seconds to draw (default 600; a longer file is cut, and says so)",
    )
    _feature_options(p)
    p.set_defaults(func=_cmd_spectrogram)

    p = sub.add_parser(
        "spectrograms",
        help="mirror a species tree of recordings as a species tree of model-image PNGs",
    )
    p.add_argument("data_dir")
    p.add_argument("out_dir")
    _hop_option(p, "default: the window length")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _feature_options(p)
    p.set_defaults(func=_cmd_spectrograms)

    p = sub.add_parser("demo-data", help="write a synthetic folder-per-species dataset")
    p.add_argument("out_dir")
    p.add_argument("--species", type=int, default=12, help="number of species (default 12)")
    p.add_argument("--individuals", type=int, help="birds per species (default 3; field 12)")
    p.add_argument("--recordings", type=int, default=3, help="recordings per bird")
    p.add_argument("--seconds", type=float, default=8.0, help="length of each recording")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--difficulty",
        choices=("demo", "field"),
        default="demo",
        help="demo: clean songs; field: noise, reverb, distractors, mixed formats",
    )
    p.set_defaults(func=_cmd_demo_data)

    p = sub.add_parser("train", help="train a classifier on DATA_DIR/<species>/<recordings>")
    p.add_argument("data_dir")
    p.add_argument("-o", "--output", required=True, help="run directory, e.g. runs/NAME")
    p.add_argument("--config", help="a TrainConfig JSON file (options below override it)")
    p.add_argument(
        "--weights",
        help="imagenet (default), none (from scratch, with the "
        "from-scratch schedule), or a weights file path",
    )
    p.add_argument(
        "--alpha", type=float, help=f"MobileNetV2 width (0.35 ... 1.4; default {d.alpha:g})"
    )
    p.add_argument(
        "--epochs-frozen",
        type=int,
        help="most phase-1 epochs (default: 100 pretrained, 0 from scratch)",
    )
    p.add_argument(
        "--epochs-finetune",
        type=int,
        help="most phase-2 epochs (default: 15 pretrained, 60 from scratch)",
    )
    p.add_argument(
        "--fine-tune-from",
        help="first backbone layer to unfreeze in fine-tuning, e.g. block_13_expand "
        "(default auto: the whole backbone)",
    )
    p.add_argument("--learning-rate", type=float, help=f"phase 1 (default {d.learning_rate:g})")
    p.add_argument(
        "--finetune-learning-rate",
        type=float,
        help="phase 2 (default: 1e-4 pretrained, 2e-3 from scratch)",
    )
    p.add_argument("--batch-size", type=int, help=f"default {d.batch_size}")
    p.add_argument("--validation-fraction", type=float, help=f"default {d.validation_fraction:g}")
    p.add_argument(
        "--validation-min-groups",
        type=int,
        help="hold out validation birds only for species with at least this many birds "
        f"(groups); the others train on all (default {d.validation_min_groups})",
    )
    p.add_argument("--validation-dir", help="a separate species tree for validation")
    p.add_argument(
        "--annotations",
        help="also learn from this folder of recordings with Raven/Audacity/CSV "
        "tables (several species per recording; needs --multi-label)",
    )
    p.add_argument(
        "--multi-label",
        action="store_true",
        help="one sigmoid per species (several at once; _Background = none) instead of one softmax",
    )
    p.add_argument(
        "--target-precision",
        type=float,
        help="choose each species' detection threshold to reach this precision "
        "on validation (default: the threshold with the best F1)",
    )
    p.add_argument(
        "--group-pattern",
        help="regular expression: files whose names share a match stay on one "
        f"side of the split (default {d.group_pattern!r}: a bird or a "
        "xeno-canto recording)",
    )
    _hop_option(
        p, "of the windows a recording is scored by, saved with the model; default a quarter window"
    )
    p.add_argument(
        "--train-hop-seconds",
        type=float,
        help="window hop in s of the windows learnt from (default half a window)",
    )
    p.add_argument("--patience", type=int, help="early-stopping patience of fine-tuning, in epochs")
    p.add_argument(
        "--frozen-patience",
        type=int,
        help="early-stopping patience of the frozen-backbone phase (cheap cached epochs)",
    )
    p.add_argument(
        "--finetune-schedule",
        choices=FINETUNE_SCHEDULES,
        help=f"fine-tuning learning rate over the epochs (default {d.finetune_schedule})",
    )
    p.add_argument(
        "--finetune-average-epochs",
        type=float,
        help="validate and keep a moving average of the fine-tuned weights over about "
        "this many epochs (default 1 with pretrained weights, 0 = off from scratch)",
    )
    p.add_argument(
        "--min-epoch-windows",
        type=int,
        help="a fine-tuning epoch passes over the training windows until it has seen at "
        "least this many (default 512 with pretrained weights, 0 = one pass from scratch)",
    )
    p.add_argument("--label-smoothing", type=float, help="default 0")
    p.add_argument("--no-augment", action="store_true", help="switch augmentation off")
    p.add_argument("--mixup", type=float, help="mixup alpha (0 = off)")
    p.add_argument(
        "--overlay",
        type=float,
        metavar="P",
        help="share of training windows with a quieter window of another species mixed in "
        "(default 0.5 with --multi-label, else 0)",
    )
    p.add_argument("--seed", type=int)
    p.add_argument("--strategy", default="default", choices=["default", "mirrored"])
    p.add_argument("--resume", action="store_true", help="continue an interrupted run")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    _feature_options(p)
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser(
        "evaluate",
        help="metrics of a model on a labelled species tree, or "
        "on annotated soundscapes (Raven/Audacity/CSV tables)",
    )
    p.add_argument("model", help="run directory, .keras or .tflite")
    p.add_argument("data_dir", help="a folder per species, or recordings with tables")
    p.add_argument("-o", "--output", help="folder for report.json/.md, confusion matrices")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument(
        "--min-score",
        type=float,
        help="soundscapes: detection threshold for every species (default: the "
        "model's per-species thresholds)",
    )
    p.add_argument(
        "--min-overlap",
        type=float,
        default=0.5,
        help="soundscapes: share of a selection a detection (or window) must "
        "cover to count (default 0.5)",
    )
    p.add_argument("--species-column", help="Raven tables: the column naming the species")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("export", help="export a run to a self-describing .tflite")
    p.add_argument("run", help="run directory from `birdsong train`")
    p.add_argument("-o", "--output", required=True, help="e.g. birds.tflite")
    p.add_argument("--quantize", default="none", choices=["none", "float16", "dynamic", "int8"])
    p.add_argument(
        "--int8-recipe",
        default="auto",
        choices=["auto", "frontend-float", "ends-float", "debugger"],
        help="int8: which layers stay float32 (default auto: every recipe is converted and "
        "the one agreeing best with float32 on validation windows is kept)",
    )
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("predict", help="classify recordings with a .tflite model")
    p.add_argument("paths", nargs="+", help="audio files or folders (searched recursively)")
    p.add_argument(
        "--model",
        help="a .tflite or run directory (default: $BIRDSONG_MODEL, "
        "else the latest model trained or exported here)",
    )
    p.add_argument("--top-k", type=int, default=3)
    p.add_argument(
        "--min-score",
        type=float,
        help="detection threshold for every species (default: the per-species "
        "thresholds inside the model, else 0.5)",
    )
    _hop_option(p, "default: the model's own rule, saved when it was trained")
    p.add_argument(
        "--overlap",
        type=float,
        help="seconds shared by consecutive windows (another way to set the hop: "
        "hop = window - overlap)",
    )
    p.add_argument("--format", default="table", choices=["table", "json", "csv", "raven"])
    p.add_argument(
        "--tables",
        default="combined",
        choices=["combined", "per-recording"],
        help="--format raven: one table for every file (default; -o FILE or "
        "stdout), or one <recording>.birdsong.selections.txt per recording "
        "(-o FOLDER)",
    )
    p.add_argument("-o", "--output", help="write results to this file instead of stdout")
    p.add_argument("--shard", help="I/N: process only shard I (0-based) of N of the file list")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted -o output (csv or json): files already in "
        "it are skipped, the rest appended",
    )
    p.add_argument("--threads", type=int, help="interpreter threads")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("info", help="what a model says about itself (.tflite or run dir)")
    p.add_argument("model")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_info)
    return parser


# ------------------------------------------------------------------------ running
def cli_message(exc: BaseException) -> str:
    """An error's message phrased for the command line: the option a user typed
    (``--min-score``), not the Python parameter (``min_score``)."""
    text = str(exc)
    name = getattr(exc, "parameter", None)
    if name:
        option = OPTION_NAMES.get(name)
        owner = getattr(exc, "owner", None)
        if option is None and owner in (
            "TrainConfig",
            "FeatureConfig",
            "AugmentConfig",
            "WindowRules",
        ):
            option = "--" + name.split(".")[-1].replace("_", "-")
        if option:
            return (
                f"The {option} option must be {exc.requirement}. "  # type: ignore[attr-defined]
                f"Got {exc.value!r} instead."
            )  # type: ignore[attr-defined]
    for python, option in (("resume=True", "--resume"), ("model=", "--model ")):
        text = text.replace(python, option)
    return text


@contextlib.contextmanager
def quiet_native_output(enabled: bool) -> Iterator[None]:
    """Send what C++ libraries write to file descriptor 2 (TensorFlow's, absl's and
    LiteRT's start-up lines) to /dev/null, while Python's ``sys.stderr`` (progress
    bars, warnings, errors) still reaches the terminal."""
    try:
        real = sys.stderr.fileno() == 2  # not when a caller captured sys.stderr
    except (AttributeError, OSError, ValueError):
        real = False
    if not (enabled and real):
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
    except OSError:  # no real descriptor 2 (an embedding host): nothing to quiet
        yield
        return
    original = sys.stderr
    try:
        sys.stderr = os.fdopen(
            os.dup(saved),
            "w",
            buffering=1,
            encoding=original.encoding or "utf-8",
            errors="backslashreplace",
        )
        os.dup2(devnull, 2)
        yield
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os.dup2(saved, 2)
        with contextlib.suppress(Exception):
            sys.stderr.close()
        sys.stderr = original
        os.close(saved)
        os.close(devnull)


def _os_error_text(exc: OSError) -> str:
    """One line for an operating-system condition: what, and on which file."""
    what = exc.strerror or str(exc) or type(exc).__name__
    names = [n for n in (exc.filename, exc.filename2) if n is not None]
    return f"{what}: {' -> '.join(map(os.fsdecode, names))}" if names else what


def _quiet_stdout() -> None:
    """After a broken pipe: send what is left in stdout's buffer to /dev/null, so that
    Python's flush at exit does not fail a second time."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # stdout replaced (tests) or closed
        pass


def _error(text: str) -> None:
    with contextlib.suppress(OSError, ValueError):  # stderr gone too: nothing to tell
        print(f"birdsong: error: {printable(text)}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``birdsong`` command line; return the exit status.

    Exit status: 0 done; 1 an operating-system condition (permission denied, disk full,
    a folder where a file should be, ...) or every file failed; 2 a bad option, file or
    model; 130 interrupted; 141 the reader of stdout went away (``| head``). Each
    problem is one line on stderr, never a traceback.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")
    try:
        with interrupt.latched(), quiet_native_output(not args.verbose):
            return int(args.func(args) or 0)
    except FileNotFoundError as exc:
        _error(cli_message(exc) if exc.errno is None else _os_error_text(exc))
        return EXIT_USAGE
    except BirdsongError as exc:
        _error(cli_message(exc))
        return EXIT_USAGE
    except BrokenPipeError:
        _quiet_stdout()
        _error("output closed early (broken pipe)")
        return 141
    except OSError as exc:
        _error(_os_error_text(exc))
        return EXIT_FAILED_INPUTS
    except KeyboardInterrupt:
        print("birdsong: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
