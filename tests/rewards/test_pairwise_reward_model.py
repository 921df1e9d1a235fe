"""The pairwise Bradley–Terry reward model: the loss on hand-computed values, and a tiny 1-step fit."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from rewardloop.rewards import (  # noqa: E402
    PairwiseConfig,
    PairwiseRewardModel,
    PreferencePair,
    RewardError,
    bradley_terry_loss,
)


def _nll(x):
    return -math.log(1 / (1 + math.exp(-x)))


def test_bradley_terry_loss_exact_values():
    rc, rr = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 0.0])
    assert float(bradley_terry_loss(rc, rr)) == pytest.approx((_nll(1) + _nll(0)) / 2, rel=1e-6)
    # authority as sample weight, normalised by Σw: (1·nll(1) + 3·nll(0)) / 4
    w = torch.tensor([1.0, 3.0])
    assert float(bradley_terry_loss(rc, rr, w)) == pytest.approx((_nll(1) + 3 * _nll(0)) / 4, rel=1e-6)
    # a margin of 0.5 on the first pair: nll(1 - 0.5)
    m = torch.tensor([0.5, 0.0])
    assert float(bradley_terry_loss(rc, rr, None, m)) == pytest.approx((_nll(0.5) + _nll(0)) / 2, rel=1e-6)


PAIRS = [
    PreferencePair(
        "Write a tweet.", "What a lovely sunny day!", "This is the worst day ever.", weight=1.0, margin=2
    ),
    PreferencePair("Write a tweet.", "I love my friends.", "I hate everything.", weight=0.5, margin=3),
    PreferencePair("Write a review.", "Superb film, moving and funny.", "Dull, boring, a waste.", weight=1.0),
    PreferencePair("Write a review.", "Works great, happy with it.", "Broke after a day.", weight=1.0),
]


@pytest.fixture(scope="module")
def fitted():
    torch.set_num_threads(1)
    # two steps on the same batch of four pairs (two epochs): the loss must fall between them
    cfg = PairwiseConfig(epochs=2, batch_size=4, lr=1e-3, margin_scale=0.1, num_threads=1)
    return PairwiseRewardModel(cfg).fit(PAIRS)


def test_two_steps_lower_the_loss_and_score(fitted):
    assert len(fitted.loss_history_) == 2 and fitted.metrics_["steps"] == 2.0
    assert fitted.loss_history_[1] < fitted.loss_history_[0]
    scores = fitted.score("Write a tweet.", ["Great news!", "Terrible news.", "ok"])
    assert scores.shape == (3,) and np.all(np.isfinite(scores))
    assert fitted.pairwise_accuracy(PAIRS) == np.mean(
        [fitted.score(p.prompt, [p.chosen, p.rejected]) @ [1, -1] > 0 for p in PAIRS]
    )


def test_save_load_roundtrip_safetensors_only(fitted, tmp_path):
    folder = fitted.save(tmp_path / "bt")
    names = {p.name for p in folder.iterdir()}
    assert "model.safetensors" in names and "meta.json" in names
    assert not any(n.endswith((".bin", ".pkl", ".pt")) for n in names)
    assert json.loads((folder / "meta.json").read_text())["kind"] == "pairwise_bt"
    back = PairwiseRewardModel.load(folder)
    cands = ["Great news!", "Terrible news."]
    np.testing.assert_allclose(
        back.score("Write a tweet.", cands), fitted.score("Write a tweet.", cands), atol=1e-5
    )


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        ([], "pairs: no preference pairs"),
        ([PreferencePair("p", "a", "b", weight=-1.0)], "pairs[0]: weight must be >= 0"),
        (
            [PreferencePair("p", "a", "b", margin=float("nan"))],
            "pairs[0]: weight must be >= 0 and margin finite",
        ),
    ],
)
def test_bad_pairs(pairs, message):
    with pytest.raises(RewardError) as err:
        PairwiseRewardModel().fit(pairs)
    assert message in str(err.value)


@pytest.mark.slow
def test_lora_trains_adapters_then_merges(tmp_path):
    pytest.importorskip("peft")
    torch.set_num_threads(1)
    cfg = PairwiseConfig(epochs=2, batch_size=4, lr=1e-3, lora=True, num_threads=1)
    rm = PairwiseRewardModel(cfg).fit(PAIRS)
    assert len(rm.loss_history_) == 2 and rm.loss_history_[1] < rm.loss_history_[0]
    assert not hasattr(rm.model_, "peft_config")  # merged into a plain model before saving
    back = PairwiseRewardModel.load(rm.save(tmp_path / "lora"))
    cands = ["Great news!", "Terrible news."]
    np.testing.assert_allclose(
        back.score("Write a tweet.", cands), rm.score("Write a tweet.", cands), atol=1e-5
    )
