"""Two processes moving the same alias at once: exactly one wins each round (issue 13, item 7).

Before the fix, SQLite let both win in about 6 of 30 rounds: the sqlite3 driver began the transaction
only at the first write, so the compare ran outside it.
"""

from __future__ import annotations

import itertools
import multiprocessing as mp
from pathlib import Path

from rewardloop.registry import Registry
from rewardloop.store import Store
from rewardloop.store.registry import AliasConflict, get_alias, move_alias, read_alias_events
from rewardloop.types import AliasEvent

ROUNDS = 30
VERSIONS = ("1.0.0", "1.0.1", "1.0.2")


def _racer(url: str, who: int, barrier, results) -> None:  # type: ignore[no-untyped-def]
    store = Store.open(url, migrate=False)
    try:
        for r in range(ROUNDS):
            barrier.wait()
            current = get_alias(store, "intent", "champion")
            target = [v for v in VERSIONS if v != current][who]
            barrier.wait()  # both have read the alias before either moves it
            try:
                move_alias(
                    store,
                    AliasEvent(
                        policy="intent",
                        alias="champion",
                        from_version=current,
                        to_version=target,
                        action="promote",
                        actor=f"racer-{who}",
                    ),
                )
                results.put((r, who, True))
            except AliasConflict:
                results.put((r, who, False))
    finally:
        store.close()


def test_two_processes_promoting_at_once_never_both_win(store, tmp_path: Path):
    reg = Registry(store, tmp_path / "registry")
    for v in VERSIONS:
        art = tmp_path / "src" / v
        art.mkdir(parents=True)
        (art / "w.json").write_text(v)
        reg.register("intent", art, kind="classifier", version=v)
    reg.activate("intent@1.0.0")
    url = store.engine.url.render_as_string(hide_password=False)
    ctx = mp.get_context("fork")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_racer, args=(url, who, barrier, results)) for who in (0, 1)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=120) for _ in range(2 * ROUNDS)]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    wins = {r: sum(won for rr, _, won in outcomes if rr == r) for r in range(ROUNDS)}
    both = [r for r, n in wins.items() if n != 1]
    assert both == [], f"rounds where not exactly one process won: {both}"
    # The history is one chain: every move starts where the previous one ended.
    events = read_alias_events(store, "intent", "champion")
    assert len(events) == 1 + ROUNDS
    for before, after in itertools.pairwise(events):
        assert after.from_version == before.to_version
