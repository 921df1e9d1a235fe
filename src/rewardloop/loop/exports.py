"""Training data out, in TRL's dataset shapes and as a Hugging Face ``datasets`` folder.

The rows are built by the learners' own example builders, so an export holds exactly what
``rewardloop train`` with that learner would train on (the same feedback rules, the same prompts):

- ``sft`` — TRL's conversational language-modelling rows ``{"messages": [system, user, assistant]}``
  from :func:`~rewardloop.learners.sft.chat_examples_from_batch` (a correction, an approval or a golden
  answer names the assistant's turn);
- ``dpo`` — preference rows ``{"prompt": [...], "chosen": [...], "rejected": [...]}`` from
  :func:`~rewardloop.learners.lm_dpo.preference_examples_from_batch`;
- ``kto`` — unpaired rows ``{"prompt": [...], "completion": [...], "label": bool}`` from
  :func:`~rewardloop.learners.kto.thumbs_from_batch`.

A classifier decision's prompt is the classify instruction naming its labels (the ``openai`` export's);
a generator decision's is the logged context with ``system`` (default: the generator's own
``DEFAULT_SYSTEM``). :func:`save_dataset` writes any rows as a folder that
``datasets.load_from_disk`` reads (``Dataset.save_to_disk``).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson

from rewardloop.learners.kto import thumbs_from_batch
from rewardloop.learners.lm_dpo import preference_examples_from_batch
from rewardloop.learners.sft import chat_examples_from_batch
from rewardloop.policies.generator import DEFAULT_SYSTEM
from rewardloop.types import DecisionBatch


def sft_rows(batch: DecisionBatch, system: str = DEFAULT_SYSTEM) -> Iterator[dict[str, Any]]:
    """TRL's conversational SFT rows: the prompt's messages followed by the answer's."""
    for row in chat_examples_from_batch(batch).rows(system):
        yield {"messages": [*row["prompt"], *row["completion"]]}


def dpo_rows(batch: DecisionBatch, system: str = DEFAULT_SYSTEM) -> Iterator[dict[str, Any]]:
    """TRL's conversational preference rows (``prompt``, ``chosen``, ``rejected``), one per pair."""
    yield from preference_examples_from_batch(batch).rows(system)


def kto_rows(batch: DecisionBatch, system: str = DEFAULT_SYSTEM) -> Iterator[dict[str, Any]]:
    """TRL's conversational unpaired rows (``prompt``, ``completion``, ``label``: desirable or not)."""
    yield from thumbs_from_batch(batch).rows(system)


#: The TRL views of ``rewardloop export --view``, by name.
TRL_VIEWS: dict[str, Callable[[DecisionBatch], Iterator[dict[str, Any]]]] = {
    "sft": sft_rows,
    "dpo": dpo_rows,
    "kto": kto_rows,
}


class DatasetExportError(ValueError):
    """The rows cannot be written as a ``datasets`` folder (the message says why)."""


def save_dataset(rows: Iterable[Mapping[str, Any]], folder: str | Path) -> int:
    """Write ``rows`` as a Hugging Face dataset folder (``Dataset.save_to_disk``); the number written.

    The rows pass through a temporary JSON-lines file that ``Dataset.from_json`` reads in chunks, so
    memory holds one chunk, not the export. ``datasets`` is imported here (the ``gen`` extra).
    """
    try:
        import datasets
    except ImportError:
        raise DatasetExportError(
            "the datasets package is not installed (pip install 'rewardloop[gen]')"
        ) from None
    with tempfile.TemporaryDirectory(prefix="rewardloop-dataset-") as tmp:
        source = Path(tmp) / "rows.jsonl"
        n = 0
        with source.open("wb") as fh:
            for row in rows:
                fh.write(orjson.dumps(row, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n")
                n += 1
        if n == 0:
            raise DatasetExportError("no rows to export: an empty dataset folder would have no columns")
        try:
            ds = datasets.Dataset.from_json(str(source), cache_dir=str(Path(tmp) / "cache"))
        except Exception as err:  # arrow could not give the rows one schema
            raise DatasetExportError(f"the rows do not fit one table ({type(err).__name__}: {err})") from None
        ds.save_to_disk(str(folder))
    return n


__all__ = ["TRL_VIEWS", "DatasetExportError", "dpo_rows", "kto_rows", "save_dataset", "sft_rows"]
