"""How long the CLI takes to answer ``--help``: the interface's import time.

Runs each command 5 times in a fresh interpreter (as a shell or tab completion would) and prints the
median wall time, beside the reference of a bare ``python -c pass`` measured in the same run (the
interpreter's own start-up, the floor no command can go below). Target: ``rewardloop --help`` and
``rewardloop stats --help`` in ≤ 0.5 s.

    python benchmarks/cli.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[1] / "src")


def wall_times(args: list[str], repeats: int) -> list[float]:
    env = {**os.environ, "PYTHONPATH": SRC}
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, *args], check=True, capture_output=True, env=env)
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    repeats = parser.parse_args().repeats
    load = os.getloadavg()[0]
    cases = {
        "python_start_s": ["-c", "pass"],
        "help_s": ["-m", "rewardloop", "--help"],
        "version_s": ["-m", "rewardloop", "--version"],
        "stats_help_s": ["-m", "rewardloop", "stats", "--help"],
        "train_help_s": ["-m", "rewardloop", "train", "--help"],
    }
    figures: dict[str, float] = {}
    print(f"load average {load:.2f}; medians of {repeats} runs")
    for key, args in cases.items():
        times = wall_times(args, repeats)
        figures[key] = round(statistics.median(times), 3)
        target = " (target ≤ 0.5 s)" if key in ("help_s", "stats_help_s") else ""
        print(f"  {' '.join(args):<36} {figures[key]:.3f} s  (min {min(times):.3f}){target}")
    print(json.dumps({**figures, "load_average": round(load, 2), "repeats": repeats}))


if __name__ == "__main__":
    main()
