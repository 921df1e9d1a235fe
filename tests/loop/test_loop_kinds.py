"""`rewardloop loop run --once` for a router and a reranker: bootstrap, then a challenger that passes
the gate (canary) or is stopped; every step recorded (runs, versions with lineage, gate, experiment)."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from rewardloop.cli.main import app
from rewardloop.loop.reranker_loop import pairwise_accuracy
from rewardloop.registry import Registry
from rewardloop.rewards import PreferencePair
from rewardloop.store import Store, read_runs, write_decisions, write_feedback
from rewardloop.types import Decision, Feedback

runner = CliRunner()
ARMS = ["small", "large"]


def yaml_text(kind: str, labels: list[str], options: dict[str, object], gate: str = "") -> str:
    return "\n".join(
        [
            "store:",
            "  url: sqlite:///rl.db",
            "policies:",
            "  - name: p",
            f"    kind: {kind}",
            f"    labels: {json.dumps(labels)}",
            f"    options: {json.dumps(options)}",
            "rewards:",
            "  - name: thumbs",
            "    function: accuracy",
            "training:",
            "  policy: p",
            "  reward_spec: thumbs",
            "  output_dir: artifacts",
            "evaluation:",
            "  gate:",
            *([f"    {gate}"] if gate else ["    min_accuracy: null"]),
            "experiments:",
            "  registry_root: registry",
            "  min_samples: 5",
        ]
    )


@pytest.fixture
def project(tmp_path, monkeypatch):
    torch.set_num_threads(1)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REWARDLOOP_STORE__URL", raising=False)
    return tmp_path


def open_store(project) -> Store:
    return Store.open(f"sqlite:///{project / 'rl.db'}")


def run_once(expected: str) -> str:
    result = runner.invoke(app, ["loop", "run", "--once"])
    assert result.exit_code == 0, result.output
    assert expected in result.output, result.output
    return result.output


# ----------------------------------------------------------------------------------------- routers


def write_rated(store: Store, version: str, rows: list[tuple[str, float, tuple[float, ...], bool]]) -> None:
    """One logged router decision per ``(arm, pscore, features, hit)``, rated 1 on a hit, else 0."""
    decisions, feedback = [], []
    for arm, pscore, features, hit in rows:
        other = (1 - pscore) / (len(ARMS) - 1)
        d = Decision(
            policy="p",
            policy_version=version,
            kind="router",
            actions=tuple(ARMS),
            action=arm,
            action_dist=tuple(pscore if a == arm else other for a in ARMS),
            pscore=pscore,
            features=features,
        )
        decisions.append(d)
        feedback.append(
            Feedback(decision_id=d.id, kind="rating", value=float(hit), scale=(0, 1), rater_id="u")
        )
    write_decisions(store, decisions)
    write_feedback(store, feedback)


def log_router(store: Store, version: str, n: int, good: dict[str, float]) -> None:
    """``n`` decisions alternating between the arms (uniform, propensity 0.5), each arm rewarded 1
    on the share ``good[arm]`` of its decisions (every fifth row, deterministically)."""
    rows = [(ARMS[i % 2], 0.5, (1.0,), (i // 2) % 5 < round(good[ARMS[i % 2]] * 5)) for i in range(n)]
    write_rated(store, version, rows)


ROUTER = {"algorithm": "epsilon_greedy", "params": {"epsilon": 0.1}}


@pytest.mark.parametrize(
    ("old", "new", "expected", "ope_sign"),
    [
        # the app's early logs agree with the champion's traffic: "large" is better, the replayed
        # challenger routes to it and its OPE lower bound clears the champion's logged value
        ((10, {"small": 0.2, "large": 0.8}), {"small": 0.2, "large": 0.8}, "canary: 1.0.1 passed", 1),
        # many old logs where "small" was better; the champion's traffic says "large" now: the
        # challenger replayed on all of them prefers "small", worse on the champion's traffic
        ((200, {"small": 1.0, "large": 0.0}), {"small": 0.0, "large": 1.0}, "gated: 1.0.1 stopped", -1),
    ],
)
def test_router_bootstrap_then_challenger_gated_by_ope(project, old, new, expected, ope_sign):
    (project / "rewardloop.yaml").write_text(
        yaml_text("router", ARMS, ROUTER, "min_ope_lower_vs_champion: 0.0")
    )
    store = open_store(project)
    log_router(store, "app-0", *old)
    run_once("bootstrapped: 1.0.0 trained and activated as the first champion")
    log_router(store, "1.0.0", 40, new)
    output = run_once(expected)
    assert "ope_lower_vs_champion" in output

    runs = read_runs(store, policy="p")
    assert [r.status for r in runs] == ["succeeded", "succeeded"]
    assert [r.n_samples for r in runs] == [0, old[0] + 40]  # the first at its priors; then replayed
    assert runs[1].learner == "router.epsilon_greedy"
    registry = Registry(store, project / "registry")
    versions = registry.versions("p")
    assert [(v.version, v.parent_version, v.kind) for v in versions] == [
        ("1.0.0", None, "router"),
        ("1.0.1", "1.0.0", "router"),
    ]
    assert versions[1].training_run_id == runs[1].id
    assert versions[1].metrics["train/rows"] == old[0] + 40
    passed = ope_sign > 0
    assert registry.aliases("p") == (
        {"champion": "1.0.0", "challenger": "1.0.1"} if passed else {"champion": "1.0.0"}
    )
    if passed:  # the gate report travels with the experiment
        third = run_once("held")
        assert "1.0.1" in third


def log_contextual(store: Store, version: str, n: int, seed: int) -> None:
    """``n`` rated router decisions with 3 random features; "large" is rewarded when the first
    feature is positive, "small" otherwise; a third of the arms were logged with propensity 0.8."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        x = rng.normal(size=3)
        arm = ARMS[i % 2]
        rows.append(
            (arm, 0.8 if i % 3 == 0 else 0.5, tuple(float(v) for v in x), (x[0] > 0) == (arm == "large"))
        )
    write_rated(store, version, rows)


