"""REINFORCE for the gating policy: learn which expert to call from rewards, online or from logged traces.

The loss (Williams 1992, "Simple Statistical Gradient-Following Algorithms for Connectionist
Reinforcement Learning", Machine Learning 8, eq. 11, with an entropy bonus as in Mnih et al. 2016)::

    L(φ) = − mean_i [ w_i · (r_i − b) · log π_φ(a_i | x_i) ] − β · mean_i H(π_φ(· | x_i))

- ``b`` is an exponential moving average of the rewards seen (the baseline, updated after each step);
- ``w_i = min(π_φ(a_i|x_i) / μ(a_i|x_i), max_weight)`` (detached) corrects for logged actions drawn by a
  behaviour policy ``μ`` — its log-probability comes from the decision's trace step (or its pscore);
  for on-policy samples ``w_i = 1``;
- gradients are clipped to ``max_grad_norm`` before each Adam step.

Rewards come from the store's compiled rewards, or are rolled up here from multi-level feedback
(:func:`rollup_multilevel`: the rewards layer's score of multi-level and rating feedback).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from rewardloop.learners.base import (
    AT_LEAST_ONE,
    POSITIVE,
    DataSpec,
    LearnerConfig,
    ProgressCallback,
    checked_config,
    hyperparameter,
)
from rewardloop.policies.gating import GatingPolicy
from rewardloop.policies.router import FloatArray, RouterInputError
from rewardloop.rewards import scores
from rewardloop.types import DecisionBatch, Feedback
from rewardloop.types.history import MetricsRecorder


@dataclass
class GatingConfig(LearnerConfig):
    """Hyperparameters of REINFORCE for the gating policy (and the shared ones of LearnerConfig)."""

    lr: float = hyperparameter(3e-3, "Adam learning rate", POSITIVE)
    entropy_coef: float = hyperparameter(0.01, "entropy bonus β (keeps exploring)")
    baseline_decay: float = hyperparameter(0.95, "EMA decay of the reward baseline b")
    max_grad_norm: float = hyperparameter(1.0, "clip the gradient's global norm to this")
    max_weight: float = hyperparameter(10.0, "clip importance ratios π/μ of logged actions")
    batch_size: int = hyperparameter(32, "decisions per gradient step", AT_LEAST_ONE)
    epochs: int = hyperparameter(5, "passes over logged traces in fit_logged", AT_LEAST_ONE)
    step_name: str = hyperparameter("expert", "trace step that holds the expert choice")
    seed: int = hyperparameter(0, "random seed (batch order)")
    hidden: int = hyperparameter(64, "hidden units of a fresh gating MLP")


def gating_loss(
    logits: torch.Tensor,
    actions: torch.Tensor,
    rewards: torch.Tensor,
    baseline: float,
    entropy_coef: float,
    behaviour_logp: torch.Tensor | None = None,
    max_weight: float = 10.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The REINFORCE loss above. ``logits`` (B, K), ``actions`` (B,) int, ``rewards`` (B,)."""
    logp_all = torch.log_softmax(logits, dim=-1)  # (B, K)
    logp = logp_all.gather(1, actions[:, None]).squeeze(1)  # (B,)
    if behaviour_logp is None:
        weights = torch.ones_like(logp)
    else:
        weights = torch.exp(logp.detach() - behaviour_logp).clamp(max=max_weight)  # (B,) π/μ
    advantages = rewards - baseline  # (B,)
    entropy = -(logp_all.exp() * logp_all).sum(-1)  # (B,)
    loss = -(weights * advantages * logp).mean() - entropy_coef * entropy.mean()
    stats = {
        "loss": float(loss.detach()),
        "entropy": float(entropy.detach().mean()),
        "mean_weight": float(weights.mean()),
    }
    return loss, stats


