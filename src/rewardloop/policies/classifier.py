"""The classifier policy: text → a distribution over labels, a chosen label, confidence and latency.

Two backends, one class:

- ``"embedding"`` (a): frozen MiniLM sentence embeddings and a small head (linear or one-hidden-layer
  MLP). The encoder is shared with everything else in the process, so its embedding cache is too.
- ``"finetuned"`` (b): the MiniLM encoder fine-tuned with LoRA (``learners.lora``), the adapters merged
  into plain BERT weights, and a head. Inference needs neither peft nor the adapters.

The head maps embeddings of shape (B, 384) to logits (B, K); a temperature fitted on held-out data
(temperature scaling, Guo et al. 2017, "On Calibration of Modern Neural Networks") divides the logits.

Saved as ``head.safetensors`` + ``policy.json`` (labels, head shape, temperature, backend), plus
``encoder.safetensors`` for backend (b): loading runs no code and imports no training extras.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize_scalar
from scipy.special import logsumexp
from torch import nn

from rewardloop.encoders import EMBEDDING_DIM, MiniLMEncoder
from rewardloop.policies.artifacts import load_weights, save_weights
from rewardloop.policies.contract import DecisionContext, Exploration, ExploreMode, PolicyInputError, draw
from rewardloop.policies.encoder_head import EncoderHeadPolicy
from rewardloop.types import Decision

Backend = Literal["embedding", "finetuned"]
BACKENDS: tuple[str, ...] = ("embedding", "finetuned")


def make_head(in_dim: int, n_labels: int, hidden: int = 0, dropout: float = 0.0) -> nn.Module:
    """A linear head (``hidden=0``) or a one-hidden-layer MLP mapping (B, in_dim) to (B, n_labels)."""
    if hidden <= 0:
        return nn.Linear(in_dim, n_labels)
    return nn.Sequential(
        nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, n_labels)
    )


def softmax(logits: npt.NDArray[np.float64], axis: int = -1) -> npt.NDArray[np.float64]:
    z = logits - logits.max(axis=axis, keepdims=True)
    e = np.exp(z)
    result: npt.NDArray[np.float64] = e / e.sum(axis=axis, keepdims=True)
    return result


class ClassifierPolicy(EncoderHeadPolicy):
    """Decide a label for a text.

    Parameters
    ----------
    labels : sequence of str
        The K labels, in the order of the head's outputs.
    head : torch.nn.Module, optional
        Maps embeddings (B, 384) to logits (B, K). Default: a fresh linear head.
    hidden : int, default 0
        Width of the head's hidden layer (0: linear); recorded so that ``load`` rebuilds the head.
    temperature : float, default 1.0
        Logits are divided by it (fitted on held-out data by temperature scaling).
    encoder : MiniLMEncoder, optional
        Default: the process-wide shared encoder, loaded on first use. Backend ``"finetuned"`` needs its
        own encoder, holding the fine-tuned weights.
    name, version : str
        Logged on every decision.
    backend : {"embedding", "finetuned"}, default "embedding"
        Frozen shared encoder + head, or a fine-tuned (LoRA-merged) encoder + head.
    exploration : Exploration, optional
        How :meth:`decide` draws the label (default ε-greedy with ε = 0.1, what the service serves).
        A serving setting, not saved with the model: :func:`rewardloop.loop.serving.load_policy` sets it
        from ``policies[].options``.

    Examples
    --------
    >>> policy = ClassifierPolicy(["on", "off"], exploration=Exploration("sample"))   # doctest: +SKIP
    >>> policy.decide(DecisionContext(text="turn the lights on"), rng).action_dist  # doctest: +SKIP
    (0.51, 0.49)
    >>> policy.fit_temperature(X_val, y_val).temperature               # doctest: +SKIP
    1.7
    """

    kind = "classifier"
    meta_name = "policy.json"
    folder_what = "a classifier policy"

    def __init__(
        self,
        labels: Sequence[str],
        head: nn.Module | None = None,
        hidden: int = 0,
        temperature: float = 1.0,
        encoder: MiniLMEncoder | None = None,
        name: str = "classifier",
        version: str = "0",
        in_dim: int = EMBEDDING_DIM,
        backend: Backend = "embedding",
        exploration: Exploration | None = None,
    ) -> None:
        if len(labels) < 2:
            raise ValueError(f"labels: a classifier needs at least 2 labels, got {len(labels)}")
        if len(set(labels)) != len(labels):
            raise ValueError("labels: must not repeat a label")
        if not temperature > 0:
            raise ValueError(f"temperature: must be > 0, got {temperature}")
        if backend not in BACKENDS:
            raise ValueError(f"backend: must be one of {', '.join(BACKENDS)}, got {backend!r}")
        if backend == "finetuned" and encoder is None:
            raise ValueError("encoder: backend 'finetuned' needs its own (fine-tuned) encoder")
        super().__init__(
            labels,
            head,
            lambda: make_head(in_dim, len(labels), hidden),
            encoder,
            name,
            version,
            in_dim,
            exploration,
        )
        self.backend: Backend = backend
        self.hidden = hidden
        self.temperature = float(temperature)

    # ------------------------------------------------------------------------------------ inference

    def logits_embeddings(self, X: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        """Temperature-scaled logits of shape (n, K) for embeddings X of shape (n, in_dim)."""
        return self.raw_logits_embeddings(X) / self.temperature

    def predict_proba_embeddings(self, X: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        """Label probabilities of shape (n, K) for embeddings of shape (n, in_dim)."""
        return softmax(self.logits_embeddings(X))

    def predict_proba(self, texts: Sequence[str]) -> npt.NDArray[np.float64]:
        """Label probabilities of shape (n, K) for texts."""
        return self.predict_proba_embeddings(self.embed(texts))

    def predict(self, texts: Sequence[str]) -> list[str]:
        return [self.labels[i] for i in self.predict_proba(texts).argmax(axis=1)]

    def label_indices(self, y: Sequence[str] | Sequence[int] | npt.NDArray[Any]) -> npt.NDArray[np.int64]:
        """Labels (strings, or indices already) as indices into ``labels``, shape (n,)."""
        arr = np.asarray(y)
        if arr.dtype.kind in "iu":
            bad = np.flatnonzero((arr < 0) | (arr >= self.n_labels))
            if bad.size:
                raise ValueError(f"y: row {bad[0]}: label index {arr[bad[0]]} not in [0, {self.n_labels})")
            return arr.astype(np.int64)
        index = {label: i for i, label in enumerate(self.labels)}
        out = np.empty(len(arr), dtype=np.int64)
        for row, label in enumerate(arr.tolist()):
            if label not in index:
                raise ValueError(f"y: row {row}: {label!r} is not a label of this policy")
            out[row] = index[label]
        return out

    def fit_temperature(
        self,
        X_val: npt.NDArray[np.float32] | Sequence[str],
        y_val: Sequence[str] | Sequence[int] | npt.NDArray[Any],
        bounds: tuple[float, float] = (0.05, 20.0),
    ) -> ClassifierPolicy:
        """Fit the temperature on held-out data by minimising the negative log-likelihood.

        Temperature scaling (Guo et al. 2017): ``T* = argmin_T  mean_i [logsumexp(z_i / T) - z_iy / T]``
        over the raw logits ``z`` (n, K); the arg-max, and so accuracy, does not change. Searched on
        log T within ``bounds``. Sets ``temperature`` and ``temperature_nll_ = (nll at T=1, at T*)``.

        Parameters
        ----------
        X_val : array of shape (n, in_dim), or sequence of n texts
            Held-out embeddings (or texts, embedded with :meth:`embed`); not the training data.
        y_val : sequence of n labels (strings or indices)

        Returns
        -------
        self
        """
        X = self.embed(list(X_val)) if _is_texts(X_val) else np.asarray(X_val, dtype=np.float32)
        y = self.label_indices(y_val)
        if len(y) != len(X) or len(y) == 0:
            raise ValueError(f"y_val: {len(y)} labels for {len(X)} samples (need the same, and >= 1)")
        z = self.raw_logits_embeddings(X)  # (n, K)
        picked = z[np.arange(len(y)), y]  # (n,)

        def nll(log_t: float) -> float:
            t = np.exp(log_t)
            return float(np.mean(logsumexp(z / t, axis=1) - picked / t))

        lo, hi = bounds
        if not 0 < lo < hi:
            raise ValueError(f"bounds: need 0 < low < high, got {bounds}")
        res = minimize_scalar(nll, bounds=(np.log(lo), np.log(hi)), method="bounded", options={"xatol": 1e-6})
        self.temperature = float(np.exp(res.x))
        self.temperature_nll_ = (nll(0.0), float(res.fun))
        return self

    def decide_batch(
        self,
        texts: Sequence[str],
        mode: ExploreMode = "greedy",
        epsilon: float = 0.1,
        rng: np.random.Generator | None = None,
        metadata: Sequence[dict[str, Any]] | None = None,
    ) -> list[Decision]:
        """Decide for each text and return the decisions, ready to log.

        ``mode`` says how the action is drawn, and so what ``action_dist`` and ``pscore`` are:
        ``greedy`` takes the arg-max (a one-hot distribution, pscore 1: no exploration);
        ``sample`` draws from the model's distribution; ``epsilon`` takes the arg-max with
        probability 1-ε and a uniform label otherwise (see :class:`Exploration`). ``confidence`` is
        always the model's probability of the chosen label. ``latency_ms`` is the per-text share of the
        batch's time. Every mode but ``greedy`` needs ``rng``: draws are never unseeded.
        """
        try:
            exploration = Exploration(mode, epsilon)
        except PolicyInputError as err:
            raise ValueError(f"{'mode' if err.field == 'explore' else err.field}: {err.reason}") from None
        start = time.perf_counter()
        proba = self.predict_proba(texts)  # (n, K)
        latency = (time.perf_counter() - start) * 1000.0 / max(len(texts), 1)
        return self.decisions_from_proba(texts, proba, exploration, rng, latency, metadata)

    def decisions_from_proba(
        self,
        texts: Sequence[str],
        proba: npt.NDArray[np.float64],
        exploration: Exploration,
        rng: np.random.Generator | None,
        latency_ms: float | None = None,
        metadata: Sequence[Any] | None = None,
    ) -> list[Decision]:
        """Decisions for ``texts`` from the model's probabilities ``proba`` (n, K) served as
        ``exploration``; ``rng`` draws the labels (may be None only for ``greedy``)."""
        dist = exploration.action_dist(proba)  # (n, K)
        if exploration.mode == "greedy":
            chosen = dist.argmax(axis=1)
        elif rng is None:
            raise ValueError(f"rng: mode {exploration.mode!r} draws labels; pass a seeded generator")
        else:
            chosen = draw(dist, rng)
        labels = tuple(self.labels)
        out = []
        for i, text in enumerate(texts):
            a = int(chosen[i])
            out.append(
                Decision(
                    policy=self.name,
                    policy_version=self.version,
                    kind="classifier",
                    actions=labels,
                    action=labels[a],
                    action_dist=tuple(dist[i].tolist()),
                    pscore=float(dist[i, a]),
                    confidence=float(proba[i, a]),
                    latency_ms=latency_ms,
                    text=text,
                    metadata=dict(metadata[i]) if metadata is not None else {},
                )
            )
        return out

    def decide(self, context: DecisionContext, rng: np.random.Generator) -> Decision:
        """Decide a label for ``context.text``, served as :attr:`exploration` (the policy contract)."""
        text = context.require_text()
        start = time.perf_counter()
        proba = self.predict_proba([text])  # (1, K)
        latency = (time.perf_counter() - start) * 1000.0
        return self.decisions_from_proba([text], proba, self.exploration, rng, latency, [context.metadata])[0]

    # ---------------------------------------------------------------------------------- persistence

    def save(self, path: str | Path) -> Path:
        """Write ``head.safetensors`` and ``policy.json`` into the folder ``path``."""
        folder = self.save_head(
            path,
            {"backend": self.backend, "hidden": self.hidden, "temperature": self.temperature},
        )
        if self.backend == "finetuned":
            save_weights(self.encoder.model, folder / "encoder.safetensors")
        return folder

    @classmethod
    def load(
        cls, path: str | Path, encoder: MiniLMEncoder | None = None, exploration: Exploration | None = None
    ) -> ClassifierPolicy:
        """Load a saved policy folder (safetensors + JSON; no code is run), served as ``exploration``."""
        folder = Path(path)
        meta, saved = cls.read_head(
            folder, lambda meta: make_head(meta["in_dim"], len(meta["labels"]), meta["hidden"])
        )
        backend = meta.get("backend", "embedding")
        if backend == "finetuned":
            # The merged fine-tuned weights on the base architecture: plain transformers, no peft.
            encoder = MiniLMEncoder()
            load_weights(encoder.model, folder / "encoder.safetensors")
            encoder.model.eval()
        return cls(
            **saved,
            hidden=meta["hidden"],
            temperature=meta["temperature"],
            encoder=encoder,
            backend=backend,
            exploration=exploration,
        )


def _is_texts(X: object) -> bool:
    return isinstance(X, list | tuple) and (len(X) == 0 or isinstance(X[0], str))
