"""Peak memory of ``rewardloop export`` to Parquet and ``rewardloop import`` of a Parquet file.

Builds a SQLite store with ``--rows`` decisions (each with one feedback row) and a Parquet file of
``--rows`` decisions, then runs, each in a fresh process of the code under ``--src`` (default: this
checkout's), and reads that process's peak resident memory (``wait4``'s ``ru_maxrss``):

- ``baseline``: ``rewardloop stats`` on the same store (the imports and the store, no rows held);
- ``export``: ``rewardloop export out.parquet`` (every decision with its feedback);
- ``import``: ``rewardloop import decisions file.parquet`` into an empty store.

Run it with ``--src`` pointing at another checkout's ``src`` to compare (e.g. the code before the
streaming export and import). Ends with one JSON line.

    python benchmarks/export_memory.py [--rows 100000] [--src PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

BUILD = """
import sys
from datetime import UTC, datetime, timedelta
from rewardloop.store import Store, write_decisions, write_feedback
from rewardloop.store.files import write_rows

rows, db, parquet = int(sys.argv[1]), sys.argv[2], sys.argv[3]
labels = [f"topic_{k}" for k in range(10)]
t0 = datetime(2026, 11, 1, tzinfo=UTC)


def decision(i, prefix):
    a = i % 10
    dist = [0.1] * 10
    return {
        "id": f"{prefix}{i}", "policy": "news", "policy_version": "1", "kind": "classifier",
        "actions": labels, "action": labels[a], "action_dist": dist, "pscore": 0.1,
        "text": f"a news article about topic {a}, number {i}, with a few more words of text",
        "metadata": {"user_id": f"u{i % 977}", "source": "bench"},
        "created_at": (t0 + timedelta(seconds=i)).isoformat(),
    }


store = Store.open(f"sqlite:///{db}")
step = 20_000
for start in range(0, rows, step):
    chunk = range(start, min(rows, start + step))
    write_decisions(store, [decision(i, "d") for i in chunk])
    write_feedback(store, [{"id": f"f{i}", "decision_id": f"d{i}", "kind": "implicit", "value": i % 2}
                           for i in chunk])
write_rows((decision(i, "p") for i in range(rows)), parquet)
"""


def run(src: Path, args: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    """Run one command of the code under ``src``; (its peak RSS in MB, its output)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "from rewardloop.cli.main import app; app()", *args],
        cwd=cwd,
        env={**env, "PYTHONPATH": str(src)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert proc.stdout is not None
    out = proc.stdout.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"`rewardloop {' '.join(args)}` failed:\n{out}")
    return usage.ru_maxrss / 1024, out  # KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--src", type=Path, default=Path(__file__).resolve().parents[1] / "src")
    a = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("REWARDLOOP_")}
    env["HF_HUB_OFFLINE"] = "1"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        db, parquet = work / "export.db", work / "decisions.parquet"
        build = subprocess.run(
            [sys.executable, "-c", BUILD, str(a.rows), str(db), str(parquet)],
            env={**env, "PYTHONPATH": str(a.src)},
            capture_output=True,
            text=True,
        )
        if build.returncode != 0:
            raise SystemExit(build.stderr)
        store_env = {**env, "REWARDLOOP_STORE__URL": f"sqlite:///{db}"}
        baseline, _ = run(a.src, ["stats"], work, store_env)
        export_mb, out = run(a.src, ["export", str(work / "out.parquet")], work, store_env)
        print(out.strip().splitlines()[-1])
        import_env = {**env, "REWARDLOOP_STORE__URL": f"sqlite:///{work / 'import.db'}"}
        import_mb, out = run(a.src, ["import", "decisions", str(parquet)], work, import_env)
        print(out.strip().splitlines()[-1])
        file_mb = parquet.stat().st_size / 2**20
    result = {
        "rows": a.rows,
        "src": str(a.src),
        "parquet_file_mb": round(file_mb, 1),
        "baseline_peak_mb": round(baseline, 1),
        "export_peak_mb": round(export_mb, 1),
        "import_peak_mb": round(import_mb, 1),
        "export_over_baseline_mb": round(export_mb - baseline, 1),
        "import_over_baseline_mb": round(import_mb - baseline, 1),
    }
    print(
        f"baseline {baseline:.0f} MB; export {export_mb:.0f} MB; "
        f"import of a {file_mb:.0f} MB file {import_mb:.0f} MB"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