NEEDS_RAY = pytest.mark.skipif(
    importlib.util.find_spec("ray") is None, reason="Ray is not installed: pip install 'rewardloop[ray]'"
)


@pytest.mark.parametrize(
    "backend",
    # on Ray the loop starts a local Ray for the replay (2 CPUs) and stops it after: slow
    ["local", pytest.param("ray", marks=[pytest.mark.slow, NEEDS_RAY])],
)
def test_router_loop_replays_in_replay_partitions_parts_equal_to_one_pass(project, monkeypatch, backend):
    from rewardloop.cli.loop_cmds import build_runner
    from rewardloop.config import load_config
    from rewardloop.learners.bandits import load_router
    from rewardloop.learners.base import DataSpec
    from rewardloop.loop.compute import ComputeBackend

    mapped: list[int] = []  # the parts each replay handed to the compute backend
    real = ComputeBackend.map_parts
    monkeypatch.setattr(
        ComputeBackend,
        "map_parts",
        lambda self, fn, shared, parts: mapped.append(len(parts)) or real(self, fn, shared, parts),
    )

    text = yaml_text("router", ARMS, {"algorithm": "linucb", "features": "numeric"})
    compute = f"\ncompute:\n  replay_partitions: 3\n  backend: {backend}\n"
    (project / "rewardloop.yaml").write_text(text + compute)
    store = open_store(project)
    log_contextual(store, "app-0", 50, seed=1)
    run_once("bootstrapped: 1.0.0")
    log_contextual(store, "1.0.0", 41, seed=2)
    run_once("1.0.1")

    assert mapped == [3]  # the first version is at its priors: no replay
    runs = read_runs(store, policy="p")
    assert runs[1].n_samples == 91
    assert (runs[1].config["partitions"], runs[1].config["backend"]) == (3, backend)
    registry = Registry(store, project / "registry")
    parts = load_router(registry.artifact_path("p@1.0.1"))

    # the one-pass replay of the same logs from the same priors, outside the loop
    cfg = load_config(project / "rewardloop.yaml")
    one_pass = build_runner(
        cfg.model_copy(update={"compute": cfg.compute.model_copy(update={"replay_partitions": 1})}), store
    )
    batch = one_pass.logs()
    feats = one_pass.features(batch)
    router = one_pass.new_router(feats)
    rows = router.data_from_batch(batch, DataSpec(features=feats))
    one = one_pass.replay(router, rows)
    assert mapped == [3]  # one part: the one-pass replay, not the backend
    assert one.n_pulls_.tolist() == parts.n_pulls_.tolist() and int(one.n_pulls_.sum()) == 91
    assert np.max(np.abs(parts.A_inv_ - one.A_inv_)) <= 1e-9
    assert np.max(np.abs(parts.theta_ - one.theta_)) <= 1e-9
    assert np.max(np.abs(one.theta_)) > 0.01  # the replay moved the state: the comparison is not of priors


