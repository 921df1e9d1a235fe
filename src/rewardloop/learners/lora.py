"""Supervised LoRA fine-tuning of the MiniLM encoder together with the classifier head: backend (b).

LoRA (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models") freezes each adapted weight
``W`` and learns a low-rank update ``W + (α/r)·B·A`` (``A``: r × d_in, ``B``: d_out × r, ``B = 0`` at the
start, so training starts from the pretrained encoder). After training the update is merged into
``W`` (``merge_and_unload``): inference runs a plain BERT with no peft and no extra cost, and the policy
saves as safetensors that load without peft.

The embedding is the encoder's own (mean pooling over tokens, L2 normalisation), so a head trained by
``SupervisedLearner`` on frozen embeddings is a good start (``warm_start``).

Read top to bottom: the config, the loss (the weighted cross-entropy of ``supervised``), then ``fit()``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from rewardloop.encoders import MiniLMEncoder
from rewardloop.learners._common import MinibatchSGD, lora_modules, peft_lora, policy_like, seeded, start_head
from rewardloop.learners.base import (
    AT_LEAST_ONE,
    POSITIVE,
    UNIT_BELOW_ONE,
    Bound,
    LearnerConfig,
    LearnerConfigError,
    hyperparameter,
)
from rewardloop.learners.data import LabelConfig, LabelLearner, checked_weights
from rewardloop.learners.supervised import balanced_weights, weighted_cross_entropy
from rewardloop.policies.classifier import ClassifierPolicy

# ---------------------------------------------------------------------------------------------- config


@dataclass
class LoRAConfig(LabelConfig):
    """LoRA fine-tuning of MiniLM + head (slow on a CPU: a few hundred short texts a minute or so)."""

    lr: float = hyperparameter(5e-4, "AdamW learning rate of the LoRA adapters", POSITIVE)
    head_lr: float = hyperparameter(1e-2, "AdamW learning rate of the head", POSITIVE)
    epochs: int = hyperparameter(3, "passes over the training data", AT_LEAST_ONE)
    batch_size: int = hyperparameter(16, "texts per optimisation step", AT_LEAST_ONE)
    r: int = hyperparameter(8, "LoRA rank r", AT_LEAST_ONE)
    alpha: int = hyperparameter(16, "LoRA scaling α (the update is scaled by α/r)", POSITIVE)
    lora_dropout: float = hyperparameter(0.05, "dropout on the LoRA path", UNIT_BELOW_ONE)
    target_modules: str = hyperparameter(
        "query,value", "comma-separated BERT linear layers that get adapters"
    )
    max_length: int = hyperparameter(64, "tokens per text (intents are short)", Bound(4.0))
    weight_decay: float = hyperparameter(0.0, "AdamW decoupled weight decay")

    def validate(self) -> None:
        super().validate()
        if not lora_modules(self.target_modules):
            raise LearnerConfigError("target_modules: name at least one layer, e.g. query,value")


# ------------------------------------------------------------------------------------------------- fit


def mean_pooled(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The encoder's sentence embedding with gradients: mean over tokens, then L2 norm. (B, 384)."""
    hidden = model(**batch).last_hidden_state  # (B, T, 384)
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)  # (B, 384)
    return torch.nn.functional.normalize(pooled, p=2, dim=1)


def _peft_model(cfg: LoRAConfig, encoder: MiniLMEncoder, head: torch.nn.Module) -> tuple[Any, Any, int]:
    """(the encoder with LoRA adapters — base frozen —, AdamW over adapters and head, trainable count)."""
    from peft import get_peft_model

    lora = peft_lora(cfg.r, cfg.alpha, cfg.lora_dropout, cfg.target_modules)
    with warnings.catch_warnings():  # transformers' deprecation notice, raised inside peft
        warnings.simplefilter("ignore", FutureWarning)
        model = get_peft_model(encoder.model, lora)  # freezes the base, adds A, B
    params = [p for p in model.parameters() if p.requires_grad]
    n_trainable = sum(p.numel() for p in params) + sum(p.numel() for p in head.parameters())
    opt = torch.optim.AdamW(
        [{"params": params, "lr": cfg.lr}, {"params": list(head.parameters()), "lr": cfg.head_lr}],
        weight_decay=cfg.weight_decay,
    )
    return model, opt, n_trainable


