"""The commented ``rewardloop.yaml`` that ``rewardloop init`` writes, generated from the config models.

Generated, so that the file and the schema cannot drift apart: every key carries its description.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml
from pydantic import BaseModel

from rewardloop.config import ProjectConfig, parse_config
from rewardloop.config.sections import PolicyConfig, RewardSpecConfig

EXAMPLE_POLICIES = [
    PolicyConfig(name="intent", kind="classifier", labels=[], options={"backend": "embedding"}),
]
EXAMPLE_REWARDS = [
    RewardSpecConfig(name="thumbs", version=1, function="accuracy", scale="unit"),
]

_LIST_SECTIONS: dict[str, tuple[str, list[BaseModel]]] = {
    "policies": ("the decision models whose decisions you log", list(EXAMPLE_POLICIES)),
    "rewards": ("named, versioned reward specs compiled from feedback", list(EXAMPLE_REWARDS)),
}


#: Commented examples of the other kinds, under their list section.
_OTHER_KINDS: dict[str, list[str]] = {
    "policies": [
        "  # a set policy (docs/sets.md): a subset of its labels, learned from missed / unnecessary actions;",
        "  # its golden file gives each item's right set as `labels`, gated by evaluation.gate.min_micro_f1",
        "  # - name: actions",
        "  #   kind: set",
        "  #   labels: [pay_invoice, set_payment_reminder, archive]",
        "  #   options: {epsilon: 0.1}",
    ],
    "rewards": [
        "  # the set penalty of a set policy (−0.5 a missed action, −0.3 an unnecessary one; docs/sets.md)",
        "  # - name: actions",
        "  #   function: set_penalty",
        "  #   scale: raw",
        "  #   options: {missed_penalty: 0.5, unnecessary_penalty: 0.3}",
    ],
}


def _scalar(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("...").strip()


def _model_lines(model: BaseModel, indent: int) -> list[str]:
    pad = " " * indent
    lines: list[str] = []
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            lines.append(f"{pad}{name}:")
            lines.extend(_model_lines(value, indent + 2))
            continue
        doc = f"  # {info.description}" if info.description else ""
        lines.append(f"{pad}{name}: {_scalar(value)}{doc}")
    return lines


def _learner_option_lines(learner_options: Mapping[str, Mapping[str, str]], indent: int) -> list[str]:
    """Comments listing every learner's config fields with their help texts (``training.options``)."""
    pad = " " * indent
    lines = [f"{pad}# options: any field of the learner's config, e.g. options: {{clip_eps: 0.1}}"]
    for learner, fields in learner_options.items():
        lines.append(f"{pad}#   {learner}:")
        lines.extend(f"{pad}#     {key}: {help_text}" for key, help_text in fields.items())
    return lines


def render_template(
    store_url: str | None = None, learner_options: Mapping[str, Mapping[str, str]] | None = None
) -> str:
    """The text of a fresh, commented project file (valid: it parses back to the defaults).

    ``learner_options`` (learner → {field: help}, ``rewardloop.learners.learner_options()``; the
    config layer cannot import the learners) are listed as comments under ``training``.
    """
    cfg = ProjectConfig()
    if store_url:
        cfg.store.url = store_url
    out = [
        "# rewardloop project file. Every key has a default; environment variables override it,",
        "# e.g. REWARDLOOP_STORE__URL=postgresql+psycopg://user@host:5432/db",
        "",
    ]
    for name in ProjectConfig.model_fields:
        if name in _LIST_SECTIONS:
            what, examples = _LIST_SECTIONS[name]
            out.append(f"# {name}: {what}")
            out.append(f"{name}:")
            for example in examples:
                body = _model_lines(example, 4)
                out.append("  - " + body[0].lstrip())
                out.extend(body[1:])
            out.extend(_OTHER_KINDS.get(name, []))
        else:
            out.append(f"{name}:")
            out.extend(_model_lines(getattr(cfg, name), 2))
            if name == "training" and learner_options:
                out.extend(_learner_option_lines(learner_options, 2))
        out.append("")
    text = "\n".join(out)
    parse_config(yaml.safe_load(text), "template")  # the template must always validate
    return text
