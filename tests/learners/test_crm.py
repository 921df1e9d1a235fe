"""CRM (BanditNet / POEM): the exact loss on a hand-computed 3-row case, clipping and the variance
penalty, corrections as full information, thumbs-down rows as signal, data from a store batch, learning."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rewardloop.learners import LEARNERS
from rewardloop.learners._common import LearnerDataError
from rewardloop.learners.base import BanditData, DataSpec, LearnerConfigError
from rewardloop.learners.crm import CRM, CorrectedBanditData, CRMConfig, crm_data_from_batch, crm_loss
from rewardloop.policies.classifier import ClassifierPolicy
from rewardloop.types import DecisionBatch, Feedback
from rewardloop.types.records import Reward

from .learner_tasks import LABELS, accuracy, fresh_policy, linear_task, uniform_bandit_data

torch.set_num_threads(1)

# Two labels, logits 0 so π(·|x) = (.5, .5) on every row; λ = .5.
#   row 1: thumbs up on a = 0 logged with p = .5 → w = 1,  u = (1 − .5) · 1 = .5
#   row 2: thumbs down on a = 1 logged with p = .25 → w = 2, u = (0 − .5) · 2 = −1
#   row 3: corrected to c = 1 (logged a = 0, r = 0)  → u = π(1|x) − .5 = 0 (full information)
# mean(u) = −1/6, so the loss is 1/6; V̂_SN over the bandit rows is (1·1 + 2·0) / (1 + 2) = 1/3.
LOGITS = torch.zeros(3, 2)
ACTIONS = torch.tensor([0, 1, 0])
REWARD = torch.tensor([1.0, 0.0, 0.0])
PSCORE = torch.tensor([0.5, 0.25, 1.0])
CORRECTION = torch.tensor([-1, -1, 1])


def _loss(
    baseline: float, logits: torch.Tensor = LOGITS, **options: float
) -> tuple[torch.Tensor, dict[str, float]]:
    """The loss on the 3 rows with the exact full-information term of the correction."""
    return crm_loss(
        logits, ACTIONS, REWARD, PSCORE, CORRECTION, baseline, correction_loss="expected", **options
    )


def test_loss_on_three_rows() -> None:
    loss, m = _loss(baseline=0.5)
    assert loss.item() == pytest.approx(1 / 6, abs=1e-6)
    assert m["train/objective"] == pytest.approx(-1 / 6, abs=1e-6)
    assert m["train/snips"] == pytest.approx(1 / 3, abs=1e-6)
    assert m["train/mean_weight"] == pytest.approx(1.5)
    assert m["train/corrected_frac"] == pytest.approx(1 / 3)
    # λ = 0: only the thumbs-up row and the correction pull: u = (1, 0, .5), loss −.5
    loss0, _ = _loss(baseline=0.0)
    assert loss0.item() == pytest.approx(-0.5, abs=1e-6)
    # the default log form: row 3 enters as log π(1|x) = log .5, so u = (.5, −1, log .5)
    logged, _ = crm_loss(LOGITS, ACTIONS, REWARD, PSCORE, CORRECTION, baseline=0.5)
    assert logged.item() == pytest.approx(-(0.5 - 1.0 + math.log(0.5)) / 3, abs=1e-6)


def test_clipped_weights_and_variance_penalty() -> None:
    # M = 1.5 clips row 2's weight 2 → 1.5: u = (.5, −.75, 0), loss = .25 / 3
    logits = torch.zeros(3, 2, requires_grad=True)
    loss, m = _loss(logits=logits, baseline=0.5, max_weight=1.5)
    assert loss.item() == pytest.approx(0.25 / 3, abs=1e-6)
    assert m["train/clip_frac"] == pytest.approx(0.5)
    loss.backward()
    assert logits.grad is not None and logits.grad[1].abs().sum() == 0  # the clipped row carries none
    # POEM: + 1 · sqrt(Var(u)/3), Var the unbiased variance of u = (.5, −1, 0): 7/12
    penalised, _ = _loss(baseline=0.5, variance_penalty=1.0)
    assert penalised.item() == pytest.approx(1 / 6 + math.sqrt(7 / 12 / 3), abs=1e-5)


def test_confirmations_full_take_a_thumbs_up_as_its_label() -> None:
    # confirmations="full": row 1 (thumbs up on 0) enters as log π(0|x) = log .5 with weight 1, not as
    # (1 − .5) · w; u = (log .5, −1, log .5) and V̂_SN is over the thumbs-down row alone: 0
    loss, m = crm_loss(LOGITS, ACTIONS, REWARD, PSCORE, CORRECTION, baseline=0.5, confirmations="full")
    assert loss.item() == pytest.approx(-(2 * math.log(0.5) - 1.0) / 3, abs=1e-6)
    assert m["train/snips"] == pytest.approx(0.0)
    assert m["train/mean_weight"] == pytest.approx(2.0)
    assert m["train/corrected_frac"] == pytest.approx(1 / 3)  # a confirmation is not a correction
    with pytest.raises(LearnerConfigError, match=r"^confirmations: must be bandit or full, got 'all'"):
        CRMConfig(confirmations="all")


def test_confirmations_full_learn_from_bandit_feedback() -> None:
    data, _ = uniform_bandit_data(512)
    X_test, y_test = linear_task(1000, seed=99)
    config = CRMConfig(epochs=20, batch_size=32, lr=0.05, confirmations="full")
    assert accuracy(CRM(config).fit(data, policy=fresh_policy()), X_test, y_test) > 0.7


def test_gradients_push_thumbs_down_down_and_corrections_up() -> None:
    logits = torch.zeros(3, 2, requires_grad=True)
    loss, _ = crm_loss(logits, ACTIONS, REWARD, PSCORE, CORRECTION, baseline=0.5)
    loss.backward()
    grad = logits.grad
    assert grad is not None
    assert grad[0, 0] < 0  # thumbs up on 0: descending the loss raises logit 0
    assert grad[1, 1] > 0  # thumbs down on 1: lowers logit 1
    assert grad[2, 1] < 0 and grad[2, 0] > 0  # corrected to 1: raises 1, lowers the logged 0


def _thumbs_down_only(n: int = 800) -> BanditData:
    data, _ = uniform_bandit_data(n, seed=2)
    wrong = data.reward == 0
    return BanditData(data.X[wrong], data.action[wrong], data.reward[wrong], data.pscore[wrong], data.labels)


def test_it_learns_from_thumbs_down_alone() -> None:
    # No thumbs up, no correction: only "not this one" on each row. A supervised learner has nothing
    # to train on; CRM with λ > 0 moves mass away from the wrong actions.
    data = _thumbs_down_only()
    X_test, y_test = linear_task(1000, seed=99)
    policy = fresh_policy()
    fitted = CRM(CRMConfig(epochs=30, batch_size=32, baseline=0.5, lr=0.05)).fit(data, policy=policy)
    start, end = accuracy(policy, X_test, y_test), accuracy(fitted, X_test, y_test)
    assert start < 0.4 and end > 0.6, (start, end)


def test_it_learns_from_bandit_feedback() -> None:
    data, _ = uniform_bandit_data(512)
    X_test, y_test = linear_task(1000, seed=99)
    policy = fresh_policy()
    learner = CRM(CRMConfig(epochs=20, batch_size=32, lr=0.05))
    fitted = learner.fit(data, policy=policy)
    assert accuracy(policy, X_test, y_test) < 0.4 and accuracy(fitted, X_test, y_test) > 0.7
    assert learner.baseline_ == pytest.approx(float(data.reward.mean()))
    assert learner.history_[-1]["train/snips"] > learner.history_[0]["train/snips"]


def test_corrections_add_what_the_bandit_rows_lack() -> None:
    # Few rows; a correction on each wrong one turns it into a label: better than the same rows without.
    data, y = uniform_bandit_data(160, seed=5)
    correction = np.where(data.reward == 0, y, -1).astype(np.int64)
    corrected = CorrectedBanditData(
        data.X, data.action, data.reward, data.pscore, data.labels, correction=correction
    )
    X_test, y_test = linear_task(1000, seed=99)
    config = CRMConfig(epochs=30, batch_size=32, lr=0.05)
    plain = accuracy(CRM(config).fit(data, policy=fresh_policy()), X_test, y_test)
    full = accuracy(CRM(config).fit(corrected, policy=fresh_policy()), X_test, y_test)
    assert full > plain + 0.05, (plain, full)


def test_bad_corrections_and_config_are_named() -> None:
    data, _ = uniform_bandit_data(16)
    bad = CorrectedBanditData(
        data.X, data.action, data.reward, data.pscore, data.labels, correction=np.full(16, 7)
    )
    with pytest.raises(LearnerDataError, match=r"^correction: row 0 is 7, outside \[-1, 4\)"):
        CRM().fit(bad, policy=fresh_policy())
    short = CorrectedBanditData(
        data.X, data.action, data.reward, data.pscore, data.labels, correction=np.full(3, -1)
    )
    with pytest.raises(LearnerDataError, match=r"^correction: expected shape \(16,\)"):
        CRM().fit(short, policy=fresh_policy())
    for values, key in [
        ({"max_weight": 0.5}, "max_weight"),
        ({"variance_penalty": -1.0}, "variance_penalty"),
    ]:
        with pytest.raises(LearnerConfigError, match=f"^{key}: "):
            CRMConfig.from_dict(values)
    with pytest.raises(LearnerConfigError, match=r"^baseline: "):
        CRMConfig(baseline=float("nan"))


class _Table:
    def __init__(self, X: np.ndarray) -> None:
        self.X = X

    def encode(self, texts: list[str]) -> np.ndarray:
        return np.stack([self.X[int(t.split()[1])] for t in texts]).astype(np.float32)


def test_data_from_batch_reads_rewards_and_corrections() -> None:
    X, _ = linear_task(4, seed=1)
    start = fresh_policy()
    policy = ClassifierPolicy(LABELS, head=start.head, in_dim=start.in_dim, encoder=_Table(X))  # type: ignore[arg-type]
    decisions = policy.decide_batch(
        [f"text {i}" for i in range(4)], mode="sample", rng=np.random.default_rng(0)
    )
    rewards = {
        d.id: Reward(decision_id=d.id, spec="thumbs", spec_version=1, value=0.0) for d in decisions[:3]
    }
    feedback = {
        decisions[1].id: [Feedback(decision_id=decisions[1].id, kind="correction", label="c", rater_id="r")],
        decisions[3].id: [Feedback(decision_id=decisions[3].id, kind="correction", label="a", rater_id="r")],
    }
    spec = DataSpec(labels=policy.labels, embed=policy.embed)
    data = crm_data_from_batch(DecisionBatch(decisions, feedback, rewards), spec)
    assert len(data) == 3  # decision 3 has no reward yet
    assert data.correction.tolist() == [-1, 2, -1]
    via_learner = LEARNERS["crm"].data_from_batch(DecisionBatch(decisions, feedback, rewards), spec)
    assert via_learner.correction.tolist() == [-1, 2, -1]
    # a correction naming a label the policy lacks is left out and counted (issue 13, item 11)
    unknown = {
        decisions[0].id: [Feedback(decision_id=decisions[0].id, kind="correction", label="zz", rater_id="r")]
    }
    skipped = crm_data_from_batch(DecisionBatch(decisions, unknown, rewards), spec)
    assert skipped.correction.tolist() == [-1, -1, -1]
    assert skipped.skipped == {"correction label not a label of the policy": 1}
