"""The command line an operator meets: ``recs --help`` imports no command's module (so it answers
at once), ``recs --version`` exists, and every option of every command says what it does."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import click
from click.testing import CliRunner

from recs_assets.cli import _COMMANDS, main


def test_help_lists_every_command_without_importing_them() -> None:
    code = (
        "import json, sys\n"
        "from click.testing import CliRunner\n"
        "from recs_assets.cli import main\n"
        "result = CliRunner().invoke(main, ['--help'])\n"
        "loaded = sorted(m for m in sys.modules if m.startswith(('recs_assets.', 'dagster', "
        "'pandas', 'pyspark', 'mlflow')))\n"
        "print(json.dumps({'code': result.exit_code, 'out': result.output, 'loaded': loaded}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["code"] == 0
    assert report["loaded"] == ["recs_assets.cli"]  # nothing heavy until a command runs
    for name in _COMMANDS:
        assert name in report["out"]


def test_version() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0 and result.output.startswith("recs, version ")


def test_every_option_has_help_text() -> None:
    for name, (target, summary) in _COMMANDS.items():
        module, attr = target.split(":")
        command: click.Command = getattr(importlib.import_module(module), attr)
        assert command.name == name and summary
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help, f"recs {name} {param.opts[0]} has no help text"
