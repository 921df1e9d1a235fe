"""Artifact folders on disk: copy in, checksum, verify on load.

The checksum is a sha256 over a manifest of the folder: one line per file, in sorted order of the
POSIX relative path, ``path NUL size NUL sha256(content) LF``. It covers names and contents, not
times or permissions, so the same files give the same checksum on any machine. The manifest itself
is kept beside the artifact so that a failed check can say *which* file was changed, added or lost.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

_CHUNK = 1 << 20
#: A file name the manifest keeps for itself inside the registry's own folder per version.
MANIFEST_SUFFIX = ".manifest.json"


class ArtifactError(RuntimeError):
    """An artifact is missing or does not match its recorded checksum; it must not be loaded."""


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def manifest(path: Path) -> dict[str, tuple[int, str]]:
    """``{relative posix path: (size, sha256)}`` of every file under ``path`` (or of one file)."""
    path = Path(path)
    if path.is_file():
        return {path.name: (path.stat().st_size, _file_sha256(path))}
    if not path.is_dir():
        raise ArtifactError(f"artifact: {path} does not exist")
    out: dict[str, tuple[int, str]] = {}
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        out[f.relative_to(path).as_posix()] = (f.stat().st_size, _file_sha256(f))
    return out


def checksum_of_manifest(files: dict[str, tuple[int, str]]) -> str:
    h = hashlib.sha256()
    for rel in sorted(files):
        size, digest = files[rel]
        h.update(f"{rel}\0{size}\0{digest}\n".encode())
    return h.hexdigest()


def checksum(path: Path) -> str:
    """The sha256 checksum of an artifact folder (or single file).

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp()); _ = (d / "w.json").write_text("{}")
    >>> len(checksum(d))
    64
    """
    return checksum_of_manifest(manifest(path))


def copy_artifact(src: Path, dest: Path) -> None:
    """Copy a folder (or one file, into a folder) to ``dest``, which must not exist."""
    src = Path(src)
    if dest.exists():
        raise ArtifactError(f"artifact: {dest} exists already in the registry")
    if src.is_dir():
        shutil.copytree(src, dest)
    elif src.is_file():
        dest.mkdir(parents=True)
        shutil.copy2(src, dest / src.name)
    else:
        raise ArtifactError(f"artifact: {src} does not exist")


def write_manifest(path: Path, files: dict[str, tuple[int, str]]) -> None:
    path.write_text(json.dumps({k: list(v) for k, v in sorted(files.items())}, indent=1))


def verify(path: Path, expected: str, manifest_path: Path | None = None, what: str = "artifact") -> None:
    """Raise :class:`ArtifactError` unless the artifact at ``path`` has checksum ``expected``.

    With a recorded manifest, the error names the files that changed, appeared or disappeared.
    """
    path = Path(path)
    if not path.exists():
        raise ArtifactError(f"{what}: the artifact at {path} is missing; it cannot be loaded")
    files = manifest(path)
    got = checksum_of_manifest(files)
    if got == expected:
        return
    detail = ""
    if manifest_path is not None and manifest_path.is_file():
        recorded = {k: (int(v[0]), str(v[1])) for k, v in json.loads(manifest_path.read_text()).items()}
        changed = sorted(k for k in files.keys() & recorded.keys() if files[k] != recorded[k])
        added = sorted(files.keys() - recorded.keys())
        lost = sorted(recorded.keys() - files.keys())
        parts = [
            f"{label}: {', '.join(names)}"
            for label, names in (("changed", changed), ("added", added), ("missing", lost))
            if names
        ]
        detail = f" ({'; '.join(parts)})" if parts else ""
    raise ArtifactError(
        f"{what}: the artifact at {path} does not match its checksum (expected sha256 {expected[:12]}…, "
        f"found {got[:12]}…){detail}; it was modified after registration and will not be loaded"
    )
