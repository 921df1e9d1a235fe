"""Real data: the bts policy's value estimated from the uniform-random Open Bandit logs."""

from __future__ import annotations

import numpy as np
import pytest

from rewardloop.datasets import DataMissingError
from rewardloop.datasets.obd import bts_action_dist, load_open_bandit_dataset
from rewardloop.evaluation.ope import estimate_policy_values, ope_diagnostics, tabular_reward_model


def test_bts_from_random_logs_is_close_to_bts_logged_ctr():
    try:
        rnd = load_open_bandit_dataset("random", "all")
        bts = load_open_bandit_dataset("bts", "all")
    except DataMissingError as err:
        pytest.skip(str(err))
    pi = bts_action_dist("all", n_sim=20_000, random_state=0)  # (80, 3)
    action_dist = np.broadcast_to(pi[None], (rnd.n_rounds, *pi.shape))
    q_hat = tabular_reward_model(
        reward=rnd.reward, action=rnd.action, position=rnd.position, n_actions=80, len_list=3
    )
    values = estimate_policy_values(
        reward=rnd.reward,
        action=rnd.action,
        pscore=rnd.pscore,
        action_dist=action_dist,
        position=rnd.position,
        estimated_rewards_by_reg_model=q_hat,
    )
    truth = bts.on_policy_value
    # About 40 clicks in each log: a relative error of a few tens of percent is the noise floor.
    for name in ("ipw", "dr"):
        assert abs(values[name] - truth) / truth < 0.3, (name, values[name], truth)
    diag = ope_diagnostics(
        action=rnd.action, pscore=rnd.pscore, action_dist=action_dist, position=rnd.position
    )
    assert diag.deterministic_share == 0.0 and diag.unlogged_actions == []
    assert 0.05 * rnd.n_rounds < diag.ess < rnd.n_rounds
