"""Who is calling: API keys from the ``Authorization: Bearer`` or ``X-API-Key`` header (or the dashboard's
cookie), checked against the store with a short per-worker cache, and scope checks as dependencies.

Every route that reads or writes project data takes the key's ``project`` and touches only that
project's decisions, feedback and review items; an id from another project answers 404 exactly like an
unknown one, so no response reveals that another project's record exists.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated

import anyio.to_thread
from fastapi import Depends, HTTPException, Request, Response
from starlette.datastructures import Headers
from starlette.requests import cookie_parser

from rewardloop.store import Store
from rewardloop.store.apikeys import ApiKey, authenticate, hash_key

if TYPE_CHECKING:
    from rewardloop.service.state import AppState

COOKIE = "rl_key"


class KeyCache:
    """Checked keys by hash, each trusted for ``ttl`` seconds (revocation takes effect within ``ttl``).

    Examples
    --------
    >>> cache = KeyCache(ttl=0.0)
    >>> cache.get("deadbeef") is None
    True
    """

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self._keys: dict[str, tuple[ApiKey, float]] = {}
        self._lock = threading.Lock()

    def get(self, digest: str) -> ApiKey | None:
        hit = self._keys.get(digest)
        if hit is None or hit[1] < self.clock():
            return None
        return hit[0]

    def put(self, digest: str, key: ApiKey) -> None:
        if self.ttl <= 0:
            return
        with self._lock:
            if len(self._keys) > 10_000:
                self._keys.clear()
            self._keys[digest] = (key, self.clock() + self.ttl)

    def clear(self) -> None:
        with self._lock:
            self._keys.clear()


def secret_from(authorization: str | None, x_api_key: str | None, cookie: str | None) -> str | None:
    """The key a request carries: ``Authorization: Bearer``, else ``X-API-Key``, else the cookie."""
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value:
            return value.strip()
    return x_api_key or cookie


def _secret(request: Request) -> str | None:
    return secret_from(
        request.headers.get("authorization"), request.headers.get("x-api-key"), request.cookies.get(COOKIE)
    )


def check_key(store: Store, cache: KeyCache, secret: str) -> ApiKey | None:
    digest = hash_key(secret)
    key = cache.get(digest)
    if key is None:
        key = authenticate(store, secret)
        if key is not None:
            cache.put(digest, key)
    return key


def plain_secret(headers: Headers) -> str | None:
    """The key a plain-ASGI request carries (header, else the cookie): for the handlers below FastAPI's
    dependencies (``POST /v1/feedback``, the ``Idempotency-Key`` middleware)."""
    secret = secret_from(headers.get("authorization"), headers.get("x-api-key"), None)
    if secret is None and "cookie" in headers:
        secret = cookie_parser(headers["cookie"]).get(COOKIE)
    return secret or None


async def key_of(state: AppState, secret: str) -> ApiKey | None:
    """The valid key of ``secret`` (cached; a miss reads the store in a thread), or None."""
    key = state.keys.get(hash_key(secret))
    if key is None:
        key = await anyio.to_thread.run_sync(check_key, state.store, state.keys, secret)
    return key


async def authenticate_request(request: Request) -> ApiKey:
    """The caller's key, or 401 saying how to send one.

    Async, like every dependency here: FastAPI runs a sync dependency in the thread pool, a thread hop
    per dependency per request. A cached key costs no I/O; a miss reads the store in a thread.
    """
    state = request.app.state.rl
    secret = _secret(request)
    if not secret:
        raise HTTPException(
            401,
            "missing API key: send `Authorization: Bearer <key>` or `X-API-Key: <key>` "
            "(create one with `rewardloop keys create`)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    key: ApiKey | None = state.keys.get(hash_key(secret))
    if key is None:
        key = await anyio.to_thread.run_sync(check_key, state.store, state.keys, secret)
    if key is None:
        raise HTTPException(401, "invalid or revoked API key", headers={"WWW-Authenticate": "Bearer"})
    return key


def require(scope: str) -> Callable[[Request], Awaitable[ApiKey]]:
    """A dependency: the caller's key, which must carry ``scope`` (else 403 naming it).

    One flat dependency (not one on top of another): each level costs FastAPI's dependency solver
    time on every request.
    """

    async def dependency(request: Request) -> ApiKey:
        key = await authenticate_request(request)
        if not key.allows(scope):
            raise HTTPException(
                403,
                f"this key ({key.name!r}) lacks the {scope!r} scope; its scopes: {', '.join(key.scopes)}",
            )
        return key

    dependency.__name__ = f"require_{scope}"
    return dependency


DecideKey = Annotated[ApiKey, Depends(require("decide"))]
FeedbackKey = Annotated[ApiKey, Depends(require("feedback"))]
ReadKey = Annotated[ApiKey, Depends(require("read"))]
ReviewKey = Annotated[ApiKey, Depends(require("review"))]
ExportKey = Annotated[ApiKey, Depends(require("export"))]
AdminKey = Annotated[ApiKey, Depends(require("admin"))]


# ------------------------------------------------------------------------------------------- CSRF
# The dashboard's forms (sign in, sign out, resolve a review item) carry a token that must equal the
# ``rl_csrf`` cookie (double submit). A cross-site page cannot read the cookie, and SameSite=Strict keeps
# the browser from sending it on a cross-site POST at all; so a forged POST /login (which would replace
# the victim's session with the attacker's key) or POST /review/... is refused.

CSRF_COOKIE = "rl_csrf"


def csrf_token(request: Request) -> tuple[str, bool]:
    """The request's CSRF token, and whether it is new (then the answer must set the cookie)."""
    token = request.cookies.get(CSRF_COOKIE)
    if token and len(token) >= 32:
        return token, False
    return secrets.token_urlsafe(32), True


def set_csrf_cookie(response: Response, request: Request, token: str) -> None:
    response.set_cookie(
        CSRF_COOKIE, token, httponly=True, samesite="strict", secure=request.url.scheme == "https"
    )


def csrf_ok(request: Request, submitted: str | None) -> bool:
    """Does the form's token match the cookie (constant-time)?"""
    cookie = request.cookies.get(CSRF_COOKIE)
    return bool(cookie and submitted) and hmac.compare_digest(str(cookie), str(submitted))
