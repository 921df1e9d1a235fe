"""``rewardloop serve`` (the HTTP service under uvicorn) and ``rewardloop keys create|list|revoke``."""

from __future__ import annotations

import os
import tempfile
from enum import StrEnum
from typing import Annotated, Literal

import typer
from rich.table import Table
from sqlalchemy.engine import make_url

from rewardloop.cli.common import (
    ConfigOption,
    JsonFlag,
    console,
    exit_code_for,
    fail,
    open_store,
    print_json,
    project,
)
from rewardloop.store.apikeys import ROLES, SCOPES, ApiKeyError, create_api_key, list_api_keys, revoke_api_key
from rewardloop.store.insights import DEFAULT_PROJECT

#: ``keys create --role`` and ``--scope`` choices (the keys of ``ROLES`` and ``SCOPES``; a test checks).
Role = Literal["client", "reviewer", "admin"]


class Scope(StrEnum):  # an Enum: Typer takes no list of Literal
    decide = "decide"
    feedback = "feedback"
    read = "read"
    review = "review"
    export = "export"
    admin = "admin"


keys_app = typer.Typer(
    help="API keys of the HTTP service: each has a project and scopes "
    f"({', '.join(SCOPES)}); roles: " + "; ".join(f"{r} = {', '.join(s)}" for r, s in ROLES.items()),
    no_args_is_help=True,
)


def serve(
    config: ConfigOption = None,
    host: Annotated[
        str | None, typer.Option(help="address to bind (default: service.host, 127.0.0.1)")
    ] = None,
    port: Annotated[int | None, typer.Option(help="port (default: service.port, 8000)")] = None,
    workers: Annotated[
        int | None,
        typer.Option(help="worker processes (default: service.workers); more than one needs PostgreSQL"),
    ] = None,
    log_level: Annotated[
        Literal["critical", "error", "warning", "info", "debug", "trace"],
        typer.Option(help="uvicorn log level"),
    ] = "info",
    access_log: Annotated[bool, typer.Option(help="log every request (costs throughput)")] = False,
) -> None:
    """Start the HTTP service: the API under /v1, the dashboard at /, OpenAPI docs at /docs, /metrics.

    The store is migrated once here, before the workers start. Create a key first with
    `rewardloop keys create --name me --role admin`.
    """
    import uvicorn

    cfg = project(config)
    url = cfg.store.url
    n = workers or cfg.service.workers
    shown = make_url(url).render_as_string(hide_password=True)
    if n > 1 and make_url(url).get_backend_name() == "sqlite":
        raise fail(
            f"--workers {n}: several workers need PostgreSQL (store.url is {shown}); SQLite has one "
            "writer at a time, so run one worker (it group-commits feedback)"
        )
    open_store(cfg).close()
    if config is not None:
        os.environ["REWARDLOOP_SERVE_CONFIG"] = str(config.resolve())
    os.environ["REWARDLOOP_STORE__URL"] = url
    if n > 1 and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        # Each worker writes its metrics there; /metrics sums them.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="rewardloop-metrics-")
    h, p = host or cfg.service.host, port or cfg.service.port
    console.print(
        f"rewardloop service on http://{h}:{p}  ({n} worker(s), store {shown}); dashboard at /",
        soft_wrap=True,
    )
    try:
        import uvloop  # noqa: F401

        loop = "uvloop"
    except ImportError:
        loop = "asyncio"
    uvicorn.run(
        "rewardloop.service.app:serve_factory",
        factory=True,
        host=h,
        port=p,
        workers=n,
        loop=loop,
        log_level=log_level,
        access_log=access_log,
    )


@keys_app.command("create")
def keys_create(
    name: Annotated[
        str,
        typer.Option(
            help="who or what uses the key (names need not be unique: reviews and promotions record its id)"
        ),
    ],
    project_name: Annotated[
        str, typer.Option("--project", help="the project whose data the key can touch")
    ] = DEFAULT_PROJECT,
    role: Annotated[Role | None, typer.Option(help="a set of scopes (see below)")] = None,
    scope: Annotated[list[Scope] | None, typer.Option(help="a scope to add (repeatable)")] = None,
    config: ConfigOption = None,
) -> None:
    """Create a key and print it once (only its hash is stored)."""
    store = open_store(project(config))
    try:
        key, secret = create_api_key(store, name, project_name, [str(s) for s in scope or []], role)
    except ApiKeyError as err:
        raise fail(str(err), exit_code_for(err)) from None
    finally:
        store.close()
    console.print(
        f"created key {key.id} ({key.name}) for project {key.project}: {', '.join(key.scopes)}",
        soft_wrap=True,
    )
    console.print("the key (shown once, store it now):")
    print(secret)


@keys_app.command("list")
def keys_list(
    project_name: Annotated[str | None, typer.Option("--project", help="only this project's keys")] = None,
    revoked: Annotated[bool, typer.Option(help="include revoked keys")] = False,
    as_json: JsonFlag = False,
    config: ConfigOption = None,
) -> None:
    """List keys (never their secrets)."""
    store = open_store(project(config))
    try:
        keys = list_api_keys(store, project_name, include_revoked=revoked)
    finally:
        store.close()
    if as_json:
        print_json({"items": keys})
        return
    table = Table("id", "name", "project", "scopes", "created", "revoked")
    for k in keys:
        table.add_row(
            k.id,
            k.name,
            k.project,
            ", ".join(k.scopes),
            k.created_at.isoformat(timespec="seconds"),
            k.revoked_at.isoformat(timespec="seconds") if k.revoked_at else "",
        )
    console.print(table)
    console.print(f"{len(keys)} key(s)")


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="the key's id (from `rewardloop keys list`)")],
    config: ConfigOption = None,
) -> None:
    """Revoke a key; running workers stop accepting it within service.key_cache_seconds."""
    store = open_store(project(config))
    try:
        key = revoke_api_key(store, key_id)
    except ApiKeyError as err:
        raise fail(str(err), exit_code_for(err)) from None
    finally:
        store.close()
    console.print(f"revoked key {key.id} ({key.name}, project {key.project})")


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.add_typer(keys_app, name="keys")
