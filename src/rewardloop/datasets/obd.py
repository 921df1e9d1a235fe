"""The Open Bandit Dataset sample (Saito, Aihara, Matsutani & Narita 2021, NeurIPS Datasets & Benchmarks).

Read straight out of the ``obp-0.4.1`` wheel (a zip), without importing obp: 10,000 logged rounds per
behaviour policy (``random`` — uniform over items — or ``bts``, Bernoulli Thompson sampling) and campaign
(``all``: 80 items, ``men``: 34, ``women``: 46), each a fashion item shown at one of 3 positions, with a
click reward and the logging policy's propensity.

Positions. Each logged row is one (round, position) impression; as OBP does, positions are 0-based slots
and an evaluation policy gives a distribution per slot: ``action_dist`` of shape (n_rounds, n_actions, 3).
The estimators read each row at its own slot (``position``), and the policy value is pooled over the
three positions — OBP's ``calc_on_policy_policy_value_estimate`` is the mean click over all rows, so the
comparison with ``bts``'s logged CTR is like for like.

The evaluation policy of the standard check is BTS as it started in production: OBP ships the Beta
priors (``obp/policy/conf/prior_bts.yaml``); :func:`bts_action_dist` simulates them to per-slot choice
probabilities, as OBP's ``BernoulliTS.compute_batch_action_dist`` does.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
import yaml

from rewardloop.datasets.fetch import package_file

WHEEL = "obp-0.4.1-py3-none-any.whl"
BehaviorPolicy = Literal["random", "bts"]
Campaign = Literal["all", "men", "women"]
BEHAVIOR_POLICIES = ("random", "bts")
CAMPAIGNS = ("all", "men", "women")


@dataclass(frozen=True)
class OpenBanditData:
    """One log of the Open Bandit Dataset, in OBP's field names.

    Attributes
    ----------
    action, position, reward, pscore : ndarray of shape (n_rounds,)
        Item shown (0-based id), 0-based slot, click (0/1), the behaviour policy's propensity.
    context : ndarray of shape (n_rounds, dim_context)
        One-hot user features (first level of each dropped, as OBP's pre-processing).
    action_context : ndarray of shape (n_actions, 4)
        Item features: three label-encoded categories and one numeric feature.
    """

    behavior_policy: str
    campaign: str
    action: npt.NDArray[np.int64]
    position: npt.NDArray[np.int64]
    reward: npt.NDArray[np.float64]
    pscore: npt.NDArray[np.float64]
    context: npt.NDArray[np.float64]
    action_context: npt.NDArray[np.float64]
    timestamp: npt.NDArray[np.datetime64]
    n_actions: int
    len_list: int

    @property
    def n_rounds(self) -> int:
        return int(self.action.shape[0])

    @property
    def on_policy_value(self) -> float:
        """The logging policy's own value: mean click over every logged impression (all positions)."""
        return float(self.reward.mean())


def _wheel(path: str | Path | None) -> zipfile.ZipFile:
    return zipfile.ZipFile(package_file(WHEEL) if path is None else Path(path))


def _check(behavior_policy: str, campaign: str) -> None:
    if behavior_policy not in BEHAVIOR_POLICIES:
        raise ValueError(
            f"behavior_policy: must be one of {', '.join(BEHAVIOR_POLICIES)}, got {behavior_policy!r}"
        )
    if campaign not in CAMPAIGNS:
        raise ValueError(f"campaign: must be one of {', '.join(CAMPAIGNS)}, got {campaign!r}")


def load_open_bandit_dataset(
    behavior_policy: BehaviorPolicy | str = "random",
    campaign: Campaign | str = "all",
    wheel: str | Path | None = None,
) -> OpenBanditData:
    """Read one OBD log from the obp wheel (fetched by ``rewardloop data fetch``).

    Examples
    --------
    >>> obd = load_open_bandit_dataset("random", "all")  # doctest: +SKIP
    >>> obd.n_rounds, obd.n_actions, obd.len_list  # doctest: +SKIP
    (10000, 80, 3)
    """
    _check(behavior_policy, campaign)
    base = f"obp/dataset/obd/{behavior_policy}/{campaign}"
    with _wheel(wheel) as zf:
        data = pd.read_csv(io.BytesIO(zf.read(f"{base}/{campaign}.csv")), index_col=0)
        items = pd.read_csv(io.BytesIO(zf.read(f"{base}/item_context.csv")), index_col=0)
    data = data.sort_values("timestamp", kind="stable").reset_index(drop=True)
    # Positions are 1..3 in the CSV: dense 0-based slots, as OBP ranks them.
    position = pd.factorize(data["position"], sort=True)[0].astype(np.int64)
    user_cols = [c for c in data.columns if c.startswith("user_feature")]
    context = pd.get_dummies(data[user_cols], drop_first=True).to_numpy(dtype=np.float64)
    cats = items.drop(columns=["item_id", "item_feature_0"])
    encoded = np.column_stack([pd.factorize(cats[c], sort=True)[0] for c in cats.columns]).astype(np.float64)
    action_context = np.column_stack([encoded, items["item_feature_0"].to_numpy(dtype=np.float64)])
    n_actions = int(items["item_id"].nunique())
    action = data["item_id"].to_numpy(dtype=np.int64)
    if action.max() >= n_actions:
        raise ValueError(f"{base}: item_id {action.max()} outside the {n_actions} items of item_context.csv")
    return OpenBanditData(
        behavior_policy=behavior_policy,
        campaign=campaign,
        action=action,
        position=position,
        reward=data["click"].to_numpy(dtype=np.float64),
        pscore=data["propensity_score"].to_numpy(dtype=np.float64),
        context=context,
        action_context=action_context,
        timestamp=pd.to_datetime(data["timestamp"], utc=True).dt.tz_localize(None).to_numpy(),
        n_actions=n_actions,
        len_list=int(position.max() + 1),
    )


def bts_prior(
    campaign: Campaign | str = "all", wheel: str | Path | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The Beta(alpha, beta) priors of ZOZOTOWN's production BTS for ``campaign``, shape (n_actions,) each."""
    _check("bts", campaign)
    with _wheel(wheel) as zf:
        conf = yaml.safe_load(zf.read("obp/policy/conf/prior_bts.yaml"))
    return np.asarray(conf[campaign]["alpha"], dtype=np.float64), np.asarray(
        conf[campaign]["beta"], dtype=np.float64
    )


def bts_action_dist(
    campaign: Campaign | str = "all",
    *,
    len_list: int = 3,
    n_sim: int = 100_000,
    random_state: int = 12345,
    wheel: str | Path | None = None,
) -> npt.NDArray[np.float64]:
    """Per-slot choice probabilities of BTS with the production priors, shape (n_actions, len_list).

    Each simulation draws ``θ_a ~ Beta(alpha_a, beta_a)`` for every item and shows the ``len_list`` items
    of largest ``θ`` in that order; the frequencies over ``n_sim`` simulations estimate ``π_e(a | k)``
    (Monte Carlo error about ``sqrt(p / n_sim)``). Tile it over rounds for ``action_dist``.
    """
    alpha, beta = bts_prior(campaign, wheel)
    rng = np.random.RandomState(random_state)
    counts = np.zeros((alpha.shape[0], len_list))
    chunk = 10_000
    for start in range(0, n_sim, chunk):
        b = min(chunk, n_sim - start)
        theta = rng.beta(alpha, beta, size=(b, alpha.shape[0]))  # (b, K)
        top = np.argsort(-theta, axis=1)[:, :len_list]  # (b, len_list), best first
        for k in range(len_list):
            counts[:, k] += np.bincount(top[:, k], minlength=alpha.shape[0])
    return counts / n_sim


__all__ = [
    "BEHAVIOR_POLICIES",
    "CAMPAIGNS",
    "OpenBanditData",
    "bts_action_dist",
    "bts_prior",
    "load_open_bandit_dataset",
]
