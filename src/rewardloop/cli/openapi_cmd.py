"""``rewardloop openapi``: the service's OpenAPI 3.1 document, without starting the service.

Generators read it: the checked-in TypeScript definitions (``clients/typescript``) are made from it by
``openapi-typescript``, and a test fails when they no longer match it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from rewardloop.cli.common import fail


def openapi(
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="write the document here (default: stdout)")
    ] = None,
) -> None:
    """Write the service's OpenAPI 3.1 document (JSON), the one /openapi.json serves."""
    from rewardloop.service import create_app

    text = json.dumps(create_app("sqlite://").openapi(), indent=2, ensure_ascii=False) + "\n"
    if out is None:
        sys.stdout.write(text)
        return
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as err:
        raise fail(f"--out {out}: {err.strerror or err}") from None


def register(app: typer.Typer) -> None:
    app.command()(openapi)
