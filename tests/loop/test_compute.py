"""The compute backends: local and Ray give equal embeddings and bootstrap replicates for the same settings.

The Ray tests start a local Ray (``ray.init(num_cpus=2)``) and are skipped, saying so, where Ray is not
installed (``pip install 'rewardloop[ray]'``).
"""

from __future__ import annotations

import importlib.util
import json
import sys

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from rewardloop.cli.main import app
from rewardloop.config import ComputeConfig, ConfigError, parse_config
from rewardloop.evaluation.ope import bootstrap_means, bootstrap_partitions, evaluate_off_policy
from rewardloop.loop.compute import ComputeBackend, ComputeError, backfill_embeddings, read_embeddings
from rewardloop.store import Store, write_decisions
from rewardloop.types.records import Decision

HAS_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(not HAS_RAY, reason="Ray is not installed: pip install 'rewardloop[ray]'")
TEXTS = [f"turn {'on' if i % 2 else 'off'} the lights in room {i}" + " now" * (i % 4) for i in range(21)]


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'rewardloop[ray]'")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _logs(n=400, seed=3):
    rng = np.random.default_rng(seed)
    action = rng.integers(0, 3, n)
    return {
        "reward": (rng.random(n) < 0.3 + 0.2 * action).astype(float),
        "action": action,
        "pscore": np.full(n, 1 / 3),
        "action_dist": rng.dirichlet(np.ones(3), n),
    }


def test_local_partitions_are_the_parts_drawn_one_after_another():
    x = np.random.default_rng(0).random((2, 50))  # (m, n)
    backend = ComputeBackend(ComputeConfig(bootstrap_partitions=3))
    got = backend.bootstrap_means(x, 10, 7)
    parts = [bootstrap_means(x, b, seed) for b, seed in bootstrap_partitions(10, 7, 3)]
    assert got.shape == (2, 10)
    np.testing.assert_array_equal(got, np.concatenate(parts, axis=1))
    np.testing.assert_array_equal(backend.bootstrap_means(x[0], 10, 7), got[0])  # one series: (B,)


def test_one_partition_is_the_classic_report():
    logs = _logs()
    plain = evaluate_off_policy(**logs, n_bootstrap_samples=300, random_state=5)
    one = ComputeBackend(ComputeConfig(bootstrap_partitions=1))
    assert (
        evaluate_off_policy(**logs, n_bootstrap_samples=300, random_state=5, resample=one.bootstrap_means)
        == plain
    )


def test_ray_backend_without_ray_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    with pytest.raises(ComputeError, match=r"pip install 'rewardloop\[ray\]'"):
        ComputeBackend(ComputeConfig(backend="ray")).__enter__()


def test_the_compute_section_is_validated():
    from rewardloop.config.template import render_template

    assert "compute:\n  backend: local  # local: in this process; ray: on a Ray cluster" in render_template()
    assert parse_config({"compute": {"backend": "ray", "workers": 3}}, "t").compute.workers == 3
    with pytest.raises(ConfigError, match=r"compute\.backend"):
        parse_config({"compute": {"backend": "spark"}}, "t")
    with pytest.raises(ConfigError, match=r"compute\.workers"):
        parse_config({"compute": {"workers": 0}}, "t")


@needs_ray
def test_ray_bootstrap_equals_local(local_ray):
    logs = _logs()
    reports = []
    for name in ("local", "ray"):
        with ComputeBackend(ComputeConfig(backend=name, bootstrap_partitions=4)) as backend:
            reports.append(
                evaluate_off_policy(
                    **logs, n_bootstrap_samples=401, random_state=11, resample=backend.bootstrap_means
                )
            )
    assert reports[0] == reports[1]
    # Four parts with their own seeds are another (equally valid) bootstrap than the single stream.
    assert reports[0] != evaluate_off_policy(**logs, n_bootstrap_samples=401, random_state=11)


