"""Deep Q-learning of an abstain gate: act on the classifier's prediction, or route to review.

Mnih et al. (2015), "Human-level control through deep reinforcement learning": a Q-network, a
target network synchronised every ``target_update_every`` updates, an experience-replay buffer and
ε-greedy exploration annealed linearly from ``epsilon_start`` to ``epsilon``.

The environment (the plan's "option B"). The state is the classifier's output for one logged input
— top probability, top-two margin, normalised entropy (:func:`confidence_features`). The actions are
``act`` and ``abstain``. Rewards:

- act, and the prediction was right: ``reward_correct``;
- act, and it was wrong: ``reward_wrong`` (a wrong automatic action);
- abstain: −``review_cost`` (a person looks at it, whatever the label).

Whether the prediction was right comes from the logged bandit feedback: a row is usable when its
logged action is the classifier's arg-max, and "right" means reward ≥ ``correct_threshold``. Those
rows are more likely where the logging policy was confident, so each carries the weight
min(1 / pscore, ``max_importance_weight``) — clipped inverse-propensity weighting, normalised to mean 1
— in the TD loss.

Each decision is a one-step episode (done = 1), so the TD target r + γ · max_a' Q_target(s', a') ·
(1 − done) is the reward itself; ``gamma`` and the target network are kept so the same update holds
for sequential settings (e.g. a review budget across a queue), but here they cannot change the
result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import torch
from torch.nn import functional as F

from rewardloop.learners._common import BanditLearner, LearnerDataError, TrainingSteps, optimizer_step, seeded
from rewardloop.learners.base import (
    AT_LEAST_ONE,
    NON_NEGATIVE,
    POSITIVE,
    UNIT,
    BanditData,
    GradientClipConfig,
    LearnerConfig,
    LearnerConfigError,
    ProgressCallback,
    hyperparameter,
)
from rewardloop.policies.abstain import ABSTAIN, ACT, AbstainGate, confidence_features, make_q_head
from rewardloop.policies.classifier import ClassifierPolicy


@dataclass
class DQNConfig(GradientClipConfig):
    """DQN hyperparameters (and the shared ones of :class:`GradientClipConfig`)."""

    lr: float = hyperparameter(3e-3, "Adam learning rate of the Q-network", POSITIVE)
    epochs: int = hyperparameter(
        100, "passes of ε-greedy interaction over the usable rows (small data: many)", AT_LEAST_ONE
    )
    gamma: float = hyperparameter(0.99, "discount γ; no effect on one-step episodes (target = r)", UNIT)
    epsilon_start: float = hyperparameter(1.0, "ε of ε-greedy at the first step", UNIT)
    epsilon: float = hyperparameter(0.05, "ε of ε-greedy once annealed (the YAML's dqn_epsilon)", UNIT)
    exploration_fraction: float = hyperparameter(
        0.5, "share of the steps over which ε anneals linearly", UNIT
    )
    buffer_size: int = hyperparameter(10_000, "replay buffer capacity (transitions)", AT_LEAST_ONE)
    learning_starts: int = hyperparameter(
        64, "transitions in the buffer before the first update", NON_NEGATIVE
    )
    target_update_every: int = hyperparameter(
        20, "copy the Q-network into the target network every N updates", AT_LEAST_ONE
    )
    hidden: int = hyperparameter(16, "hidden width of the Q-network", AT_LEAST_ONE)
    max_grad_norm: float = hyperparameter(10.0, "gradient-norm clip (0: none)", NON_NEGATIVE)
    reward_correct: float = hyperparameter(1.0, "reward of acting on a right prediction")
    reward_wrong: float = hyperparameter(-1.0, "reward of acting on a wrong prediction")
    review_cost: float = hyperparameter(0.3, "cost of abstaining (routing to review)", NON_NEGATIVE)
    correct_threshold: float = hyperparameter(
        0.5, "a logged reward at or above this means the prediction was right"
    )
    max_importance_weight: float = hyperparameter(10.0, "clip of the 1/pscore row weights", AT_LEAST_ONE)

    def validate(self) -> None:
        super().validate()
        if self.epsilon > self.epsilon_start:
            raise LearnerConfigError(
                f"epsilon: must be <= epsilon_start ({self.epsilon_start}), got {self.epsilon}"
            )
        if not self.reward_correct > self.reward_wrong:
            raise LearnerConfigError(
                f"reward_correct: must be > reward_wrong ({self.reward_wrong}), got {self.reward_correct}"
            )


def dqn_loss(
    q: torch.Tensor,
    actions: torch.Tensor,
    reward: torch.Tensor,
    next_q_target: torch.Tensor,
    done: torch.Tensor,
    gamma: float,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Weighted squared TD error: Q(s, a) against r + γ · max_a' Q_target(s', a') · (1 − done).

    Squared, not DQN's usual Huber: rewards here are bounded, and the Huber loss's linear tails make
    Q track something like the median reward, which ignores rare but large costs (a wrong action
    at ``reward_wrong``) — exactly what the gate has to weigh.

    Parameters
    ----------
    q : tensor of shape (B, A)
        Q-network output for the states.
    actions, reward, done : tensors of shape (B,)
    next_q_target : tensor of shape (B, A)
        Target-network output for the next states.
    weight : tensor of shape (B,), optional
        Row weights (default 1).
    """
    q_taken = q.gather(1, actions.long().unsqueeze(1)).squeeze(1)  # (B,)
    with torch.no_grad():
        target = reward + gamma * next_q_target.max(dim=1).values * (1.0 - done)  # (B,)
    per_row = F.mse_loss(q_taken, target, reduction="none")  # (B,)
    if weight is None:
        return per_row.mean()
    return (weight * per_row).sum() / weight.sum()


