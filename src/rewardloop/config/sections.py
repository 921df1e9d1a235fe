"""The sections of ``rewardloop.yaml``. Each later layer reads only its own section.

Fields carry a description: ``rewardloop init`` writes them as comments, and ``--help`` shows them.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator

DEFAULT_STORE_URL = "sqlite:///rewardloop.db"
#: Old ``training`` key → its new name; the old ones are removed in rewardloop REMOVED_IN.
DEPRECATED_TRAINING_KEYS = {"checkpoint_every": "save_frequency", "keep_checkpoints": "keep_last_n"}
REMOVED_IN = "0.3.0"


def renamed_keys(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``values`` with the old checkpoint keys renamed, a DeprecationWarning for each (naming the
    version that removes them); a ValueError when both the old and the new name are set."""
    out = dict(values)
    for old, new in DEPRECATED_TRAINING_KEYS.items():
        if old in out:
            if new in out:
                raise ValueError(f"{old}: the old name of {new}; set only {new}")
            warnings.warn(
                f"{prefix}{old} is deprecated and will be removed in rewardloop {REMOVED_IN}; use {new}",
                DeprecationWarning,
                stacklevel=3,
            )
            out[new] = out.pop(old)
    return out


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


RewardFunctionName = Literal["accuracy", "calibration", "confidence", "latency", "multilevel", "weighted"]


class RewardSpecConfig(Section):
    """One named, versioned reward spec (see docs/rewards.md for each function and feedback mapping)."""

    name: str = Field(description="the spec's name; rewards carry it")
    version: int = Field(1, ge=1, description="bump when the definition changes; rewards are per version")
    function: RewardFunctionName = Field(
        description="reward function: accuracy, calibration (1 - |confidence - correct|), confidence "
        "(confidence-weighted correctness), latency (needs options.target_ms), multilevel (roll-up of "
        "level scores), weighted (weighted sum of named components)"
    )
    weights: dict[str, float] = Field(
        default_factory=dict,
        description="component weights (weighted, e.g. correct: 0.4) or level weights (multilevel); "
        "normalised to sum to 1",
    )
    scale: Literal["unit", "signed"] = Field("unit", description="unit: [0, 1]; signed: [-1, 1]")
    combine: Literal["authority_mean", "mean", "latest"] = Field(
        "authority_mean",
        description="how several raters' feedback on one decision combine: authority-weighted mean "
        "(its weighted std is kept as disagreement), plain mean, or the latest row",
    )
    options: dict[str, Any] = Field(default_factory=dict, description="function options, e.g. target_ms")


class TrainingConfig(Section):
    """``rewardloop train``: which learner, on which policy and rewards, with which hyperparameters.

    The common hyperparameters are flat keys (the names of the original plan's YAML are accepted:
    ``algorithm``, ``learning_rate``, ``reward_metric``); unset ones (null) keep the learner's default.
    ``options`` sets any field of the learner's config dataclass by name, and is checked by it, so a
    misspelt key is named with the fields that exist.
    """

    learner: str = Field(
        "supervised",
        validation_alias=AliasChoices("learner", "algorithm"),
        description="learner name (alias: algorithm): supervised, lora, reinforce, ppo, a2c, dqn, dpo "
        "(dqn learns an abstain gate; the loop saves it beside the classifier it gates)",
    )
    policy: str | None = Field(None, description="which policy to train (default: the first one)")
    reward_spec: str | None = Field(
        None,
        validation_alias=AliasChoices("reward_spec", "reward_metric"),
        description="reward spec the RL learners read (alias: reward_metric)",
    )
    init_from: str | None = Field(
        None, description="saved policy folder to start from (required by the RL learners)"
    )
    output_dir: str = Field("artifacts", description="trained policies go to <output_dir>/<policy>/<run id>")
    seed: int = Field(0, description="random seed; runs are reproducible")
    lr: float | None = Field(
        None, gt=0, validation_alias=AliasChoices("lr", "learning_rate"), description="learning rate"
    )
    batch_size: int | None = Field(None, ge=1, description="samples per optimisation step")
    epochs: int | None = Field(None, ge=1, description="passes over the training data")
    gamma: float | None = Field(None, ge=0, le=1, description="discount (single-step decisions: no effect)")
    update_epochs: int | None = Field(None, ge=1, description="PPO/A2C: optimisation epochs per batch")
    ppo_eps_clip: float | None = Field(None, gt=0, description="PPO clip range ε (> 0)")
    ppo_lambda: float | None = Field(None, ge=0, le=1, description="PPO GAE λ")
    dqn_epsilon: float | None = Field(None, ge=0, le=1, description="DQN ε-greedy exploration")
    baseline_decay: float | None = Field(
        None, ge=0, lt=1, description="REINFORCE/gating: EMA decay of the reward baseline"
    )
    clip_grad_norm: float | None = Field(
        None, ge=0, description="clip the gradient's global norm to this (0: off; max_grad_norm)"
    )
    entropy_coef: float | None = Field(
        None, ge=0, description="entropy bonus β of the policy-gradient learners"
    )
    save_frequency: int | None = Field(
        None, ge=0, description="save a checkpoint every N steps (0: never; old name checkpoint_every)"
    )
    keep_last_n: int | None = Field(
        None, ge=1, description="keep the newest N checkpoints (old name keep_checkpoints)"
    )
    checkpoint_dir: str | None = Field(None, description="folder for the checkpoints")
    min_feedback: int = Field(
        1, ge=1, description="refuse to train on fewer training examples than this (says how many there are)"
    )
    max_episodes: int | None = Field(
        None, ge=1, description="train on at most the newest N logged decisions (one decision: one episode)"
    )
    lookback_days: float | None = Field(
        None, gt=0, description="data window: decisions of the last N days (default: all; --since wins)"
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="any field of the learner's config, by name (checked)"
    )

    @model_validator(mode="before")
    @classmethod
    def _renamed_keys(cls, data: Any) -> Any:
        """The old checkpoint keys, with a DeprecationWarning naming the version that removes them."""
        return renamed_keys(data, "training.") if isinstance(data, dict) else data


