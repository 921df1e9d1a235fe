"""The abstain gate: given a classifier's output, act on its prediction or route the item to review.

Its state is a summary of the classifier's label distribution for one input — the top probability,
the margin between the top two, and the normalised entropy (:func:`confidence_features`) — and its
two actions are ``act`` (use the prediction) and ``abstain`` (send to human review). A small
Q-network scores both; the gate takes the larger. It is learned by
:class:`rewardloop.learners.dqn.DQN`.

Saved as ``gate.safetensors`` + ``gate.json``: loading runs no code.

:class:`GatedClassifier` serves a classifier behind its gate (the policy kind ``abstain_gate``): every
decision is the classifier's, logged with its label distribution and propensity, and marked
``metadata["abstain_gate"] = "abstain"`` where the gate's Q-value of abstaining beats acting — its
learned confidence threshold. The review policy (:mod:`rewardloop.loop.review`) queues those decisions
for a person instead of letting the caller act on them. Its artifact is one folder holding both the
classifier's files and the gate's.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from rewardloop.policies.artifacts import load_weights, read_meta, save_weights, write_meta
from rewardloop.policies.classifier import ClassifierPolicy
from rewardloop.policies.contract import GATE_KEY, DecisionContext, Exploration
from rewardloop.types import Decision

ACT, ABSTAIN = 0, 1
GATE_ACTIONS = ("act", "abstain")
N_FEATURES = 3


def confidence_features(proba: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
    """Features of shape (n, 3) from label probabilities of shape (n, K).

    Columns: top probability, margin between the two largest, entropy divided by log K (in [0, 1]).
    """
    proba = np.asarray(proba, dtype=np.float64)
    if proba.ndim != 2 or proba.shape[1] < 2:
        raise ValueError(f"proba: expected shape (n, K) with K >= 2, got {proba.shape}")
    top2 = np.sort(proba, axis=1)[:, -2:]  # (n, 2) ascending
    safe = np.clip(proba, 1e-12, 1.0)
    ent = -(proba * np.log(safe)).sum(axis=1) / np.log(proba.shape[1])  # (n,)
    return np.stack([top2[:, 1], top2[:, 1] - top2[:, 0], ent], axis=1).astype(np.float32)


def make_q_head(hidden: int = 16) -> nn.Module:
    """Q-network: features (B, 3) → Q-values (B, 2) for (act, abstain)."""
    return nn.Sequential(nn.Linear(N_FEATURES, hidden), nn.ReLU(), nn.Linear(hidden, len(GATE_ACTIONS)))


class AbstainGate:
    """Decide, for each classifier output, whether to act on the prediction or abstain to review.

    Parameters
    ----------
    head : torch.nn.Module, optional
        Q-network mapping features (B, 3) to Q-values (B, 2). Default: a fresh ``make_q_head(hidden)``.
    hidden : int, default 16
        Width of the Q-network's hidden layer (recorded so that ``load`` rebuilds it).

    Examples
    --------
    >>> gate = AbstainGate()
    >>> gate.decide(np.array([[0.9, 0.05, 0.05], [0.4, 0.35, 0.25]])).shape
    (2,)
    """

    kind = "abstain_gate"

    def __init__(self, head: nn.Module | None = None, hidden: int = 16) -> None:
        if hidden < 1:
            raise ValueError(f"hidden: must be >= 1, got {hidden}")
        self.hidden = hidden
        self.head = head if head is not None else make_q_head(hidden)
        self.head.eval()

    def q_values(self, proba: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Q-values of shape (n, 2), columns (act, abstain), for label probabilities (n, K)."""
        with torch.inference_mode():
            q = self.head(torch.as_tensor(confidence_features(proba)))  # (n, 2)
        result: npt.NDArray[np.float64] = q.double().numpy()
        return result

    def decide(self, proba: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
        """Greedy gate actions of shape (n,): 0 = act on the prediction, 1 = abstain to review."""
        result: npt.NDArray[np.int64] = self.q_values(proba).argmax(axis=1).astype(np.int64)
        return result

    def save(self, path: str | Path) -> Path:
        """Write ``gate.safetensors`` and ``gate.json`` into the folder ``path``."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        save_weights(self.head, folder / "gate.safetensors")
        write_meta(
            folder / "gate.json", {"kind": self.kind, "hidden": self.hidden, "actions": list(GATE_ACTIONS)}
        )
        return folder

    @classmethod
    def load(cls, path: str | Path) -> AbstainGate:
        """Load a saved gate folder (safetensors + JSON; no code is run)."""
        folder = Path(path)
        meta = read_meta(folder, "gate.json", cls.kind, "an abstain gate")
        head = make_q_head(meta["hidden"])
        load_weights(head, folder / "gate.safetensors")
        return cls(head=head, hidden=meta["hidden"])


class GatedClassifier:
    """A classifier served behind an abstain gate (policy kind ``abstain_gate``).

    Parameters
    ----------
    classifier : ClassifierPolicy
        Decides the label (with its own :attr:`~ClassifierPolicy.exploration`).
    gate : AbstainGate
        Reads the classifier's label probabilities and says act or abstain.

    Examples
    --------
    >>> gated = GatedClassifier(ClassifierPolicy(["a", "b"]), AbstainGate())     # doctest: +SKIP
    >>> gated.decide(DecisionContext(text="x"), rng).metadata["abstain_gate"]    # doctest: +SKIP
    'abstain'
    """

    kind = "abstain_gate"

    def __init__(self, classifier: ClassifierPolicy, gate: AbstainGate) -> None:
        self.classifier = classifier
        self.gate = gate

    @property
    def labels(self) -> list[str]:
        return self.classifier.labels

    @property
    def exploration(self) -> Exploration:
        return self.classifier.exploration

    def predict_proba(self, texts: list[str]) -> npt.NDArray[np.float64]:
        """The classifier's label probabilities (n, K): what golden-set runs and OPE score."""
        return self.classifier.predict_proba(texts)

    def decide(self, context: DecisionContext, rng: np.random.Generator) -> Decision:
        """The classifier's decision on ``context.text``, marked ``abstain_gate`` = act or abstain.

        ``metadata["gate_q"]`` holds the gate's Q-values (act, abstain) it was decided on.
        """
        text = context.require_text()
        start = time.perf_counter()
        proba = self.classifier.predict_proba([text])  # (1, K)
        q = self.gate.q_values(proba)[0]  # (2,): act, abstain
        verdict = GATE_ACTIONS[int(q.argmax())]
        latency = (time.perf_counter() - start) * 1000.0
        meta = {**context.metadata, GATE_KEY: verdict, "gate_q": [float(q[ACT]), float(q[ABSTAIN])]}
        return self.classifier.decisions_from_proba(
            [text], proba, self.classifier.exploration, rng, latency, [meta]
        )[0]

    def warm(self) -> None:
        self.classifier.warm()

    def save(self, path: str | Path) -> Path:
        """The classifier's files and the gate's (``gate.safetensors``, ``gate.json``) in one folder."""
        folder = self.classifier.save(path)
        self.gate.save(folder)
        return folder

    @classmethod
    def load(cls, path: str | Path, exploration: Exploration | None = None) -> GatedClassifier:
        """Load a folder saved by :meth:`save` (safetensors + JSON; no code is run)."""
        return cls(ClassifierPolicy.load(path, exploration=exploration), AbstainGate.load(path))
