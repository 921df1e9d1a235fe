"""The sections of ``rewardloop.yaml``. Each later layer reads only its own section.

Fields carry a description: ``rewardloop init`` writes them as comments, and ``--help`` shows them.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any, Literal, get_args

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

DEFAULT_STORE_URL = "sqlite:///rewardloop.db"
#: Calibration bins of the ECE and reliability diagram, wherever they are computed (eval, gate, dashboard):
#: 15 equal-width bins, as Guo et al. 2017.
DEFAULT_N_BINS = 15
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
    max_actions: int = Field(
        1000, ge=1, description="most candidate actions one decision may list (more is refused with a 422)"
    )


class EncoderConfig(Section):
    """The MiniLM sentence encoder that classifiers and reward models share."""

    backend: Literal["torch", "onnx", "onnx-int8"] = Field(
        "torch",
        description="what runs MiniLM: torch (fp32), onnx (the same fp32 graph in ONNX Runtime, faster; "
        "needs the onnx extra) or onnx-int8 (int8 weights: faster again, cosine to fp32 down to 0.96)",
    )


class PolicyConfig(Section):
    name: str = Field(description="the policy's name, as logged on its decisions")
    kind: Literal["classifier", "router", "reranker", "generator", "set"] = Field(
        description="what it decides (generator: the text of an answer, see docs/generator.md; set: a "
        "subset of its labels, see docs/sets.md)"
    )
    labels: list[str] = Field(default_factory=list, description="the actions/labels it chooses among")
    options: dict[str, Any] = Field(default_factory=dict, description="backend options")
    arm_policies: dict[str, str] = Field(
        default_factory=dict,
        description="a router's arms that another policy answers: arm → policy (its champion and "
        "experiments), policy@alias or policy@version; a decision choosing such an arm is answered by "
        "that policy through the same serving path, and both decisions are logged (docs/routers.md)",
    )

    @model_validator(mode="after")
    def _arm_policies_route(self) -> PolicyConfig:
        if self.arm_policies and self.kind != "router":
            raise ValueError(
                f"arm_policies: only a router's arms name policies; {self.name!r} is a {self.kind}"
            )
        for arm, ref in self.arm_policies.items():
            policy, _, target = ref.partition("@")
            if not policy or policy == self.name or (_ and not target):
                raise ValueError(
                    f"arm_policies.{arm}: {ref!r} must be another policy, policy@alias or policy@version"
                )
        return self


#: The reward functions a spec can name, and what each computes (see docs/rewards.md).
REWARD_FUNCTIONS: dict[str, str] = {
    "accuracy": "correct in [0, 1] (signed: 2·correct - 1)",
    "calibration": "1 - |confidence - correct|",
    "confidence": "confidence · (2·correct - 1), unit scale maps it to [0, 1]",
    "latency": "correct · (1 - 0.5 · max(0, (latency - target) / target)); needs options.target_ms",
    "multilevel": "roll-up of multi-level scores, levels weighted by `weights` (default equal)",
    "weighted": "Σ w_k · component_k / Σ w_k over named components (correct, calibration, latency, "
    "confidence, implicit, rating, preference, multilevel, classification, set_penalty, set_jaccard, "
    "set_f1, or any multi-level score name)",
    "set_penalty": "− Σ missed_a − Σ unnecessary_a over a set's missed and unnecessary actions (per-action "
    "penalties: options.missed_penalty 0.5, unnecessary_penalty 0.3, action_penalties); scale raw",
    "set_jaccard": "|S ∩ T| / |S ∪ T| of the chosen set S and the set T the raters hold right",
    "set_f1": "2 |S ∩ T| / (|S| + |T|) of the chosen set S and the set T the raters hold right",
}
RewardScale = Literal["unit", "signed", "raw"]
RewardCombine = Literal["authority_mean", "mean", "latest"]


def _one_of(value: Any, allowed: tuple[str, ...], what: str) -> Any:
    if value not in allowed:
        raise ValueError(f"must be {what}, got {value!r}")
    return value


class RewardSpecConfig(Section):
    """One named, versioned reward spec: the one definition, read from ``rewardloop.yaml`` and built in
    code as :class:`rewardloop.rewards.RewardSpec` (see docs/rewards.md for each function)."""

    name: str = Field(description="the spec's name; rewards carry it")
    version: int = Field(1, description="bump when the definition changes; rewards are per version")
    function: str = Field(
        description="reward function: accuracy, calibration (1 - |confidence - correct|), confidence "
        "(confidence-weighted correctness), latency (needs options.target_ms), multilevel (roll-up of "
        "level scores), weighted (weighted sum of named components)"
    )
    weights: dict[str, float] = Field(
        default_factory=dict,
        description="component weights (weighted, e.g. correct: 0.4) or level weights (multilevel); "
        "normalised to sum to 1",
    )
    scale: RewardScale = Field(
        "unit",
        description="unit: [0, 1]; signed: [-1, 1]; raw: each function and component on its own range "
        "(classification ±1, set penalties <= 0)",
    )
    combine: RewardCombine = Field(
        "authority_mean",
        description="how several raters' feedback on one decision combine: authority-weighted mean "
        "(its weighted std is kept as disagreement), plain mean, or the latest row",
    )
    options: dict[str, Any] = Field(default_factory=dict, description="function options, e.g. target_ms")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("a reward spec needs a non-empty name")
        return value

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"must be an integer >= 1, got {value!r}")
        return value

    @field_validator("function")
    @classmethod
    def _function(cls, value: str) -> str:
        if value not in REWARD_FUNCTIONS:
            raise ValueError(f"unknown {value!r}; known: {', '.join(REWARD_FUNCTIONS)}")
        return value

    @field_validator("scale", mode="before")
    @classmethod
    def _scale(cls, value: Any) -> Any:
        return _one_of(value, get_args(RewardScale), "unit, signed or raw")

    @field_validator("combine", mode="before")
    @classmethod
    def _combine(cls, value: Any) -> Any:
        return _one_of(value, get_args(RewardCombine), f"one of {', '.join(get_args(RewardCombine))}")

    @model_validator(mode="after")
    def _consistent(self) -> RewardSpecConfig:
        """What one field cannot say: weights >= 0 and not all 0, a weighted spec has weights, a
        latency reward has a target."""
        for k, w in self.weights.items():
            if not (math.isfinite(w) and w >= 0):
                raise ValueError(f"weights.{k}: must be a number >= 0, got {w!r}")
        if self.weights and sum(self.weights.values()) <= 0:
            raise ValueError("weights: must not all be 0")
        if self.function == "weighted" and not self.weights:
            raise ValueError("weights: a weighted spec needs at least one component weight")
        if self.function == "latency" or "latency" in self.weights:
            target = self.options.get("target_ms")
            if isinstance(target, bool) or not (
                isinstance(target, int | float) and math.isfinite(target) and target > 0
            ):
                raise ValueError("options.target_ms: the latency reward needs a target > 0 ms")
        if (self.function == "set_penalty" or "set_penalty" in self.weights) and self.scale != "raw":
            raise ValueError("scale: a set_penalty reward is a sum of penalties (<= 0); use scale: raw")
        if self.function == "set_penalty" or "set_penalty" in self.weights:
            _check_penalties(self.options)
        return self


def _check_penalties(options: Mapping[str, Any]) -> None:
    """The set penalties of ``options`` (rewards/sets.py) are numbers >= 0; the error names the key."""
    per_action = options.get("action_penalties", {})
    if not isinstance(per_action, Mapping):
        raise ValueError("options.action_penalties: must map an action to {missed: x, unnecessary: y}")
    found = [(f"options.{k}", options[k]) for k in ("missed_penalty", "unnecessary_penalty") if k in options]
    for action, pens in per_action.items():
        if not isinstance(pens, Mapping) or not set(pens) <= {"missed", "unnecessary"}:
            raise ValueError(f"options.action_penalties.{action}: must be {{missed: x, unnecessary: y}}")
        found += [(f"options.action_penalties.{action}.{k}", v) for k, v in pens.items()]
    for where, value in found:
        if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
            raise ValueError(f"{where}: must be a number >= 0, got {value!r}")


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
        "(dqn learns an abstain gate; the loop saves it beside the classifier it gates); "
        "for a generator policy: sft, dpo, kto (docs/generator.md)",
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
    min_micro_f1: float | None = Field(
        None, ge=0, le=1, description="set policies: golden micro F1 over every (item, action) at least"
    )
    max_hamming_loss: float | None = Field(
        None, ge=0, le=1, description="set policies: share of wrong (item, action) cells at most"
    )


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
    webhook_retries: int = Field(
        3, ge=0, le=10, description="retries of a failed webhook POST (network error, HTTP 429 or 5xx)"
    )
    webhook_backoff_s: float = Field(
        1.0, ge=0, description="first retry waits up to this (full jitter), doubling each retry"
    )
    metrics_interval_s: float = Field(
        0.0,
        ge=0,
        description="the service runs the monitor this often for the /metrics quality gauges (0: off)",
    )
    drift: bool = Field(True, description="also run the input-drift checks (label mix, confidence, ...)")
    drift_alpha: float = Field(
        0.01,
        gt=0,
        lt=1,
        description="alert on input drift (label mix, confidence, embeddings, feedback rate) when its "
        "p-value vs the previous window is below this",
    )
    drift_permutations: int = Field(
        200, ge=10, le=10_000, description="permutations of the drift tests' p-values (seeded)"
    )


class EvaluationConfig(Section):
    golden: str | None = Field(None, description="golden set file (JSONL or CSV)")
    n_bins: int = Field(
        DEFAULT_N_BINS, ge=2, le=100, description="calibration bins of the ECE and reliability diagram"
    )
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
    max_samples: int = Field(
        5000,
        ge=1,
        description="sample budget: the experiment ends (champion kept) after this many outcomes per "
        "variant, over all its stages, without a promotion (at 5000 the always-valid interval of a 30% "
        "success rate is about ±3 points: a smaller gain is not worth a longer wait)",
    )
    max_ramp_loss: float = Field(
        0.01,
        ge=0,
        description="step up the ramp only while the challenger's Bayesian expected loss is at most this",
    )
    non_inferiority_margin: float | None = Field(
        0.02,
        ge=0,
        le=1,
        description="a canary is non-inferior while its always-valid interval says it is worse by less "
        "than this success rate; it ramps while non-inferior, and is promoted once non-inferior when "
        "its offline evidence (golden set, OPE) says it is better (none: only a significant gain "
        "promotes)",
    )
    success_at: float = Field(0.5, description="a reward at or above this counts as a success")
    reward_spec: str | None = Field(
        None, description="reward spec the verdict reads (default: the only one with rewards)"
    )
    registry_root: str = Field("registry", description="folder the registry copies artifacts into")
    keep_last: int | None = Field(
        None, ge=1, description="keep the newest N versions per policy (never an aliased one); none: all"
    )

    @model_validator(mode="after")
    def _budget_holds_a_stage(self) -> ExperimentsConfig:
        if self.max_samples < self.min_samples:
            raise ValueError(
                f"max_samples: the sample budget ({self.max_samples}) must be at least min_samples "
                f"({self.min_samples}), or no stage could ever be judged"
            )
        return self


class ReviewConfig(Section):
    confidence_below: float = Field(
        0.5,
        ge=0,
        le=1,
        description="queue decisions less confident than this (0.7 queued 85% of a seed model's traffic)",
    )
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
    margin_below: float = Field(
        0.1, ge=0, le=1, description="queue decisions whose two most probable actions are closer than this"
    )
    budget_per_day: int | None = Field(
        200,
        ge=0,
        description="most decisions queued per project and UTC day, the most uncertain first, "
        "class-balanced (200: a day's work for one reviewer at ~2 minutes an item; none: no budget)",
    )
    enough_authority: float = Field(
        0.8,
        ge=0,
        le=1,
        description="a correction or positive rating from a rater at least this trusted answers a "
        "decision: it is not queued, and its open item is closed",
    )
    dispute_authority: float | None = Field(
        None,
        ge=0,
        le=1,
        description="an uncorrected thumbs down from a rater at least this trusted queues the decision "
        "(reason thumbs_down) and adds that authority to its priority: it is known wrong, not what is "
        "right (none, the default: ratings do not queue; 0.5 took the demo to 0.916 against 0.922)",
    )
    overlap_rate: float = Field(
        0.0,
        ge=0,
        le=1,
        description="share of queued items that two reviewers answer (a hashed draw), so that their "
        "agreement (Cohen's κ, Krippendorff's α) is measured on the review page (0.1 with two or more "
        "reviewers: a tenth more work buys the agreement figures)",
    )
    claim_minutes: float = Field(
        30.0,
        gt=0,
        le=7 * 24 * 60,
        description="an item a reviewer opened is theirs this long; then it is open to others again",
    )
    staleness_per_day: float = Field(
        0.1,
        ge=0,
        le=100,
        description="an item gains this much priority for every day it waits unanswered, so the "
        "audit sample and the mildly unsure are not starved by fresh, more uncertain decisions (0.1: "
        "after 10 days an item ranks with one of the next reason weight up; 0: priority alone)",
    )


class OnlineConfig(Section):
    """Online router learning (``rewardloop learn``) and how service workers pick up its states."""

    reward_spec: str | None = Field(
        None, description="reward spec the learner compiles feedback with (default: training.reward_spec)"
    )
    publish_every: int = Field(100, ge=1, description="publish a new router state after this many rewards")
    publish_interval_s: float = Field(
        1.0, gt=0, description="... or this many seconds after the first reward not yet published"
    )
    batch_size: int = Field(1000, ge=1, description="feedback log rows the learner reads at a time")
    poll_s: float = Field(
        1.0,
        gt=0,
        description="how often a service worker checks for a new router state (SQLite; on PostgreSQL "
        "a NOTIFY brings it at once and this is the fallback)",
    )


class ComputeConfig(Section):
    """Where heavy offline jobs run: embedding backfills, sweeps, partitioned bootstrap OPE and router
    replay (docs/scaling.md)."""

    backend: Literal["local", "ray"] = Field(
        "local",
        description="local: in this process; ray: on a Ray cluster (needs the ray extra), same results",
    )
    ray_address: str | None = Field(
        None,
        description="Ray cluster to join, e.g. ray://head:10001 or auto (default: start a local Ray)",
    )
    workers: int = Field(
        2,
        ge=1,
        description="Ray actors (each loads the encoder once), bootstrap tasks, or sweep trials at once",
    )
    threads_per_worker: int = Field(
        1,
        ge=1,
        description="torch threads per worker and per sweep trial; the local backend uses the same, so "
        "results match",
    )
    batch_size: int = Field(64, ge=1, description="texts per encoder call (the same on both backends)")
    bootstrap_partitions: int = Field(
        1,
        ge=1,
        description="independent parts of one bootstrap, each with its own seed (1: the classic single "
        "stream); Ray runs them in parallel, the local backend one after another, with equal results",
    )
    replay_partitions: int = Field(
        1,
        ge=1,
        description="parts of the log a router replay (router train, loop run) sums apart (Ray tasks on "
        "ray; exact for the bandit routers, whose state is per-arm sums)",
    )


class ServiceConfig(Section):
    host: str = Field("127.0.0.1", description="address to bind")
    port: int = Field(8000, ge=1, le=65535, description="port to bind")
    workers: int = Field(1, ge=1, description="uvicorn workers (several need PostgreSQL)")
    max_body_bytes: int = Field(1_000_000, ge=1, description="largest request body accepted")
    max_in_flight: int = Field(
        256,
        ge=1,
        description="requests one worker runs at once; more are refused at once with 503 and Retry-After",
    )
    body_timeout_s: float = Field(
        10.0, gt=0, description="seconds to wait for each chunk of a request body before answering 408"
    )
    group_commit: bool = Field(
        True,
        description="write concurrent feedback requests in one transaction (each is answered only "
        "after its row is committed)",
    )
    max_batch: int = Field(512, ge=1, description="most feedback rows one group commit writes")
    key_cache_seconds: float = Field(
        5.0, ge=0, description="how long a worker trusts a checked API key (a revocation waits this long)"
    )
    idempotency_hours: float = Field(
        24.0,
        gt=0,
        description="how long the answer of a write sent with an Idempotency-Key header is kept: the "
        "same key replays it until then",
    )
    personalizer_policy: str | None = Field(
        None,
        description="the router the Azure Personalizer-compatible Rank/Reward routes serve "
        "(/personalizer/v1.0/...); unset: they answer 404",
    )
    personalizer_features: int = Field(
        0,
        ge=0,
        le=100_000,
        description="hash a Rank request's contextFeatures into this many numeric features for the "
        "router (its n_numeric); 0: the router gets the features as JSON text only",
    )