class GatingTrainer:
    """Trains a :class:`GatingPolicy` in place with REINFORCE.

    Attributes
    ----------
    baseline_ : float or None
        The EMA reward baseline (None before the first update).
    history_ : list of dict
        Loss, entropy, mean reward and baseline after each step.

    Examples
    --------
    >>> policy = GatingPolicy(["a", "b"], in_dim=2, random_state=0)
    >>> trainer = GatingTrainer(policy, GatingConfig(lr=0.05))
    >>> X = np.array([[1.0, 0.0], [0.0, 1.0]] * 8)
    >>> for _ in range(30):
    ...     acts = np.array([policy.act(x).index for x in X])
    ...     _ = trainer.update(X, acts, (acts == np.arange(16) % 2).astype(float))
    >>> bool(policy.probs([[1.0, 0.0]])[0, 0] > 0.8)
    True
    """

    def __init__(self, policy: GatingPolicy, config: GatingConfig | None = None) -> None:
        self.policy = policy
        self.config = config or GatingConfig()
        self.optimizer = torch.optim.Adam(policy.net.parameters(), lr=self.config.lr)
        self.baseline_: float | None = None
        self.history_: list[dict[str, float]] = []

    def update(
        self,
        X: Any,
        actions: Sequence[int] | np.ndarray,
        rewards: Sequence[float] | np.ndarray,
        behaviour_logp: Sequence[float] | np.ndarray | None = None,
    ) -> dict[str, float]:
        """One gradient step on a batch: contexts (B, in_dim), expert indices (B,), rewards (B,)."""
        cfg = self.config
        x = self.policy._tensor(X)
        a = torch.as_tensor(np.asarray(actions), dtype=torch.long)
        r = torch.as_tensor(np.asarray(rewards, dtype=np.float32))
        if a.shape != (len(x),) or r.shape != (len(x),):
            raise RouterInputError("actions", f"need one action and one reward per context ({len(x)})")
        if int(a.min()) < 0 or int(a.max()) >= len(self.policy.experts):
            raise RouterInputError("actions", "expert index out of range")
        if not torch.isfinite(r).all():
            raise RouterInputError("rewards", "must be finite")
        mu = None if behaviour_logp is None else torch.as_tensor(np.asarray(behaviour_logp, dtype=np.float32))
        baseline = float(r.mean()) if self.baseline_ is None else self.baseline_
        self.policy.net.train()
        logits = self.policy.net(x) / self.policy.temperature
        loss, stats = gating_loss(logits, a, r, baseline, cfg.entropy_coef, mu, cfg.max_weight)
        self.optimizer.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_(self.policy.net.parameters(), cfg.max_grad_norm)
        self.optimizer.step()
        self.policy.net.eval()
        mean_r = float(r.mean())
        self.baseline_ = (
            mean_r
            if self.baseline_ is None
            else cfg.baseline_decay * self.baseline_ + (1 - cfg.baseline_decay) * mean_r
        )
        stats |= {"reward": mean_r, "baseline": self.baseline_}
        self.history_.append(stats)
        return stats

    def fit_logged(
        self,
        X: Any,
        actions: np.ndarray,
        rewards: np.ndarray,
        behaviour_logp: np.ndarray,
        on_epoch: Callable[[int], None] | None = None,
    ) -> GatingTrainer:
        """``epochs`` passes of shuffled minibatches over logged (context, action, reward, log μ) rows.

        ``on_epoch(epoch)`` is called after each pass (progress bars, status streams).
        """
        cfg = self.config
        Xa = np.asarray(X, dtype=np.float32)
        n = len(Xa)
        rng = np.random.default_rng(cfg.seed)
        for epoch in range(cfg.epochs):
            order = rng.permutation(n)
            for start in range(0, n, cfg.batch_size):
                rows = order[start : start + cfg.batch_size]
                self.update(Xa[rows], actions[rows], rewards[rows], behaviour_logp[rows])
            if on_epoch is not None:
                on_epoch(epoch)
        return self

    def config_dict(self) -> dict[str, Any]:
        return asdict(self.config)


# ---------------------------------------------------------------------------------------- from the logs


def rollup_multilevel(
    feedback: Sequence[Feedback], weights: Mapping[str, float] | None = None
) -> float | None:
    """One reward in [0, 1] from a decision's multi-level (and rating) feedback, or None if it has none:
    :func:`rewardloop.rewards.scores.decision_score` over those two kinds, with ``weights`` per level."""
    return scores.decision_score(None, feedback, weights, kinds=("multilevel", "rating"))


@dataclass(frozen=True)
class LoggedTraces:
    """Expert choices read from logged decisions: indices (n,), behaviour log-probs (n,), rewards (n,)."""

    ids: list[str]
    actions: np.ndarray
    behaviour_logp: FloatArray
    rewards: FloatArray
    skipped: int


def traces_from_batch(
    batch: DecisionBatch,
    experts: Sequence[str],
    step_name: str = "expert",
    weights: Mapping[str, float] | None = None,
) -> LoggedTraces:
    """The gating step of each logged decision with its reward.

    The expert and its behaviour log-probability come from the trace step named ``step_name`` (a
    multi-step trace: expert selection, then e.g. graph traversal); a decision without such a step
    uses its own ``action`` and ``log(pscore)``. The reward is the compiled one (``batch.rewards``)
    or else the roll-up of its multi-level feedback; decisions with neither are skipped.
    """
    index = {e: i for i, e in enumerate(experts)}
    ids, acts, logps, rews = [], [], [], []
    skipped = 0
    for row, d in enumerate(batch):
        step = next((s for s in d.trace if s.name == step_name), None)
        action, logp = (step.action, step.logp) if step is not None else (d.action, math.log(d.pscore))
        if action not in index:
            raise RouterInputError(
                f"decisions[{row}]", f"expert {action!r} of decision {d.id} is not one of {list(experts)}"
            )
        reward = batch.rewards[d.id].value if d.id in batch.rewards else None
        if reward is None:
            reward = rollup_multilevel(batch.feedback.get(d.id, []), weights)
        if reward is None:
            skipped += 1
            continue
        ids.append(d.id)
        acts.append(index[action])
        logps.append(logp)
        rews.append(reward)
    return LoggedTraces(ids, np.array(acts, dtype=np.int64), np.array(logps), np.array(rews), skipped)


