"""``rewardloop serve`` (the HTTP service under uvicorn) and ``rewardloop keys create|list|revoke``."""

from __future__ import annotations

import os
import tempfile
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy.engine import make_url

from rewardloop.cli.common import ConfigOption, console, fail, open_store, project
from rewardloop.store import Store
from rewardloop.store.apikeys import ROLES, SCOPES, ApiKeyError, create_api_key, list_api_keys, revoke_api_key
from rewardloop.store.insights import DEFAULT_PROJECT

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
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "info",
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
    try:
        Store.open(url).close()
    except Exception as err:
        raise fail(f"store.url: cannot open {shown}: {err}") from None
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
    role: Annotated[str | None, typer.Option(help=f"a set of scopes: {', '.join(ROLES)}")] = None,
    scope: Annotated[list[str] | None, typer.Option(help="a scope to add (repeatable)")] = None,
    config: ConfigOption = None,
) -> None:
    """Create a key and print it once (only its hash is stored)."""
    store = open_store(project(config))
    try:
        key, secret = create_api_key(store, name, project_name, scope or [], role)
    except ApiKeyError as err:
        raise fail(str(err)) from None
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
    config: ConfigOption = None,
) -> None:
    """List keys (never their secrets)."""
    store = open_store(project(config))
    try:
        keys = list_api_keys(store, project_name, include_revoked=revoked)
    finally:
        store.close()
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
        raise fail(str(err)) from None
    finally:
        store.close()
    console.print(f"revoked key {key.id} ({key.name}, project {key.project})")


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.add_typer(keys_app, name="keys")
