"""Open Bandit Dataset: read from the obp wheel, in OBP's conventions (0-based slots, pooled CTR)."""

from __future__ import annotations

import numpy as np
import pytest

from rewardloop.datasets import DataMissingError
from rewardloop.datasets.obd import bts_action_dist, bts_prior, load_open_bandit_dataset


@pytest.fixture(scope="module")
def random_all():
    try:
        return load_open_bandit_dataset("random", "all")
    except DataMissingError as err:
        pytest.skip(str(err))


def test_random_log_shapes_and_propensities(random_all):
    d = random_all
    assert (d.n_rounds, d.n_actions, d.len_list) == (10_000, 80, 3)
    assert set(np.unique(d.position)) == {0, 1, 2}
    assert np.all(d.pscore == 1 / 80)  # uniform random over 80 items
    assert set(np.unique(d.reward)) <= {0.0, 1.0}
    assert d.on_policy_value == d.reward.mean()
    assert d.context.shape[0] == 10_000 and d.action_context.shape == (80, 4)
    assert np.all(np.diff(d.timestamp.astype("int64")) >= 0)


def test_men_campaign_has_its_own_items():
    try:
        d = load_open_bandit_dataset("bts", "men")
    except DataMissingError as err:
        pytest.skip(str(err))
    assert d.n_actions == 34 and d.action.max() < 34
    assert d.pscore.min() > 0 and d.pscore.max() <= 1


def test_bts_prior_and_simulated_action_dist(random_all):
    alpha, beta = bts_prior("all")
    assert alpha.shape == beta.shape == (80,)
    pi = bts_action_dist("all", n_sim=2000, random_state=0)
    assert pi.shape == (80, 3)
    assert np.allclose(pi.sum(axis=0), 1.0)
    # The item with the highest prior mean is the most frequent first choice.
    assert np.argmax(pi[:, 0]) == np.argmax(alpha / (alpha + beta))


@pytest.mark.parametrize(
    ("policy", "campaign", "message"),
    [
        ("greedy", "all", "behavior_policy: must be one of random, bts"),
        ("random", "kids", "campaign: must be one of"),
    ],
)
def test_bad_names(policy, campaign, message):
    with pytest.raises(ValueError, match=message):
        load_open_bandit_dataset(policy, campaign)
