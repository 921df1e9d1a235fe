"""The top-level command: lazy loading keeps --help fast, the listing matches the commands."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from rewardloop.cli.main import COMMANDS, app, load_command

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _run(*code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.run([sys.executable, *code], capture_output=True, text=True, env=env, timeout=120)


def test_help_imports_no_command_module_torch_or_sqlalchemy():
    out = _run(
        "-c",
        "import sys\nfrom rewardloop.cli.main import app\n"
        "try:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = sorted(m for m in ('torch', 'sqlalchemy', 'numpy', 'rewardloop.store') if m in sys.modules)"
        "\ncmds = sorted(m for m in sys.modules if m.startswith('rewardloop.cli.')"
        " and m != 'rewardloop.cli.main')\n"
        "print('HEAVY', heavy, 'CMDS', cmds)",
    )
    assert "HEAVY [] CMDS []" in out.stdout, out.stdout + out.stderr
    assert "stats" in out.stdout and "Counts per policy" in out.stdout


@pytest.mark.parametrize("name", list(COMMANDS))
def test_listing_help_is_the_commands_own(name):
    real = load_command(name)
    text = " ".join((real.short_help or real.help or "").split())
    assert text.startswith(COMMANDS[name][1].rstrip(".")), (name, text)


def test_every_registered_command_is_listed():
    for module_name in {m for m, _ in COMMANDS.values()}:
        module = __import__(module_name, fromlist=["_"])
        holder = typer.Typer()
        if hasattr(module, "register"):
            module.register(holder)
            names = set(typer.main.get_group(holder).commands)
            assert names <= set(COMMANDS), (module_name, names - set(COMMANDS))


def test_unknown_command_and_version():
    runner = CliRunner()
    result = runner.invoke(app, ["no-such-command"])
    assert result.exit_code == 2
    assert "No such command" in result.output
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.startswith("rewardloop ")


def test_python_dash_m_runs_the_command():
    out = _run("-m", "rewardloop", "--version")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("rewardloop ")
    out = _run("-m", "rewardloop", "stats", "--help")
    assert out.returncode == 0 and "Usage: rewardloop stats" in out.stdout
