"""The Learner contract over every learner, bandit router, the gating network and the reward models.

Each entry builds its data through its own ``data_from_batch`` from a small logged batch (what the
orchestration does), then: defaults construct, ``fit(data, policy=...)`` returns the fitted policy
(something with ``save``), the same seed gives the same result, ``history_`` is present with
namespaced keys, and the fitted learner satisfies the runtime-checkable protocol.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from rewardloop.learners import LEARNERS, ConfiguredLearner, DataSpec, Learner, LearnerConfig
from rewardloop.learners.bandits import ROUTERS
from rewardloop.learners.gating import GatingConfig, GatingLearner
from rewardloop.learners.multilabel import SET_LEARNERS
from rewardloop.policies.classifier import ClassifierPolicy
from rewardloop.policies.multilabel import MultiLabelPolicy
from rewardloop.policies.router import ContextFeatures
from rewardloop.rewards import EmbeddingRewardModel, PairwiseConfig, PairwiseRewardModel
from rewardloop.types import Decision, DecisionBatch, Feedback, Reward, set_decision_fields

from .learner_tasks import DIM, LABELS, fresh_policy, linear_task

torch.set_num_threads(1)

TEXTS = ["turn on the light", "lights off", "what time is it", "play music", "stop", "louder"]


class HashEncoder:
    """Deterministic 16-dim unit vectors per text (no model download)."""

    dim = DIM

    def encode(self, texts: Any, progress: Any = None) -> np.ndarray:
        out = np.stack([np.random.default_rng(abs(hash(t)) % 2**32).normal(size=DIM) for t in texts])
        return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


ENCODER = HashEncoder()


def classifier_batch(n: int = 48) -> DecisionBatch:
    """Logged classifier decisions (uniform logging) with a reward and, for some, a correction."""
    _, y = linear_task(n, seed=3)
    rng = np.random.default_rng(4)
    decisions, rewards, feedback = [], {}, {}
    for i in range(n):
        action = int(rng.integers(0, len(LABELS)))
        d = Decision(
            policy="intent",
            policy_version="0",
            kind="classifier",
            actions=tuple(LABELS),
            action=LABELS[action],
            action_dist=tuple([1 / len(LABELS)] * len(LABELS)),
            pscore=1 / len(LABELS),
            text=f"text {i}",
        )
        decisions.append(d)
        rewards[d.id] = Reward(d.id, "thumbs", 1, float(action == y[i]))
        if action != y[i]:
            feedback[d.id] = [Feedback(decision_id=d.id, kind="correction", label=LABELS[y[i]], rater_id="r")]
    return DecisionBatch(decisions, feedback, rewards)


def router_batch(n: int = 40) -> DecisionBatch:
    """Router decisions over three arms with 3 numeric features; arm 0 pays when x0 > 0."""
    rng = np.random.default_rng(5)
    arms = ("a", "b", "c")
    decisions, rewards = [], {}
    for _ in range(n):
        x = rng.normal(size=3)
        k = int(rng.integers(0, 3))
        d = Decision(
            policy="router",
            policy_version="0",
            kind="router",
            actions=arms,
            action=arms[k],
            action_dist=(1 / 3, 1 / 3, 1 / 3),
            pscore=1 / 3,
            features=tuple(float(v) for v in x),
            text="q",
        )
        decisions.append(d)
        rewards[d.id] = Reward(d.id, "thumbs", 1, float((k == 0) == (x[0] > 0)))
    return DecisionBatch(decisions, {}, rewards)


def reranker_batch() -> DecisionBatch:
    """Reranker decisions with a reward for the chosen candidate and a preference between two."""
    decisions, rewards, feedback = [], {}, {}
    for i in range(8):
        good = i % 2 == 0
        d = Decision(
            policy="rr",
            policy_version="0",
            kind="reranker",
            actions=("x", "y"),
            action="x",
            action_dist=(1.0, 0.0),
            pscore=1.0,
            text="write a tweet",
            candidates=(f"lovely day {i}" if good else f"awful day {i}", f"meh {i}"),
        )
        decisions.append(d)
        rewards[d.id] = Reward(d.id, "thumbs", 1, 1.0 if good else 0.0)
        feedback[d.id] = [
            Feedback(decision_id=d.id, kind="preference", preferred="x", rejected="y", rater_id="r")
        ]
    return DecisionBatch(decisions, feedback, rewards)


def set_batch(n: int = 24) -> DecisionBatch:
    """Logged sets over three actions, each with a rater's missed / unnecessary feedback."""
    rng = np.random.default_rng(6)
    space = ("area", "name", "brightness")
    decisions, feedback = [], {}
    for i in range(n):
        chosen = [a for a in space if rng.random() < 0.5]
        d = Decision(policy="slots", policy_version="0", kind="set", text=TEXTS[i % len(TEXTS)] + f" {i}",
                     **set_decision_fields(space, chosen, (0.5, 0.5, 0.5)))  # fmt: skip
        decisions.append(d)
        wrong = [a for a in space if rng.random() < 0.3]
        missed = tuple(a for a in wrong if a not in chosen)
        extra = tuple(a for a in wrong if a in chosen)
        rows = (
            [Feedback(decision_id=d.id, kind="missed_actions", labels=missed, rater_id="r")] if missed else []
        )
        rows += (
            [Feedback(decision_id=d.id, kind="unnecessary_actions", labels=extra, rater_id="r")]
            if extra
            else []
        )
        feedback[d.id] = rows or [Feedback(decision_id=d.id, kind="set_correction", labels=tuple(chosen))]
    return DecisionBatch(decisions, feedback, {})


