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


def test_eval_on_a_policy_folder_never_imports_sqlalchemy(tmp_path):
    """`rewardloop eval DIR` reads no store: its start-up (imports included) is part of its time, and
    SQLAlchemy with the tables was ~0.7 s of CPU of it. OpenMP's idle threads are told to sleep."""
    policy = tmp_path / "policy"
    golden = tmp_path / "golden.jsonl"
    golden.write_text('{"id": "1", "text": "turn on the lights", "label": "on"}\n')
    out = _run(
        "-c",
        "import os, sys\nfrom rewardloop.policies.classifier import ClassifierPolicy\n"
        f"ClassifierPolicy(['on', 'off'], hidden=0, in_dim=384).save({str(policy)!r})\n"
        "from rewardloop.cli.main import app\n"
        f"args = ['eval', '-p', {str(policy)!r}, '-g', {str(golden)!r}, '-o', {str(tmp_path)!r}]\n"
        "try:\n    app(args)\nexcept SystemExit as e:\n    print('EXIT', e.code)\n"
        "print('SQLALCHEMY', 'sqlalchemy' in sys.modules, 'WAIT', os.environ.get('OMP_WAIT_POLICY'))",
    )
    assert "EXIT 0" in out.stdout and "SQLALCHEMY False WAIT PASSIVE" in out.stdout, out.stdout + out.stderr


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
