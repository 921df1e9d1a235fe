"""Keys, the key cache, group commit and the dashboard's summaries, on tiny hand-computed cases."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from rewardloop.evaluation.metrics import expected_calibration_error
from rewardloop.service import panels
from rewardloop.service.feedback_writer import FeedbackRejected, FeedbackWriter
from rewardloop.service.middleware import Metrics
from rewardloop.service.security import KeyCache
from rewardloop.store import Store, log_decision, read_feedback
from rewardloop.store.apikeys import (
    ApiKeyError,
    authenticate,
    create_api_key,
    hash_key,
    list_api_keys,
    resolve_scopes,
    revoke_api_key,
)
from rewardloop.store.insights import decision_projects, export_rows, recent_decisions
from rewardloop.store.tables import ApiKeyRow
from rewardloop.types import Decision, DecisionBatch, Feedback, TimeWindow


def dec(action: str = "a", conf: float = 0.8, project: str | None = "acme", **kw: object) -> Decision:
    meta = {"project": project} if project else {}
    return Decision(
        policy=kw.pop("policy", "p"), policy_version="1", kind=kw.pop("kind", "classifier"),  # type: ignore[arg-type]
        actions=("a", "b"), action=action,
        action_dist=(conf, 1 - conf) if action == "a" else (1 - conf, conf),
        pscore=conf, metadata=meta, **kw,  # type: ignore[arg-type]
    )  # fmt: skip


# ------------------------------------------------------------------------------------------ API keys


def test_keys_are_stored_hashed_and_checked(store: Store) -> None:
    key, secret = create_api_key(store, "ci", "acme", role="client", scopes=["read"])
    assert key.scopes == ("decide", "feedback", "read")
    with store.engine.connect() as conn:
        (stored,) = conn.execute(select(ApiKeyRow.key_hash)).scalars()
    assert stored == hash_key(secret) and secret not in stored
    assert authenticate(store, secret) == key
    assert authenticate(store, secret + "x") is None
    assert authenticate(store, "not-a-key") is None
    revoke_api_key(store, key.id)
    assert authenticate(store, secret) is None
    assert list_api_keys(store) == [] and len(list_api_keys(store, include_revoked=True)) == 1
    with pytest.raises(ApiKeyError, match="id: no active key"):
        revoke_api_key(store, key.id)


@pytest.mark.parametrize(
    "scopes,role,message",
    [(["fly"], None, "scopes: unknown scope 'fly'"), ([], "boss", "role: unknown role 'boss'"),
     ([], None, "scopes: a key needs at least one scope")],
)  # fmt: skip
def test_bad_scopes(scopes: list[str], role: str | None, message: str) -> None:
    with pytest.raises(ApiKeyError, match=message):
        resolve_scopes(scopes, role)


def test_key_cache_expires() -> None:
    now = [100.0]
    cache = KeyCache(ttl=5.0, clock=lambda: now[0])
    key = object()
    cache.put("h", key)  # type: ignore[arg-type]
    assert cache.get("h") is key
    now[0] = 105.1
    assert cache.get("h") is None
    assert KeyCache(ttl=0.0).get("h") is None


# ------------------------------------------------------------------------------------- group commit


def test_group_commit_answers_each_request_and_stores_exactly_the_acknowledged(store: Store) -> None:
    mine, theirs = dec(), dec(project="other")
    for d in (mine, theirs):
        log_decision(store, d)
    metrics = Metrics()
    writer = FeedbackWriter(store, group_commit=True, max_batch=64, metrics=metrics)
    good = [Feedback(decision_id=mine.id, kind="implicit", value=1) for _ in range(20)]
    bad = [
        Feedback(decision_id="missing", kind="implicit", value=1),
        Feedback(decision_id=theirs.id, kind="implicit", value=1),  # another project's decision
    ]

    async def run() -> list[BaseException | None]:
        await writer.start()
        try:
            return await asyncio.gather(
                *(writer.submit(f, "acme") for f in good + bad), return_exceptions=True
            )
        finally:
            await writer.stop()

    results = asyncio.run(run())
    assert results[:20] == [None] * 20
    for r in results[20:]:
        assert isinstance(r, FeedbackRejected) and r.status == 404 and r.field == "decision_id"
    assert sorted(f.id for f in read_feedback(store)) == sorted(f.id for f in good)
    # Concurrent requests shared commits: fewer commits than requests.
    commits = metrics.registry.get_sample_value("rewardloop_commit_rows_count", {"writer": "feedback"})
    assert commits is not None and commits < 22


def test_decision_group_commit_dedups_and_queues(store: Store) -> None:
    from rewardloop.loop.review import ReviewPolicy
    from rewardloop.service.decision_writer import DecisionJob, DecisionWriter

    theirs = dec(project="other", idempotency_key="k-other")
    log_decision(store, theirs)
    first = dec(conf=0.6, idempotency_key="k1")
    again = dec(conf=0.6, idempotency_key="k1")  # a retry of the same request, in the same batch
    sure = dec(conf=0.9)
    stolen = dec(idempotency_key="k-other")  # another project's key
    writer = DecisionWriter(store, ReviewPolicy(confidence_below=0.7))

    async def run() -> list[object]:
        await writer.start()
        try:
            jobs = [DecisionJob(d, "acme") for d in (first, again, sure, stolen)]
            return await asyncio.gather(*(writer.submit(j) for j in jobs), return_exceptions=True)
        finally:
            await writer.stop()

    a, b, c, d = asyncio.run(run())
    assert (a.decision_id, a.new, a.review_reason) == (first.id, True, "low_confidence")  # type: ignore[union-attr]
    assert (b.decision_id, b.new, b.review_reason) == (first.id, False, None)  # type: ignore[union-attr]
    assert (c.decision_id, c.new, c.review_reason) == (sure.id, True, None)  # type: ignore[union-attr]
    assert isinstance(d, FeedbackRejected) and d.status == 409
    from rewardloop.store import read_decisions
    from rewardloop.store.review import review_counts

    assert {x.id for x in read_decisions(store)} == {theirs.id, first.id, sure.id}
    assert review_counts(store, "acme")["open"] == 1


def test_direct_write_without_group_commit(store: Store) -> None:
    d = dec()
    log_decision(store, d)
    writer = FeedbackWriter(store, group_commit=False)
    asyncio.run(writer.submit(Feedback(decision_id=d.id, kind="correction", label="b"), "acme"))
    with pytest.raises(FeedbackRejected, match="no decision 'nope' in this project"):
        asyncio.run(writer.submit(Feedback(decision_id="nope", kind="correction", label="b"), "acme"))
    assert len(read_feedback(store)) == 1


# ----------------------------------------------------------------------------------- project reads


def test_project_reads(store: Store) -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    a, b, legacy = dec(created_at=t0), dec(project="other", created_at=t0), dec(project=None, created_at=t0)
    for d in (a, b, legacy):
        log_decision(store, d)
    assert decision_projects(store, [a.id, b.id, legacy.id, "x"]) == {
        a.id: "acme",
        b.id: "other",
        legacy.id: "default",
    }
    assert recent_decisions(store, "acme").ids == [a.id]
    f1 = Feedback(decision_id=a.id, kind="correction", label="b", created_at=t0 + timedelta(hours=1))
    f2 = Feedback(decision_id=a.id, kind="implicit", value=1, created_at=t0 + timedelta(hours=2))
    f3 = Feedback(decision_id=b.id, kind="implicit", value=1, created_at=t0 + timedelta(hours=2))
    from rewardloop.store import write_feedback

    write_feedback(store, [f1, f2, f3])
    rows = list(export_rows(store, "acme"))
    assert [r["feedback_id"] for r in rows] == [f1.id, f2.id]
    assert rows[0]["feedback_at"] == "2026-01-01T01:00:00+00:00" and rows[0]["action"] == "a"
    late = list(export_rows(store, "acme", window=TimeWindow(t0 + timedelta(hours=1, minutes=30))))
    assert [r["feedback_id"] for r in late] == [f2.id]


# -------------------------------------------------------------------------------- dashboard panels


def batch_of(pairs: list[tuple[Decision, list[Feedback]]]) -> DecisionBatch:
    return DecisionBatch([d for d, _ in pairs], {d.id: f for d, f in pairs if f})


def correction(d: Decision, label: str, minutes: int = 0) -> Feedback:
    return Feedback(
        decision_id=d.id,
        kind="correction",
        label=label,
        created_at=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes),
    )


def test_accuracy_and_calibration_by_hand() -> None:
    d1, d2, d3, d4 = dec("a", 0.95), dec("a", 0.9), dec("b", 0.65), dec("a", 0.6)
    batch = batch_of([
        (d1, [correction(d1, "a")]),                      # right, conf 0.95 (bin 9)
        (d2, [correction(d2, "a"), correction(d2, "b", 5)]),  # the latest: wrong (b), conf 0.9 (bin 9)
        (d3, [correction(d3, "b")]),                      # right, conf 0.65 (bin 6)
        (d4, []),                                         # not judged
    ])  # fmt: skip
    acc = panels.accuracy(batch)
    assert (acc["overall"], acc["judged"], acc["decisions"]) == (pytest.approx(2 / 3), 3, 4)
    assert [{k: c[k] for k in ("category", "accuracy", "n")} for c in acc["categories"]] == [
        {"category": "a", "accuracy": 1.0, "n": 1},
        {"category": "b", "accuracy": 0.5, "n": 2},
    ]
    # each with its Wilson interval: 1/1 → [0.2065, 1], 1/2 → [0.0945, 0.9055]
    rates = [c["rate"] for c in acc["categories"]]
    assert [(r["successes"], r["n"], round(r["low"], 4), round(r["high"], 4)) for r in rates] == [
        (1, 1, 0.2065, 1.0),
        (1, 2, 0.0945, 0.9055),
    ]
    cal = panels.calibration(batch, n_bins=10)
    # bins (k/10, (k+1)/10], as `rewardloop eval` (Guo et al. 2017): 0.9 falls in (0.8, 0.9]
    assert [(b["bin"], b["n"]) for b in cal["bins"]] == [(6, 1), (8, 1), (9, 1)]
    # ECE = 1/3·|1 − 0.65| + 1/3·|0 − 0.9| + 1/3·|1 − 0.95|
    assert cal["ece"] == pytest.approx(1.3 / 3)
    # one ECE: the dashboard's equals the evaluation layer's, with the config's bins by default
    conf, hit = [0.95, 0.9, 0.65], [1.0, 0.0, 1.0]
    assert panels.calibration(batch)["ece"] == pytest.approx(expected_calibration_error(conf, hit))
    assert panels.calibration(batch, n_bins=10)["ece"] == expected_calibration_error(conf, hit, 10)
    wrong = panels.misclassifications(batch)
    assert [(w["decision_id"], w["predicted"], w["correct"]) for w in wrong] == [(d2.id, "a", "b")]


def test_scores_latency_and_leaderboard_by_hand() -> None:
    r1 = dec("a", 0.5, kind="router", latency_ms=10.0)
    r2 = dec("a", 0.5, kind="router", latency_ms=30.0)
    r3 = dec("b", 0.5, kind="router", latency_ms=20.0)
    rating = Feedback(decision_id=r1.id, kind="rating", value=4, scale=(1, 5), authority=1.0)  # 0.75
    low = Feedback(decision_id=r1.id, kind="implicit", value=0, authority=0.5)  # 0.0
    assert panels.decision_score(r1, [rating, low]) == pytest.approx(0.75 / 1.5)
    batch = batch_of(
        [(r1, [rating, low]), (r2, []), (r3, [Feedback(decision_id=r3.id, kind="implicit", value=1)])]
    )
    board = panels.leaderboard(batch)
    assert [
        (r["action"], r["decisions"], r["judged"], r["mean_score"], r["mean_latency_ms"]) for r in board
    ] == [
        ("b", 1, 1, 1.0, 20.0),
        ("a", 2, 1, pytest.approx(0.5), 20.0),
    ]
    (lat,) = panels.latency(batch)
    assert (lat["p50"], lat["p99"]) == (20.0, pytest.approx(29.8))  # linear interpolation over 10, 20, 30
    multi = Feedback(decision_id=r2.id, kind="multilevel", scores={"x": 2, "y": 4}, scale=(0, 4))
    assert panels.feedback_score(r2, multi) == pytest.approx(0.75)
    pref = Feedback(decision_id=r2.id, kind="preference", preferred="a", rejected="b")
    assert panels.feedback_score(r2, pref) is None


def test_feedback_volume_buckets_by_hour() -> None:
    now = datetime(2026, 1, 1, 12, 30, tzinfo=UTC)
    d = dec()
    rows = [
        Feedback(decision_id=d.id, kind="implicit", value=1, created_at=now - timedelta(minutes=10)),
        Feedback(decision_id=d.id, kind="implicit", value=1, created_at=now - timedelta(minutes=20)),
        Feedback(decision_id=d.id, kind="correction", label="a", created_at=now - timedelta(hours=2)),
        Feedback(decision_id=d.id, kind="implicit", value=1, created_at=now - timedelta(hours=30)),  # too old
    ]
    vol = panels.feedback_volume(DecisionBatch([d], {d.id: rows}), hours=4, now=now)
    assert vol["hours"][-1] == "2026-01-01T12:00:00+00:00"
    assert vol["kinds"] == {"correction": [0, 1, 0, 0], "implicit": [0, 0, 0, 2]} and vol["total"] == 3


# ------------------------------------------------------------------------------------------- the CLI


def test_keys_cli_and_serve_refuses_workers_on_sqlite(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from rewardloop.cli.main import app

    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    made = runner.invoke(app, ["keys", "create", "--name", "ann", "--role", "reviewer", "--project", "acme"])
    assert made.exit_code == 0, made.output
    secret = made.output.strip().splitlines()[-1]
    assert secret.startswith("rl_") and "read, review" in made.output
    listed = runner.invoke(app, ["keys", "list"])
    assert "ann" in listed.output and secret not in listed.output and "1 key(s)" in listed.output
    bad = runner.invoke(app, ["keys", "create", "--name", "x", "--scope", "fly"])
    assert bad.exit_code == 2 and "'fly' is not one of 'decide', 'feedback'" in bad.output
    store = Store.open(f"sqlite:///{tmp_path / 'rewardloop.db'}")
    key_id = list_api_keys(store)[0].id
    store.close()
    assert runner.invoke(app, ["keys", "revoke", key_id]).exit_code == 0
    again = runner.invoke(app, ["keys", "revoke", key_id])
    assert again.exit_code == 3 and "no active key" in again.output  # not found
    serve = runner.invoke(app, ["serve", "--workers", "2"])
    assert serve.exit_code == 2 and "several workers need PostgreSQL" in serve.output