@dataclasses.dataclass
class Case:
    make: Callable[[int], Any]  # seed -> learner with small settings
    data: Callable[[Any], Any]  # learner class -> data through data_from_batch
    start: Callable[[], Any] = lambda: None  # the starting policy
    fingerprint: Callable[[Any], Any] = lambda fitted: None


def _head(fitted: Any) -> list[np.ndarray]:
    module = getattr(fitted, "head", None)
    return [v.detach().numpy().copy() for v in module.state_dict().values()]


def _classifier_case(name: str) -> Case:
    cls = LEARNERS[name]
    small = {"epochs": 2, "batch_size": 16}
    spec = lambda c: DataSpec(config=c.config_class(), labels=LABELS, embed=ENCODER.encode)  # noqa: E731
    return Case(
        make=lambda seed: cls(cls.config_class(seed=seed, **small)),
        data=lambda c: c.data_from_batch(classifier_batch(), spec(c)),
        start=lambda: ClassifierPolicy(LABELS, head=fresh_policy().head, in_dim=DIM, encoder=ENCODER),
        fingerprint=_head,
    )


def _router_case(name: str) -> Case:
    cls = ROUTERS[name]
    features = ContextFeatures("numeric", n_numeric=3) if cls.needs_context else None
    xs = np.random.default_rng(9).normal(size=(10, 3))
    kw = {"dim": 3} if cls.needs_context else {}
    return Case(
        make=lambda seed: cls(["a", "b", "c"], random_state=seed, **kw),
        data=lambda c: c.data_from_batch(router_batch(), DataSpec(features=features)),
        fingerprint=lambda r: [r.act(x if cls.needs_context else None).arm for x in xs] + list(r.n_pulls_),
    )


def _seeded_linear(n_in: int, n_out: int) -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return torch.nn.Linear(n_in, n_out)


def _set_case(name: str) -> Case:
    cls = SET_LEARNERS[name]
    space = ["area", "name", "brightness"]
    return Case(
        make=lambda seed: cls(cls.config_class(seed=seed, epochs=2, batch_size=8)),
        data=lambda c: c.data_from_batch(set_batch(), DataSpec(labels=space, embed=ENCODER.encode)),
        start=lambda: MultiLabelPolicy(space, head=_seeded_linear(DIM, 3), in_dim=DIM, encoder=ENCODER),
        fingerprint=_head,
    )