class ReplayBuffer:
    """A ring buffer of transitions (s, a, r, s', done, weight), sampled uniformly with a seeded rng."""

    def __init__(self, capacity: int, n_features: int, rng: np.random.Generator) -> None:
        self.capacity = capacity
        self.rng = rng
        self.state = np.zeros((capacity, n_features), np.float32)
        self.next_state = np.zeros((capacity, n_features), np.float32)
        self.action = np.zeros(capacity, np.int64)
        self.reward = np.zeros(capacity, np.float32)
        self.done = np.zeros(capacity, np.float32)
        self.weight = np.zeros(capacity, np.float32)
        self.size = 0
        self._next = 0

    def add(
        self,
        state: npt.NDArray[np.float32],
        action: npt.NDArray[np.int64],
        reward: npt.NDArray[Any],
        next_state: npt.NDArray[np.float32],
        done: npt.NDArray[Any],
        weight: npt.NDArray[Any],
    ) -> None:
        for i in range(len(action)):
            j = self._next
            self.state[j], self.action[j], self.reward[j] = state[i], action[i], reward[i]
            self.next_state[j], self.done[j], self.weight[j] = next_state[i], done[i], weight[i]
            self._next = (j + 1) % self.capacity
            self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size: int) -> tuple[torch.Tensor, ...]:
        idx = self.rng.integers(0, self.size, batch_size)
        return tuple(
            torch.as_tensor(arr[idx])
            for arr in (self.state, self.action, self.reward, self.next_state, self.done, self.weight)
        )


def gate_outcomes(
    data: BanditData, policy: ClassifierPolicy, correct_threshold: float, max_weight: float
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_], npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """The usable rows for the gate: (features (m, 3), prediction right (m,), weights (m,), row index (m,)).

    A row is usable when its logged action is the classifier's arg-max; weights are the clipped
    inverse propensities, normalised to mean 1.
    """
    proba = policy.predict_proba_embeddings(data.X)  # (n, K)
    rows = np.flatnonzero(proba.argmax(axis=1) == data.action)
    if rows.size == 0:
        raise LearnerDataError(
            "action: no logged decision took the classifier's top label, so the data says nothing "
            "about acting on its predictions"
        )
    weight = np.minimum(1.0 / data.pscore[rows], max_weight)
    return (
        confidence_features(proba[rows]),
        data.reward[rows] >= correct_threshold,
        weight / weight.mean(),
        rows,
    )