def _save_adapters(folder: Path, model: Any, head: torch.nn.Module) -> None:
    """A checkpoint: the LoRA adapters and the head, as safetensors (no pickle)."""
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    adapters = {k: v.detach().contiguous() for k, v in get_peft_model_state_dict(model).items()}
    save_file(adapters, str(folder / "adapters.safetensors"))
    save_file(
        {k: v.detach().contiguous() for k, v in head.state_dict().items()}, str(folder / "head.safetensors")
    )


class LoRALearner(LabelLearner[LoRAConfig]):
    """Fine-tune the MiniLM encoder with LoRA and a head on labelled texts; merge for inference.

    Parameters
    ----------
    config : LoRAConfig, optional
    progress : callable, optional
        ``progress(step, total_steps, metrics)`` after each optimisation step.

    Attributes
    ----------
    policy_ : ClassifierPolicy
        The fitted policy, backend ``"finetuned"`` (also what ``fit`` returns).
    history_ : list of dict
        Per-step metrics (``train/loss``, ``time/epoch``, ``time/step``).
    loss_history_ : list of float
        Mean training loss per epoch.
    n_trainable_ : int
        Parameters trained (adapters + head).

    Examples
    --------
    >>> learner = LoRALearner(LoRAConfig(epochs=2, r=4))                 # doctest: +SKIP
    >>> policy = learner.fit(["lights on", "lights off"], ["on", "off"])  # doctest: +SKIP
    >>> policy.backend                                                   # doctest: +SKIP
    'finetuned'
    """

    name: ClassVar[str] = "lora"
    config_class: ClassVar[type[LearnerConfig]] = LoRAConfig
    #: It fine-tunes the encoder from the texts: the command does not pre-embed them with the base.
    reads_texts: ClassVar[bool] = True

    def _fit(
        self, X: Any, y: list[Any], sample_weight: Any, policy: ClassifierPolicy | None, labels: Any
    ) -> ClassifierPolicy:
        """Texts only; the fitted policy has backend ``"finetuned"``, its adapters merged."""
        cfg = self.config
        if not isinstance(X, list | tuple) or not all(isinstance(t, str) for t in X):
            raise ValueError("X: LoRA fine-tuning reads texts (a list of str), not embeddings")
        texts = list(X)
        if not texts or len(texts) != len(y):
            raise ValueError(f"y: {len(y)} labels for {len(texts)} texts (need the same, and >= 1)")
        policy, warm = self._start(policy, y, labels)
        yi = policy.label_indices(y)  # (n,)
        w = checked_weights(sample_weight, len(yi))
        if cfg.class_weight == "balanced":
            w = w * balanced_weights(yi, policy.n_labels)

        # A fresh encoder object: the shared one (and its embedding cache) stays the frozen base.
        encoder = MiniLMEncoder()
        if policy.backend == "finetuned":
            encoder.model.load_state_dict(policy.encoder.model.state_dict())
        tokenizer = encoder.tokenizer
        y_t, w_t = torch.from_numpy(yi), torch.from_numpy(w).float()
        with seeded(cfg.seed):
            head, hidden = start_head(policy, warm, cfg.hidden)
            model, opt, self.n_trainable_ = _peft_model(cfg, encoder, head)

            def batch_loss(idx: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
                batch = tokenizer(
                    [texts[i] for i in idx.tolist()],
                    padding=True,
                    truncation=True,
                    max_length=cfg.max_length,
                    return_tensors="pt",
                )
                logits = head(mean_pooled(model, dict(batch)))  # (B, K)
                loss = weighted_cross_entropy(logits, y_t[idx], w_t[idx])
                return loss, {"loss": float(loss.detach())}

            def save_checkpoint(folder: Path) -> None:
                _save_adapters(folder, model, head)

            sgd = MinibatchSGD(cfg, len(texts), opt, [], None, self.progress, save_checkpoint)
            self.loss_history_ = sgd.run(batch_loss, [model, head])
            # W + (α/r)·B·A folded into W: a plain BertModel again, no peft at inference.
            encoder.model = model.merge_and_unload().eval()
        encoder._cache.clear()
        self.history_ = sgd.history
        self.policy_ = policy_like(policy, head, hidden, encoder=encoder, backend="finetuned")
        return self.policy_


__all__ = ["LoRAConfig", "LoRALearner", "mean_pooled"]