# ------------------------------------------------------------------------------- the learner contract


@dataclass(frozen=True)
class GatingData:
    """Logged traces with their contexts: ``X`` (n, in_dim) aligned with ``traces``; ``experts`` in order."""

    X: FloatArray
    traces: LoggedTraces
    experts: list[str]

    def __len__(self) -> int:
        return len(self.traces.ids)


class GatingLearner:
    """The gating network's learner: REINFORCE over logged traces (:meth:`GatingTrainer.fit_logged`).

    ``fit(data, policy=None)`` trains a copy of ``policy`` (or a fresh :class:`GatingPolicy` over the
    data's experts) and returns it; ``history_`` has ``train/loss``, ``train/entropy``,
    ``train/reward``, ``train/baseline`` per step.
    """

    name: ClassVar[str] = "gating"
    config_class: ClassVar[type[LearnerConfig]] = GatingConfig
    needs_rewards: ClassVar[bool] = False  # compiled rewards or the roll-up of multi-level feedback
    needs_policy: ClassVar[bool] = False
    reads_texts: ClassVar[bool] = False

    def __init__(self, config: LearnerConfig | None = None, progress: ProgressCallback | None = None) -> None:
        self.config = checked_config(config, GatingConfig)
        self.progress = progress

    @staticmethod
    def data_from_batch(batch: DecisionBatch, spec: DataSpec, /) -> GatingData:
        """Traces of ``spec.labels`` (the experts; default: every action logged) with ``spec.features``."""
        experts = (
            list(spec.labels) if spec.labels else list(dict.fromkeys(a for d in batch for a in d.actions))
        )
        traces = traces_from_batch(batch, experts, step_name=spec.step_name)
        keep = set(traces.ids)
        kept = DecisionBatch([d for d in batch if d.id in keep])
        if spec.features is None:
            raise RouterInputError("features", "the gating learner needs a context builder (spec.features)")
        X = spec.features.from_batch(kept) if len(kept) else np.zeros((0, spec.features.dim))
        return GatingData(np.asarray(X, dtype=np.float64), traces, experts)

    def fit(self, data: GatingData, *, policy: GatingPolicy | None = None) -> GatingPolicy:
        cfg = self.config
        if len(data) == 0:
            raise RouterInputError("rewards", "no logged decision has a reward or scored feedback")
        if policy is None:
            gate = GatingPolicy(
                data.experts, in_dim=data.X.shape[1], hidden=cfg.hidden, random_state=cfg.seed
            )
        else:
            gate = copy.deepcopy(policy)
        trainer = GatingTrainer(gate, cfg)
        t = data.traces
        trainer.fit_logged(data.X, t.actions, t.rewards, t.behaviour_logp)
        recorder = MetricsRecorder()
        for step, stats in enumerate(trainer.history_, 1):
            recorder.record_many(stats)
            row = recorder.dump(step)
            if self.progress is not None:
                self.progress(step, len(trainer.history_), row)
        self.history_ = recorder.history
        self.policy_ = gate
        return gate


# ------------------------------------------------------------------------------------ learning curve


def digits_learning_curve(
    X: np.ndarray, y: np.ndarray, rounds: int = 12000, seed: int = 0, points: int = 8
) -> list[tuple[int, float]]:
    """On-policy REINFORCE on a supervised-to-bandit problem (reward 1 when the expert is the label).

    Returns ``points`` (rounds so far, mean reward over the last window) pairs.
    """
    torch.manual_seed(seed)
    k = int(y.max()) + 1
    policy = GatingPolicy([str(c) for c in range(k)], in_dim=X.shape[1], hidden=64, random_state=seed)
    trainer = GatingTrainer(policy, GatingConfig(lr=3e-3, entropy_coef=0.01, batch_size=32, seed=seed))
    rng = np.random.default_rng(seed)
    window = max(rounds // points, 32)
    curve, got = [], []
    done = 0
    while done < rounds:
        rows = rng.integers(0, len(y), size=32)
        p = policy.probs(X[rows])  # (32, K)
        u = rng.random(32)[:, None]
        acts = np.minimum((p.cumsum(1) < u).sum(1), k - 1)  # one draw per row from p
        r = (acts == y[rows]).astype(np.float64)
        trainer.update(X[rows], acts, r)
        got.extend(r.tolist())
        done += 32
        if done % window < 32 or done >= rounds:
            curve.append((done, float(np.mean(got[-window:]))))
    return curve[-points:]
