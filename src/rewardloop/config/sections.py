"""The sections of ``rewardloop.yaml``. Each later layer reads only its own section.

Fields carry a description: ``rewardloop init`` writes them as comments, and ``--help`` shows them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_STORE_URL = "sqlite:///rewardloop.db"


class Section(BaseModel):
    """A config section: unknown keys are errors, so a typo never passes silently."""

    model_config = ConfigDict(extra="forbid")


class StoreConfig(Section):
    url: str = Field(
        DEFAULT_STORE_URL,
        description="SQLAlchemy URL: sqlite:///file.db (embedded default) or "
        "postgresql+psycopg://user@host:5432/db (production)",
    )
    echo: bool = Field(False, description="log every SQL statement (debugging)")


class PolicyConfig(Section):
    name: str = Field(description="the policy's name, as logged on its decisions")
    kind: Literal["classifier", "router", "reranker"] = Field(description="what it decides")
    labels: list[str] = Field(default_factory=list, description="the actions/labels it chooses among")
    options: dict[str, Any] = Field(default_factory=dict, description="backend options")


class RewardSpecConfig(Section):
    name: str = Field(description="the spec's name; rewards carry it")
    version: int = Field(1, ge=1, description="bump when the definition changes; rewards are per version")
    function: str = Field(description="reward function, e.g. accuracy, calibration, latency, weighted")
    weights: dict[str, float] = Field(default_factory=dict, description="component weights")
    scale: Literal["unit", "signed"] = Field("unit", description="unit: [0, 1]; signed: [-1, 1]")
    combine: Literal["authority_mean", "mean", "latest"] = Field(
        "authority_mean", description="how several raters' feedback on one decision combine"
    )
    options: dict[str, Any] = Field(default_factory=dict, description="function options, e.g. target_ms")


class TrainingConfig(Section):
    learner: str = Field("supervised", description="learner name: supervised, reinforce, ppo, a2c, dqn, dpo")
    policy: str | None = Field(None, description="which policy to train (default: the first one)")
    reward_spec: str | None = Field(None, description="reward spec the RL learners read")
    lr: float = Field(1e-3, gt=0, description="learning rate")
    seed: int = Field(0, description="random seed; runs are reproducible")
    options: dict[str, Any] = Field(default_factory=dict, description="learner-specific fields")


class GateConfig(Section):
    min_accuracy: float | None = Field(None, ge=0, le=1, description="overall golden accuracy at least")
    min_critical_accuracy: float | None = Field(None, ge=0, le=1, description="on critical items at least")
    max_ece: float | None = Field(None, ge=0, le=1, description="expected calibration error at most")
    max_class_drop: float | None = Field(None, ge=0, le=1, description="largest per-class drop vs champion")
    min_ope_lower_vs_champion: float | None = Field(
        None, description="OPE lower bound minus the champion's value at least"
    )


class EvaluationConfig(Section):
    golden: str | None = Field(None, description="golden set file (JSONL or CSV)")
    gate: GateConfig = Field(default_factory=GateConfig)


class ExperimentsConfig(Section):
    """Champion/challenger experiments and the registry they promote into (``rewardloop experiment``)."""

    ramp: list[float] = Field(
        [0.05, 0.25, 0.5, 1.0],
        description="challenger traffic shares, in order; the step to 1.0 is the promotion",
    )
    min_samples: int = Field(
        1000, ge=1, description="rewarded decisions per variant and stage before a verdict"
    )
    alpha: float = Field(0.05, gt=0, lt=1, description="significance level of the tests")
    shadow: bool = Field(False, description="challenger decides on the same requests; champion serves")
    tau: float = Field(
        0.05,
        gt=0,
        description="mSPRT mixing scale: the success-rate difference the sequential test is tuned to detect",
    )
    max_expected_loss: float = Field(
        0.005, ge=0, description="promote only if the Bayesian expected loss of switching is at most this"
    )
    max_latency_increase: float = Field(
        0.2, ge=0, description="roll back if latency is significantly higher by more than this share"
    )
    srm_threshold: float = Field(
        0.001, gt=0, lt=1, description="sample-ratio-mismatch p-value below which the split is broken"
    )
    max_samples: int | None = Field(
        None, ge=1, description="roll back if no significant gain after this many outcomes per variant"
    )
    max_ramp_loss: float = Field(
        0.01,
        ge=0,
        description="step up the ramp only while the challenger's Bayesian expected loss is at most this",
    )
    success_at: float = Field(0.5, description="a reward at or above this counts as a success")
    reward_spec: str | None = Field(
        None, description="reward spec the verdict reads (default: the only one with rewards)"
    )
    registry_root: str = Field("registry", description="folder the registry copies artifacts into")
    keep_last: int | None = Field(
        None, ge=1, description="keep the newest N versions per policy (never an aliased one); none: all"
    )


class ReviewConfig(Section):
    confidence_below: float = Field(0.7, ge=0, le=1, description="queue decisions less confident than this")
    audit_rate: float = Field(0.0, ge=0, le=1, description="share of other decisions queued at random")


class ServiceConfig(Section):
    host: str = Field("127.0.0.1", description="address to bind")
    port: int = Field(8000, ge=1, le=65535, description="port to bind")
    workers: int = Field(1, ge=1, description="uvicorn workers (several need PostgreSQL)")
    max_body_bytes: int = Field(1_000_000, ge=1, description="largest request body accepted")
