"""The project file ``rewardloop.yaml``: loading, validation with errors that name the key, env overrides.

Environment variables override the file: ``REWARDLOOP_STORE__URL=postgresql+psycopg://...``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from rewardloop.config.sections import (
    DEFAULT_STORE_URL,
    EncoderConfig,
    EvaluationConfig,
    ExperimentsConfig,
    GateConfig,
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


def load_config(path: str | Path | None = None) -> ProjectConfig:
    """Read ``rewardloop.yaml`` (or ``path``). With no file at the default path, the defaults apply."""
    file = Path(path) if path is not None else DEFAULT_PATH
    if not file.exists():
        if path is not None:
            raise ConfigError(f"{file}: no such file (create one with `rewardloop init`)")
        return parse_config({}, "defaults")
    try:
        data = yaml.safe_load(file.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{file}: not valid YAML: {err}") from None
    cfg = parse_config(data, str(file))
    url = cfg.store.url
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        # A relative SQLite path is relative to the project file, not to where a command runs.
        cfg.store.url = f"sqlite:///{(file.parent / url.removeprefix('sqlite:///')).resolve()}"
    return cfg


__all__ = [
    "DEFAULT_PATH",
    "DEFAULT_STORE_URL",
    "ConfigError",
    "EncoderConfig",
    "EvaluationConfig",
    "ExperimentsConfig",
    "GateConfig",
    "PolicyConfig",
    "ProjectConfig",
    "ReviewConfig",
    "RewardSpecConfig",
    "ServiceConfig",
    "StoreConfig",
    "TrainingConfig",
    "load_config",
    "parse_config",
]
