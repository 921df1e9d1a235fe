"""A project on a SQLite file with its registry under the test's folder (the service's wiring tests)."""

from __future__ import annotations

from typing import Any

import torch

from rewardloop.config import ProjectConfig, parse_config


def sqlite_project(tmp_path, monkeypatch, policies: list[dict[str, Any]]) -> ProjectConfig:  # type: ignore[no-untyped-def]
    """The project of ``policies`` in ``tmp_path`` (the working folder for the test), on one torch thread."""
    torch.set_num_threads(1)
    monkeypatch.chdir(tmp_path)
    return parse_config(
        {
            "store": {"url": f"sqlite:///{tmp_path / 'rl.db'}"},
            "policies": policies,
            "experiments": {"registry_root": str(tmp_path / "registry")},
        }
    )
