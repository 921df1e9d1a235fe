"""The checked-in TypeScript definitions (clients/typescript/schema.d.ts) are what ``openapi-typescript``
makes of the app's current OpenAPI document, and they compile (with a typed usage file) under ``tsc``.

``make test`` installs the npm packages (``make node``); without them this test installs them with
``npm ci``. It skips only where node or npm is absent."""

from __future__ import annotations

import difflib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from rewardloop.service import create_app

TS = Path(__file__).resolve().parents[2] / "clients" / "typescript"
REGENERATE = "make ts-types (clients/typescript/README.md)"

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or shutil.which("npm") is None,
    reason="node and npm are needed to generate and compile the TypeScript definitions (not installed)",
)


def _npm(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["npm", *args], cwd=TS, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, f"npm {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def packages() -> None:
    """The locked packages of package-lock.json (installed by ``make node``, else here)."""
    if not (TS / "node_modules" / ".bin" / "openapi-typescript").exists():
        _npm("ci", "--no-audit", "--no-fund")


def test_checked_in_types_match_the_current_openapi_document(packages: None, tmp_path: Path) -> None:
    document = tmp_path / "openapi.json"
    document.write_text(json.dumps(create_app("sqlite://").openapi(), indent=2, ensure_ascii=False))
    fresh = tmp_path / "schema.d.ts"
    _npm("run", "--silent", "generate", env={"OPENAPI_JSON": str(document), "TYPES_OUT": str(fresh)})
    want = fresh.read_text().splitlines(keepends=True)
    have = (TS / "schema.d.ts").read_text().splitlines(keepends=True)
    diff = "".join(list(difflib.unified_diff(have, want, "checked-in", "generated"))[:60])
    assert have == want, f"clients/typescript/schema.d.ts is stale; regenerate it: {REGENERATE}\n{diff}"


def test_types_and_the_typed_usage_file_compile(packages: None) -> None:
    _npm("run", "--silent", "check")  # tsc --noEmit: schema.d.ts and usage.ts, strict


def test_the_compile_check_fails_on_a_wrong_use(packages: None, tmp_path: Path) -> None:
    """tsc really checks against the definitions: a feedback body with a kind the API lacks fails."""
    wrong = tmp_path / "wrong.ts"
    wrong.write_text(
        f'import type {{ components }} from "{TS / "schema"}";\n'
        'export const body: components["schemas"]["FeedbackCreateRequest"] = '
        '{ decision_id: "d", kind: "thumbs" };\n'
    )
    tsc = TS / "node_modules" / ".bin" / "tsc"
    done = subprocess.run(
        [str(tsc), "--noEmit", "--strict", str(wrong)], capture_output=True, text=True, timeout=600
    )
    assert done.returncode != 0
    assert "thumbs" in done.stdout and "TS2322" in done.stdout
