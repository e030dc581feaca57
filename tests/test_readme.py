"""The README stays true: its test command is what CI runs, and every `birdsong`
command it shows parses with the real command line."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from birdsong.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")


def _blocks() -> list[str]:
    return re.findall(r"```sh\n(.*?)```", README, flags=re.S)


def test_ci_runs_the_readme_test_command():
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    test_cmd = next(line for b in _blocks() for line in b.splitlines()
                    if line.endswith(".venv/bin/pytest"))
    assert test_cmd in ci.splitlines()
    main_cmd = next(line for b in _blocks() for line in b.splitlines()
                    if "birdsong demo" in line)
    assert main_cmd.startswith("python3 -m venv .venv && .venv/bin/pip install -e")


def _commands():
    for block in _blocks():
        for line in block.splitlines():
            line = line.split("#")[0].strip()
            for part in line.split("&&"):
                words = shlex.split(part)
                if words and Path(words[0]).name == "birdsong":
                    yield words[1:]


@pytest.mark.parametrize("argv", list(_commands()), ids=" ".join)
def test_readme_commands_parse(argv):
    args = build_parser().parse_args(argv)
    assert args.func is not None