class GateConfig(Section):
    """Release-gate thresholds; a threshold left empty (null) is not checked."""

    min_accuracy: float | None = Field(None, ge=0, le=1, description="overall golden accuracy at least")
    min_critical_accuracy: float | None = Field(None, ge=0, le=1, description="on critical items at least")
    max_ece: float | None = Field(None, ge=0, le=1, description="expected calibration error at most")
    max_class_drop: float | None = Field(
        None, ge=0, le=1, description="largest per-class accuracy (recall) drop vs the champion at most"
    )
    min_class_support: int = Field(
        1, ge=1, description="classes with fewer golden items than this are left out of the drop check"
    )
    min_ope_lower_vs_champion: float | None = Field(
        None, description="OPE lower bound minus the champion's value at least"
    )
    ope_estimator: str = Field("dr", description="which OPE estimator the gate reads (ipw, snipw, dm, dr)")


class MonitorConfig(Section):
    """Regression monitor over stored decisions and feedback, per policy version and time window."""

    window_hours: float = Field(24.0, gt=0, description="length of the window checked (and of its baseline)")
    max_accuracy_drop: float = Field(
        0.02, ge=0, le=1, description="alert when accuracy falls more than this vs the previous window"
    )
    max_p95_latency_ms: float = Field(500.0, gt=0, description="alert when p95 latency exceeds this")
    max_calibration_error: float = Field(
        0.10, ge=0, le=1, description="alert when the ECE of confidence vs feedback exceeds this"
    )
    max_category_share: float = Field(
        0.5, gt=0, le=1, description="alert when one chosen action/category takes more than this share"
    )
    min_samples: int = Field(20, ge=1, description="fewer decisions (or outcomes) than this: check skipped")
    webhook_url: str | None = Field(None, description="POST alerts as JSON to this URL (none: log only)")
    webhook_timeout_s: float = Field(5.0, gt=0, description="webhook request timeout in seconds")


class EvaluationConfig(Section):
    golden: str | None = Field(None, description="golden set file (JSONL or CSV)")
    n_bins: int = Field(15, ge=2, le=100, description="calibration bins of the ECE and reliability diagram")
    report_dir: str = Field("reports", description="where `rewardloop eval` writes its JSON/HTML reports")
    gate: GateConfig = Field(default_factory=GateConfig)
    monitor: MonitorConfig = Field(default_factory=MonitorConfig)


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
    min_latency_increase_ms: float = Field(
        5.0, ge=0, description="... and by more than this many milliseconds (ignore jitter on fast models)"
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
    audit_salt: str = Field(
        "audit", description="salt of the audit draw: a decision is sampled when hash(salt, id) < audit_rate"
    )
    disagreement: bool = Field(
        True, description="queue decisions on which the champion and a shadow challenger disagree"
    )
    reviewer_authority: float = Field(
        1.0, ge=0, le=1, description="authority weight of the feedback a reviewer's resolution writes"
    )


class ServiceConfig(Section):
    host: str = Field("127.0.0.1", description="address to bind")
    port: int = Field(8000, ge=1, le=65535, description="port to bind")
    workers: int = Field(1, ge=1, description="uvicorn workers (several need PostgreSQL)")
    max_body_bytes: int = Field(1_000_000, ge=1, description="largest request body accepted")
    group_commit: bool = Field(
        True,
        description="write concurrent feedback requests in one transaction (each is answered only "
        "after its row is committed)",
    )
    max_batch: int = Field(512, ge=1, description="most feedback rows one group commit writes")
    key_cache_seconds: float = Field(
        5.0, ge=0, description="how long a worker trusts a checked API key (a revocation waits this long)"
    )
