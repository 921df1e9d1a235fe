"""The project file ``rewardloop.yaml``: loading, validation with errors that name the key, env overrides.

Environment variables override the file: ``REWARDLOOP_STORE__URL=postgresql+psycopg://...``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import AliasChoices, BaseModel, Field, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from rewardloop.config.sections import (
    DEFAULT_STORE_URL,
    ComputeConfig,
    EncoderConfig,
    EvaluationConfig,
    ExperimentsConfig,
    GateConfig,
    OnlineConfig,
    PolicyConfig,
    ReviewConfig,
    RewardSpecConfig,
    ServiceConfig,
    StoreConfig,
    TrainingConfig,
)

DEFAULT_PATH = Path("rewardloop.yaml")


class ConfigError(ValueError):
    """The project file is missing, not YAML, or has keys with bad values; the message names each."""


class ProjectConfig(BaseSettings):
    """Everything in ``rewardloop.yaml``."""

    model_config = SettingsConfigDict(env_prefix="REWARDLOOP_", env_nested_delimiter="__", extra="forbid")

    store: StoreConfig = Field(default_factory=StoreConfig)
    encoder: EncoderConfig = Field(default_factory=EncoderConfig)
    policies: list[PolicyConfig] = Field(default_factory=list)
    rewards: list[RewardSpecConfig] = Field(default_factory=list)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    experiments: ExperimentsConfig = Field(default_factory=ExperimentsConfig)
    review: ReviewConfig = Field(default_factory=ReviewConfig)
    service: ServiceConfig = Field(default_factory=ServiceConfig)
    online: OnlineConfig = Field(default_factory=OnlineConfig)
    compute: ComputeConfig = Field(default_factory=ComputeConfig)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment first, so that it overrides the file's values, which arrive as init kwargs.
        return (env_settings, init_settings)

    def policy(self, name: str | None = None) -> PolicyConfig:
        """The named policy, or the first one; a ConfigError naming the known ones otherwise."""
        for p in self.policies:
            if name is None or p.name == name:
                return p
        known = ", ".join(p.name for p in self.policies) or "none"
        raise ConfigError(f"policies: no policy named {name!r} (known: {known})")

    def reward_spec(self, name: str) -> RewardSpecConfig:
        for spec in self.rewards:
            if spec.name == name:
                return spec
        known = ", ".join(s.name for s in self.rewards) or "none"
        raise ConfigError(f"rewards: no reward spec named {name!r} (known: {known})")


def _format_errors(err: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid configuration"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        lines.append(f"  {key}: {e['msg']}")
    return "\n".join(lines)


def parse_config(data: dict[str, Any] | None, source: str = "<config>") -> ProjectConfig:
    """Validate a mapping as a project config (environment variables still override it)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of sections, got {type(data).__name__}")
    try:
        return ProjectConfig(**data)
    except ValidationError as err:
        raise ConfigError(_format_errors(err, source)) from None


def _aliases(section: str, key: str) -> list[str]:
    """The other names of ``section.key`` (``training.learner`` is also ``training.algorithm``)."""
    field = ProjectConfig.model_fields.get(section)
    model = field.annotation if field is not None else None
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return []
    for name, info in model.model_fields.items():
        names = [name]
        if isinstance(info.validation_alias, AliasChoices):
            names += [c for c in info.validation_alias.choices if isinstance(c, str)]
        if key in names:
            return [n for n in names if n != key]
    return []


def _scalar(raw: str) -> Any:
    value: Any = yaml.safe_load(raw) if raw.strip() else None
    if isinstance(value, str):  # YAML 1.1 reads "1e-5" as a string; a number is meant
        for parse in (int, float):
            try:
                return parse(value)
            except ValueError:
                pass
    return value


def apply_sets(data: dict[str, Any], sets: Iterable[str]) -> dict[str, Any]:
    """Apply ``section.key=value`` overrides (the CLI's ``--set``) to a raw YAML mapping, in place.

    Values are parsed as YAML (``1e-5`` is a number). Setting a key drops its aliases from the same
    section, so ``training.learner=dpo`` replaces a file's ``algorithm: ppo``.

    >>> apply_sets({"training": {"algorithm": "ppo"}}, ["training.learner=dpo", "training.lr=1e-5"])
    {'training': {'learner': 'dpo', 'lr': 1e-05}}
    """
    for item in sets:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. training.lr=1e-5")
        node = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {key}: {part} is not a section")
            node = child
        if len(parts) == 2:
            for alias in _aliases(parts[0], parts[1]):
                node.pop(alias, None)
        node[parts[-1]] = _scalar(raw)
    return data


def load_config(path: str | Path | None = None, sets: Iterable[str] = ()) -> ProjectConfig:
    """Read ``rewardloop.yaml`` (or ``path``), with ``sets`` overrides (:func:`apply_sets`) applied.

    With no file at the default path, the defaults apply (and the overrides). A relative SQLite store
    path is relative to the project file's folder, not to where a command runs. Environment variables
    override both the file and ``sets``.
    """
    file = Path(path) if path is not None else DEFAULT_PATH
    data: Any = {}
    if file.exists():
        try:
            data = yaml.safe_load(file.read_text())
        except yaml.YAMLError as err:
            raise ConfigError(f"{file}: not valid YAML: {err}") from None
        source = str(file)
    elif path is not None:
        raise ConfigError(f"{file}: no such file (create one with `rewardloop init`)")
    else:
        source = "defaults"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of sections, got {type(data).__name__}")
    cfg = parse_config(apply_sets(data, sets), source)
    url = cfg.store.url
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        cfg.store.url = f"sqlite:///{(file.parent / url.removeprefix('sqlite:///')).resolve()}"
    return cfg


__all__ = [
    "DEFAULT_PATH",
    "DEFAULT_STORE_URL",
    "ComputeConfig",
    "ConfigError",
    "EncoderConfig",
    "EvaluationConfig",
    "ExperimentsConfig",
    "GateConfig",
    "OnlineConfig",
    "PolicyConfig",
    "ProjectConfig",
    "ReviewConfig",
    "RewardSpecConfig",
    "ServiceConfig",
    "StoreConfig",
    "TrainingConfig",
    "apply_sets",
    "load_config",
    "parse_config",
]