class DQN(BanditLearner[DQNConfig, AbstainGate]):
    """Learn an :class:`AbstainGate` for a classifier from its logged bandit feedback.

    ``fit(data, policy)`` returns the gate; ``policy`` is the classifier whose predictions are gated.

    Attributes
    ----------
    gate_ : AbstainGate
        The fitted gate (also returned by :meth:`fit`).
    n_used_ : int
        Logged rows usable for the gate (logged action = the classifier's arg-max).
    history_ : list of dict
        Metrics of each update (``loss``, ``epsilon``, ``reward``).

    Examples
    --------
    >>> import numpy as np
    >>> from rewardloop.learners.base import BanditData
    >>> rng = np.random.default_rng(0)
    >>> policy = ClassifierPolicy(["a", "b"], in_dim=4)
    >>> X = rng.normal(size=(64, 4)).astype("float32")
    >>> action = policy.predict_proba_embeddings(X).argmax(axis=1)
    >>> data = BanditData(X, action, rng.integers(0, 2, 64).astype(float), np.ones(64), ["a", "b"])
    >>> gate = DQN(DQNConfig(epochs=2)).fit(data, policy)
    >>> gate.decide(policy.predict_proba_embeddings(X[:3])).shape
    (3,)
    """

    name: ClassVar[str] = "dqn"
    config_class: ClassVar[type[LearnerConfig]] = DQNConfig

    def _fit(
        self, data: BanditData, policy: ClassifierPolicy, progress: ProgressCallback | None
    ) -> AbstainGate:
        """Learn the gate from logged decisions; return it (``policy`` is not changed)."""
        cfg = self.config
        features, right, weight, _ = gate_outcomes(
            data, policy, cfg.correct_threshold, cfg.max_importance_weight
        )
        m = len(right)
        # Both actions' rewards are known for each usable row; the agent only sees the one it takes.
        reward_table = np.stack(
            [np.where(right, cfg.reward_correct, cfg.reward_wrong), np.full(m, -cfg.review_cost)], axis=1
        ).astype(np.float32)  # (m, 2): columns ACT, ABSTAIN
        rng = np.random.default_rng(cfg.seed)
        buffer = ReplayBuffer(cfg.buffer_size, features.shape[1], np.random.default_rng(cfg.seed + 1))
        n_batches = -(-m // cfg.batch_size)
        total = cfg.epochs * n_batches
        anneal_steps = max(1, int(cfg.exploration_fraction * total))
        with seeded(cfg.seed):
            q_net = make_q_head(cfg.hidden)
            target_net = make_q_head(cfg.hidden)
            target_net.load_state_dict(q_net.state_dict())
            optimizer = torch.optim.Adam(q_net.parameters(), lr=cfg.lr)
            gate = AbstainGate(head=q_net, hidden=cfg.hidden)
            steps = TrainingSteps(cfg, total, progress, gate.save)
            updates = 0
            for epoch in range(cfg.epochs):
                for idx in np.array_split(rng.permutation(m), n_batches):
                    frac = min(1.0, steps.step / anneal_steps)
                    epsilon = cfg.epsilon_start + frac * (cfg.epsilon - cfg.epsilon_start)
                    with torch.no_grad():
                        greedy = q_net(torch.as_tensor(features[idx])).argmax(dim=1).numpy()  # (B,)
                    explore = rng.random(len(idx)) < epsilon
                    chosen = np.where(explore, rng.integers(0, 2, len(idx)), greedy).astype(np.int64)
                    r = reward_table[idx, chosen]
                    # One-step episodes: done = 1, the next state is never bootstrapped from.
                    buffer.add(features[idx], chosen, r, features[idx], np.ones(len(idx)), weight[idx])
                    metrics = {"epsilon": epsilon, "reward": float(r.mean())}
                    if buffer.size >= max(cfg.learning_starts, 1):
                        s, a, rew, s_next, done, w = buffer.sample(cfg.batch_size)
                        q_net.train()
                        with torch.no_grad():
                            next_q = target_net(s_next)  # (B, 2)
                        loss = dqn_loss(q_net(s), a, rew, next_q, done, cfg.gamma, w)
                        optimizer_step(optimizer, loss, q_net.parameters(), cfg.max_grad_norm)
                        updates += 1
                        if updates % cfg.target_update_every == 0:
                            target_net.load_state_dict(q_net.state_dict())
                        metrics["loss"] = float(loss.detach())
                    steps.end(metrics, epoch)
        q_net.eval()
        self.gate_ = gate
        self.n_used_ = m
        self.history_ = steps.history
        self.target_net_ = target_net
        return gate


__all__ = ["ABSTAIN", "ACT", "DQN", "DQNConfig", "ReplayBuffer", "dqn_loss", "gate_outcomes"]