def test_router_loop_on_ray_without_ray_says_how_to_install(project, monkeypatch):
    import sys

    text = yaml_text("router", ARMS, {"algorithm": "linucb", "features": "numeric"})
    (project / "rewardloop.yaml").write_text(text + "\ncompute:\n  replay_partitions: 2\n  backend: ray\n")
    store = open_store(project)
    log_contextual(store, "app-0", 20, seed=1)
    run_once("bootstrapped: 1.0.0")  # the priors need no replay, so no Ray
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    result = runner.invoke(app, ["loop", "run", "--once"])
    assert result.exit_code != 0
    assert "compute: compute.backend ray needs Ray: pip install 'rewardloop[ray]'" in result.output
    assert [r.status for r in read_runs(store, policy="p")] == ["succeeded", "failed"]
    assert [v.version for v in Registry(store, project / "registry").versions("p")] == ["1.0.0"]


def test_router_options_are_checked(project):
    (project / "rewardloop.yaml").write_text(yaml_text("router", ARMS, {"algorithm": "nope"}))
    result = runner.invoke(app, ["loop", "run", "--once"])
    assert result.exit_code != 0
    assert "policies (p): options.algorithm: unknown router 'nope'" in result.output
    (project / "rewardloop.yaml").write_text(yaml_text("router", ARMS, {"alpah": 1}))
    result = runner.invoke(app, ["loop", "run", "--once"])
    assert "policies (p): options.alpah: not a router option" in result.output


# --------------------------------------------------------------------------------------- rerankers

GOOD = [
    "a wonderful, clear and helpful answer",
    "great, accurate and friendly reply",
    "excellent explanation",
]
BAD = ["awful, useless and rude junk", "terrible wrong nonsense", "horrible unhelpful garbage"]


def log_rated(store: Store, n: int, truthful: bool, start: int = 0) -> None:
    """``n`` two-candidate decisions that chose the good (even rows) or the bad answer (odd rows),
    rated 5 / 1 on (1, 5) when ``truthful``, the other way round when not."""
    decisions, feedback = [], []
    for i in range(start, start + n):
        good, bad = GOOD[i % 3], BAD[i % 3]
        chosen_good = i % 2 == 0
        d = Decision(
            policy="p",
            policy_version="app-0",
            kind="reranker",
            actions=("c0", "c1"),
            action="c0" if chosen_good else "c1",
            action_dist=(0.5, 0.5),
            pscore=0.5,
            text=f"question {i}",
            candidates=(good, bad),
        )
        rating = 5.0 if chosen_good == truthful else 1.0
        decisions.append(d)
        feedback.append(Feedback(decision_id=d.id, kind="rating", value=rating, scale=(1, 5), rater_id="r"))
    write_decisions(store, decisions)
    write_feedback(store, feedback)


def log_preferences(store: Store, n: int) -> None:
    """``n`` decisions on which a rater preferred the good candidate: the held-out pairs."""
    decisions, feedback = [], []
    for i in range(n):
        d = Decision(
            policy="p",
            policy_version="app-0",
            kind="reranker",
            actions=("c0", "c1"),
            action="c1",
            action_dist=(0.5, 0.5),
            pscore=0.5,
            text=f"held-out question {i}",
            candidates=(GOOD[(i + 1) % 3], BAD[(i + 2) % 3]),
        )
        decisions.append(d)
        feedback.append(
            Feedback(decision_id=d.id, kind="preference", preferred="c0", rejected="c1", rater_id="j")
        )
    write_decisions(store, decisions)
    write_feedback(store, feedback)


