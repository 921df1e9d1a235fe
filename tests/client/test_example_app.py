"""examples/app.py runs against a service and against a local store."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from examples.app import run
from tests.service.conftest import Api

from rewardloop.client import Client

ROOT = Path(__file__).parents[2]


def test_example_app_against_the_service(api: Api) -> None:
    with Client(api_key=api.keys["admin"], http=api.client) as client:
        assert run(client, 40) == (40, 40)
        assert len(client.export_rows(policy="example-router")) == 40


def test_example_app_against_a_local_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "app.py"), "--store", url, "-n", "30"],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT / "src"), "HF_HUB_OFFLINE": "1"},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "logged 30 decisions and 30 ratings"
    with Client.local(url) as client:
        assert len(client.export_rows(policy="example-router")) == 30