@needs_ray
def test_ray_embeddings_equal_local_bitwise(local_ray):
    cfg = {"batch_size": 8, "workers": 2}
    local = ComputeBackend(ComputeConfig(**cfg)).embed(TEXTS)
    with ComputeBackend(ComputeConfig(backend="ray", **cfg)) as backend:
        on_ray = backend.embed(TEXTS)
    assert local.shape == (21, 384)
    np.testing.assert_allclose(np.linalg.norm(local, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(on_ray, local)


@pytest.mark.slow  # Ray Tune's start-up and six trial processes: a minute on a loaded machine
@needs_ray
def test_tune_trials_reuse_their_worker_processes(local_ray):
    import os

    def trial(job, i):
        return {"trial": i, "value": job["scale"] * i, "pid": os.getpid()}

    job = {"scale": 3}
    with ComputeBackend(ComputeConfig(backend="ray", workers=2)) as backend:
        reused = backend.map_trials(trial, job, 5)
        fresh = backend.map_trials(trial, job, 3, reuse_workers=False)
    assert [o["value"] for o in reused] == [0, 3, 6, 9, 12]  # in trial order, as locally
    assert [o["value"] for o in fresh] == [0, 3, 6]
    assert ComputeBackend().map_trials(trial, job, 5) == [o | {"pid": os.getpid()} for o in reused]
    assert len({o["pid"] for o in reused}) <= 2  # at most `workers` processes for five trials
    assert len({o["pid"] for o in fresh}) == 3  # a process of its own for every trial


def _store_with_texts(tmp_path):
    url = f"sqlite:///{tmp_path / 'rl.db'}"
    store = Store.open(url)
    logged = {"policy": "intent", "policy_version": "1", "kind": "classifier", "actions": ("on", "off")}
    decisions = [
        Decision(**logged, action="on", action_dist=(0.5, 0.5), pscore=0.5, text=None if i == 3 else text)
        for i, text in enumerate(TEXTS[:10])
    ]
    write_decisions(store, decisions)
    return store, url, decisions


@needs_ray
def test_embed_command_writes_equal_files_on_both_backends(tmp_path, local_ray):
    store, url, decisions = _store_with_texts(tmp_path)
    store.close()
    config = tmp_path / "rewardloop.yaml"
    config.write_text(yaml.safe_dump({"store": {"url": url}, "compute": {"batch_size": 4}}))
    files = {}
    for name in ("local", "ray"):
        files[name] = tmp_path / f"{name}.parquet"
        res = CliRunner().invoke(
            app, ["embed", "-c", str(config), "--policy", "intent", "-o", str(files[name]), "--backend", name]
        )
        assert res.exit_code == 0, res.output
        summary = json.loads(res.output.strip().splitlines()[-1])
        assert summary["n_texts"] == 9 and summary["n_skipped"] == 1 and summary["backend"] == name
    ids, vectors = read_embeddings(files["local"])
    assert ids == [d.id for i, d in enumerate(decisions) if i != 3]
    ray_ids, ray_vectors = read_embeddings(files["ray"])
    assert ray_ids == ids
    np.testing.assert_array_equal(ray_vectors, vectors)
    np.testing.assert_array_equal(vectors[0], ComputeBackend(ComputeConfig()).embed([TEXTS[0]])[0])


def test_backfill_of_an_empty_selection_writes_an_empty_file(tmp_path):
    store, _, _ = _store_with_texts(tmp_path)
    result = backfill_embeddings(store, tmp_path / "e.parquet", ComputeBackend(), policy="nobody")
    store.close()
    assert (result.n_texts, result.n_skipped) == (0, 0)
    ids, vectors = read_embeddings(tmp_path / "e.parquet")
    assert ids == [] and vectors.shape == (0, 384)


def test_a_bad_backend_option_is_refused(tmp_path):
    res = CliRunner().invoke(app, ["embed", "-o", str(tmp_path / "e.parquet"), "--backend", "spark"])
    assert res.exit_code == 2 and "'spark' is not one of 'local', 'ray'" in res.output


def test_docstring_examples():
    import doctest

    from rewardloop.loop import compute

    result = doctest.testmod(compute)
    assert result.attempted > 0 and result.failed == 0


def _replay_log(n=600, seed=4):
    from rewardloop.learners.bandits.replay import LoggedRows

    rng = np.random.default_rng(seed)
    arms = ["a", "b", "c"]
    return LoggedRows(
        X=rng.normal(size=(n, 4)),
        arms=[arms[i] for i in rng.integers(0, 3, n)],
        rewards=rng.random(n),
        pscore=rng.uniform(0.2, 0.6, n),
        n_actions=np.full(n, 3.0),
        policies=["old"] * n,
        categories=[None] * n,
    )


@needs_ray
@pytest.mark.parametrize("algorithm", ["linucb", "lin_thompson", "beta_thompson"])
def test_ray_partitioned_replay_equals_local_replay(local_ray, algorithm):
    from rewardloop.learners.bandits import ROUTERS

    rows = _replay_log()
    cls = ROUTERS[algorithm]

    def make():
        return cls(["a", "b", "c"], dim=4) if cls.needs_context else cls(["a", "b", "c"])

    one = make().fit(rows, own_policy="new")
    with ComputeBackend(ComputeConfig(backend="ray", replay_partitions=4)) as backend:
        parts = make().fit(rows, own_policy="new", partitions=4, map_parts=backend.map_parts)
    for key, value in one._state_arrays().items():
        np.testing.assert_allclose(parts._state_arrays()[key], value, rtol=1e-9, atol=1e-12, err_msg=key)
    assert parts.stats_.to_dict() == one.stats_.to_dict()
