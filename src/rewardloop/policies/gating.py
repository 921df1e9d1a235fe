"""Gating policy: an MLP over a context embedding → a softmax over K experts (inference and artifacts).

Trained by :mod:`rewardloop.learners.gating` (REINFORCE). Every decision returns the exact action
distribution (the softmax) and the chosen expert's propensity. Weights are saved in safetensors, the
rest (experts, sizes, temperature) in JSON — nothing loaded back can run code.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn

from rewardloop.policies.artifacts import save_weights
from rewardloop.policies.contract import DecisionContext, draw
from rewardloop.policies.router import FloatArray, RouterDecision, RouterInputError
from rewardloop.types import Decision

FORMAT_VERSION = 1


class GatingNetwork(nn.Module):
    """``in_dim → hidden (ReLU) → n_experts`` logits."""

    def __init__(self, in_dim: int, n_experts: int, hidden: int = 64) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, n_experts))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, in_dim) -> (B, K)
        logits: torch.Tensor = self.body(x)
        return logits


class GatingPolicy:
    """Softmax gating over experts from a context embedding.

    Parameters
    ----------
    experts : sequence of str
        Expert names (``literal``, ``systemic``, ``principles``, ``precedent``...).
    in_dim : int
        Length of the context embedding (384 for MiniLM).
    hidden : int, default 64
        Hidden units of the MLP.
    temperature : float, default 1.0
        Softmax temperature at decision time.
    random_state : int or None
        Seeds the weights' initialisation and the sampling of decisions.

    Examples
    --------
    >>> policy = GatingPolicy(["literal", "precedent"], in_dim=3, random_state=0)
    >>> d = policy.act([0.1, 0.2, 0.3])
    >>> d.arm in ("literal", "precedent"), round(float(d.action_dist.sum()), 6)
    (True, 1.0)
    """

    def __init__(
        self,
        experts: Sequence[str],
        in_dim: int,
        hidden: int = 64,
        temperature: float = 1.0,
        random_state: int | None = None,
    ) -> None:
        self.experts = list(experts)
        if not self.experts or len(set(self.experts)) != len(self.experts):
            raise RouterInputError("experts", "must be a non-empty list of distinct names")
        if in_dim < 1 or hidden < 1:
            raise RouterInputError("in_dim", f"in_dim and hidden must be >= 1, got {in_dim}, {hidden}")
        if not temperature > 0:
            raise RouterInputError("temperature", f"must be > 0, got {temperature}")
        self.in_dim = in_dim
        self.hidden = hidden
        self.temperature = temperature
        self.random_state = random_state
        gen = torch.Generator().manual_seed(random_state if random_state is not None else 0)
        with torch.random.fork_rng():
            torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
            self.net = GatingNetwork(in_dim, len(self.experts), hidden)
        self.rng_ = np.random.default_rng(random_state)

    def _tensor(self, X: Any) -> torch.Tensor:
        arr = np.asarray(X, dtype=np.float32)
        if arr.ndim == 1:
            arr = arr[None]
        if arr.ndim != 2 or arr.shape[1] != self.in_dim:
            raise RouterInputError("context", f"expected shape (n, {self.in_dim}), got {np.shape(X)}")
        if not np.isfinite(arr).all():
            raise RouterInputError("context", "must be finite numbers (found NaN or inf)")
        return torch.from_numpy(arr)

    def probs(self, X: Any) -> FloatArray:
        """Action distributions, shape (n, n_experts)."""
        with torch.no_grad():
            logits = self.net(self._tensor(X)) / self.temperature
            p = torch.softmax(logits.double(), dim=-1).numpy()
        return np.asarray(p, dtype=np.float64)

    def act(self, x: Any, greedy: bool = False) -> RouterDecision:
        """Draw an expert for one context (or take the most probable with ``greedy``)."""
        dist = self.probs(x)[0]
        if greedy:
            i = int(dist.argmax())
        else:
            cdf = np.cumsum(dist)
            i = min(int(np.searchsorted(cdf, self.rng_.random() * cdf[-1], side="right")), len(dist) - 1)
        return self._routed(dist, i)

    def _routed(self, dist: FloatArray, i: int) -> RouterDecision:
        return RouterDecision(self.experts[i], i, dist, float(dist[i]), dist, tuple(self.experts))

    def decide(self, context: DecisionContext, rng: np.random.Generator) -> Decision:
        """Draw an expert for ``context.features`` from the softmax, with ``rng`` (the policy contract);
        the policy's own generator is not used or advanced."""
        features = context.require_features()
        start = time.perf_counter()
        dist = self.probs(features)[0]  # (K,)
        i = int(draw(dist[None], rng)[0])
        routed = self._routed(dist, i)
        latency = (time.perf_counter() - start) * 1000.0
        return routed.to_record("gating", "0", features, context.text, context.metadata, latency_ms=latency)

    def save(self, path: str | Path) -> Path:
        """``gating.safetensors`` (weights) + ``gating.json`` (experts, sizes, random state) in ``path``."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        save_weights(self.net, folder / "gating.safetensors")
        meta = {
            "format": FORMAT_VERSION,
            "experts": self.experts,
            "in_dim": self.in_dim,
            "hidden": self.hidden,
            "temperature": self.temperature,
            "random_state": self.random_state,
            "rng": self.rng_.bit_generator.state,
        }
        (folder / "gating.json").write_text(json.dumps(meta, indent=1))
        return folder

    @classmethod
    def load(cls, path: str | Path) -> GatingPolicy:
        """Restore a saved gating policy; it gives the same distributions and draws."""
        folder = Path(path)
        try:
            meta = json.loads((folder / "gating.json").read_text())
            weights = load_file(folder / "gating.safetensors")
        except FileNotFoundError as err:
            raise RouterInputError(
                "path", f"no saved gating policy in {folder} ({Path(err.filename).name} missing)"
            ) from None
        policy = cls(
            meta["experts"], meta["in_dim"], meta["hidden"], meta["temperature"], meta["random_state"]
        )
        policy.net.load_state_dict(weights)
        policy.rng_.bit_generator.state = meta["rng"]
        return policy