@pytest.mark.parametrize(
    ("first_truthful", "expected"),
    [
        (False, "canary: 1.0.1 passed"),  # a champion fitted on flipped ratings; truthful ones follow
        (True, "gated: 1.0.1 stopped"),  # a good champion; a flood of flipped ratings follows
    ],
)
def test_reranker_bootstrap_then_challenger_gated_on_held_out_pairs(project, first_truthful, expected):
    (project / "rewardloop.yaml").write_text(yaml_text("reranker", [], {"threshold": 0.5}))
    store = open_store(project)
    log_rated(store, 12, truthful=first_truthful)
    log_preferences(store, 9)
    run_once("bootstrapped: 1.0.0 trained and activated as the first champion")
    log_rated(store, 36, truthful=not first_truthful, start=12)
    output = run_once(expected)
    assert "pairwise_accuracy_vs_champion" in output

    runs = read_runs(store, policy="p")
    assert [(r.status, r.n_samples) for r in runs] == [("succeeded", 12), ("succeeded", 48)]
    registry = Registry(store, project / "registry")
    versions = registry.versions("p")
    assert [(v.version, v.parent_version, v.kind) for v in versions] == [
        ("1.0.0", None, "reranker"),
        ("1.0.1", "1.0.0", "reranker"),
    ]
    assert versions[1].training_run_id == runs[1].id
    assert versions[1].metrics["heldout/pairs"] == 9
    champion_acc = versions[0].metrics["heldout/pairwise_accuracy"]
    challenger_acc = versions[1].metrics["heldout/pairwise_accuracy"]
    assert (challenger_acc > champion_acc) is (not first_truthful)
    passed = not first_truthful
    assert registry.aliases("p") == (
        {"champion": "1.0.0", "challenger": "1.0.1"} if passed else {"champion": "1.0.0"}
    )


class _Lengthy:
    """Scores an answer by its length: a hand-checkable model."""

    def score(self, prompt: str, candidates: list[str]) -> np.ndarray:
        return np.array([len(c) for c in candidates], dtype=float)


def test_pairwise_accuracy_is_the_weighted_share_of_pairs_ordered_right():
    pairs = [
        PreferencePair("q", "long answer", "short", 1.0),  # right
        PreferencePair("q", "tiny", "much longer", 3.0),  # wrong
        PreferencePair("q", "same", "same", 1.0),  # a tie is not a hit
    ]
    assert pairwise_accuracy(_Lengthy(), pairs) == pytest.approx(1.0 / 5.0)
    assert np.isnan(pairwise_accuracy(_Lengthy(), []))


def test_a_reranker_gate_without_held_out_pairs_fails_and_says_so(project):
    (project / "rewardloop.yaml").write_text(yaml_text("reranker", [], {}))
    store = open_store(project)
    log_rated(store, 12, truthful=True)
    run_once("bootstrapped")
    log_rated(store, 4, truthful=True, start=12)
    output = run_once("gated: 1.0.1 stopped at the gate (pairwise_accuracy_vs_champion)")
    assert "pairwise_accuracy_vs_champion: None (threshold 0.0)" in output


@pytest.mark.parametrize(
    ("kind", "options", "message"),
    [
        ("reranker", {"treshold": 0.5}, "policies (p): options.treshold: not a reranker option"),
        (
            "router",
            {"algorithm": "epsilon_greedy", "n_features": 1, "params": {"alfa": 1}},
            "options: cannot build",
        ),
        ("router", {"algorithm": "epsilon_greedy"}, "options.n_features: no logged decision has features"),
        ("generator", {}, "training.policy: 'p' is a generator; `loop run` does not retrain generators yet"),
    ],
)
def test_bad_options_are_named(project, kind, options, message):
    (project / "rewardloop.yaml").write_text(yaml_text(kind, ARMS if kind == "router" else [], options))
    result = runner.invoke(app, ["loop", "run", "--once"])
    assert result.exit_code != 0
    assert message in " ".join(result.output.split()), result.output


def test_too_few_ratings_is_an_error_and_the_run_is_recorded_failed(project):
    (project / "rewardloop.yaml").write_text(yaml_text("reranker", [], {"min_samples": 20}))
    store = open_store(project)
    log_rated(store, 12, truthful=True)
    result = runner.invoke(app, ["loop", "run", "--once"])
    assert result.exit_code != 0
    assert "needs at least 20 rated samples" in " ".join(result.output.split()), result.output
    assert [r.status for r in read_runs(store, policy="p")] == ["failed"]
