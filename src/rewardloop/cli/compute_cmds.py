"""``rewardloop embed``: heavy offline jobs on the compute backend (local or Ray)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from rewardloop.cli.common import (
    ComputeOption,
    ConfigOption,
    RayAddress,
    compute_config,
    console,
    exit_code_for,
    fail,
    open_store,
    project,
)
from rewardloop.loop.compute import ComputeBackend, ComputeError, backfill_embeddings


def embed_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="Parquet file to write (decision_id, embedding)")],
    policy: Annotated[str | None, typer.Option("--policy", help="only this policy's decisions")] = None,
    version: Annotated[str | None, typer.Option(help="only the decisions of this version")] = None,
    backend: ComputeOption = None,
    ray_address: RayAddress = None,
    config: ConfigOption = None,
) -> None:
    """Embed the texts of logged decisions with MiniLM into a Parquet file (local, or Ray Data on a cluster).

    Ray runs compute.workers actors, each loading the encoder once; both backends make the same encoder
    calls (compute.batch_size texts, compute.threads_per_worker threads), so the files are equal.
    """
    cfg = project(config)
    store = open_store(cfg)
    try:
        with (
            ComputeBackend(compute_config(cfg, backend, ray_address)) as compute,
            console.status(f"embedding logged texts on the {compute.name} backend ..."),
        ):
            result = backfill_embeddings(store, out, compute, policy=policy, version=version)
    except ComputeError as err:
        raise fail(str(err), exit_code_for(err)) from None
    finally:
        store.close()
    console.print(
        f"wrote {result.n_texts} embeddings to {out} in {result.seconds:.1f} s "
        f"({result.n_skipped} decisions without a text left out)"
    )
    console.print(json.dumps(result.to_dict()))


def register(app: typer.Typer) -> None:
    """Add ``embed`` to the ``rewardloop`` command."""
    app.command("embed")(embed_cmd)