def _gating_case() -> Case:
    spec = DataSpec(features=ContextFeatures("numeric", n_numeric=3))
    return Case(
        make=lambda seed: GatingLearner(GatingConfig(seed=seed, epochs=2, hidden=8)),
        data=lambda c: c.data_from_batch(router_batch(), spec),
        fingerprint=lambda g: [v.detach().numpy().copy() for v in g.net.state_dict().values()],
    )


CASES: dict[str, Case] = {
    **{f"learner:{n}": _classifier_case(n) for n in LEARNERS if n != "lora"},
    **{f"router:{n}": _router_case(n) for n in ROUTERS},
    "gating": _gating_case(),
    **{f"set:{n}": _set_case(n) for n in SET_LEARNERS},
    "reward_model:embedding": Case(
        make=lambda seed: EmbeddingRewardModel(
            min_samples=4, test_size=0, random_state=seed, encoder=ENCODER
        ),
        data=lambda c: c.data_from_batch(reranker_batch(), DataSpec()),
        fingerprint=lambda m: m.coef_.copy(),
    ),
    "reward_model:pairwise": Case(
        make=lambda seed: PairwiseRewardModel(PairwiseConfig(max_steps=1, batch_size=4, random_state=seed)),
        data=lambda c: c.data_from_batch(reranker_batch(), DataSpec())[:4],
        fingerprint=lambda m: m.score("write a tweet", ["lovely day", "awful day"]),
    ),
}


def test_every_learner_router_and_reward_model_has_a_case():
    # LoRA fine-tunes the real encoder on texts: its contract runs in test_lora.py / the loop test.
    assert {f"learner:{n}" for n in LEARNERS} - set(CASES) == {"learner:lora"}
    assert {f"router:{n}" for n in ROUTERS} <= set(CASES)
    assert {f"set:{n}" for n in SET_LEARNERS} <= set(CASES)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b)
    return bool(a == b)


@pytest.mark.parametrize("name", sorted(CASES))
def test_learner_contract(name, tmp_path):
    case = CASES[name]
    learner = case.make(0)
    cls = type(learner)
    for attr in ("name", "needs_rewards", "needs_policy", "reads_texts"):
        assert hasattr(cls, attr), attr
    if isinstance(learner, ConfiguredLearner):  # defaults construct, every field has a help text
        default = cls()
        assert isinstance(default.config, LearnerConfig)
        assert all(f.metadata.get("help") for f in dataclasses.fields(default.config))
    data = case.data(cls)
    assert len(data) > 0
    fitted = learner.fit(data, policy=case.start())
    assert fitted is not None and callable(fitted.save)
    fitted.save(tmp_path / "artifact")
    assert isinstance(learner, Learner)
    history = learner.history_
    assert history and all(isinstance(row, dict) for row in history)
    keys = {k for row in history for k in row}
    assert keys and all("/" in k for k in keys), keys  # namespaced: train/..., time/..., eval/...
    again = case.make(0).fit(case.data(cls), policy=case.start())
    assert _same(case.fingerprint(fitted), case.fingerprint(again)), "same seed, different result"


def test_ppo_history_carries_kl_and_clip_fraction():
    case = CASES["learner:ppo"]
    learner = case.make(0)
    learner.fit(case.data(type(learner)), policy=case.start())
    assert {"train/approx_kl", "train/clip_fraction", "train/loss", "time/step"} <= set(learner.history_[-1])


def test_data_from_batch_skips_an_unknown_correction_label_and_counts_it():
    batch = classifier_batch(8)
    d = batch.decisions[0]
    batch.feedback[d.id] = [Feedback(decision_id=d.id, kind="correction", label="sports", rater_id="r")]
    spec = DataSpec(config=LEARNERS["supervised"].config_class(), labels=LABELS, embed=ENCODER.encode)
    labelled = LEARNERS["supervised"].data_from_batch(batch, spec)
    assert labelled.skipped["label not a label of the policy"] == 1
    pairs = LEARNERS["dpo"].data_from_batch(batch, spec)
    assert pairs.skipped == {"label not a label of the policy": 1}
