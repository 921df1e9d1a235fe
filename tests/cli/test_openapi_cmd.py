"""``rewardloop openapi``: the service's OpenAPI document without a running service."""

from __future__ import annotations

import json
from pathlib import Path

from openapi_spec_validator import validate
from typer.testing import CliRunner

from rewardloop.cli.main import app
from rewardloop.service import create_app

runner = CliRunner()


def test_writes_the_document_the_service_serves(tmp_path: Path) -> None:
    out = tmp_path / "openapi.json"
    result = runner.invoke(app, ["openapi", "--out", str(out)])
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    validate(document)
    assert document == create_app("sqlite://").openapi()
    assert "/v1/feedback" in document["paths"]


def test_prints_the_document_on_stdout() -> None:
    result = runner.invoke(app, ["openapi"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["openapi"].startswith("3.1")


def test_an_unwritable_output_is_a_usage_error_naming_it(tmp_path: Path) -> None:
    result = runner.invoke(app, ["openapi", "-o", str(tmp_path / "missing" / "openapi.json")])
    assert result.exit_code == 2
    assert "--out" in result.output and "missing" in result.output
