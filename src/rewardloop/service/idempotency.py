"""``Idempotency-Key``: a write sent again with the same key gets the first answer, and is not done twice.

The semantics of Stripe and of the IETF draft (draft-ietf-httpapi-idempotency-key-header), for every
write (``POST``, ``PUT``, ``PATCH``, ``DELETE``) under ``/v1``:

- the first request with a key runs; its answer (status, media type, body) is stored for
  ``service.idempotency_hours``, keyed by the caller's API key id and the key, so keys are scoped per
  API key;
- the same key with the same request (method, path, query and body; a JSON body compared as parsed
  JSON, so key order and spacing do not matter) answers the stored answer again, with
  ``Idempotent-Replayed: true``, and runs nothing;
- the same key with another request is a 422 problem naming ``header.Idempotency-Key``; a malformed key
  (empty, over 255 characters, not printable ASCII) a 400 naming it;
- answers that say the request was not processed (429, 5xx) are not stored: a retry runs again.

All-or-nothing with the write: the logging routes turn the key into a record-level key, written in the
write's own transaction — a decision without an ``idempotency_key`` gets :func:`record_key` (of the API
key, the header key and the request's fingerprint), and feedback without an ``id`` gets it as its id.
So if the service dies after the write committed but before the answer was stored, the retry (with
no stored answer) writes nothing new and answers the stored record, exactly as a body-level replay
does. Two requests with one key running at the same time both run; on the logging routes the
record-level key makes the second a replay, and the first answer to be stored is the one kept. Other
writes (promote, review answers, keys) are stored-answer replays only: a worker that dies between
such a write and storing its answer leaves a key whose retry runs the write again.
"""

from __future__ import annotations

import hashlib
import time
from datetime import timedelta

import anyio.to_thread
import orjson
from starlette.datastructures import Headers

from rewardloop.service.middleware import ASGIApp, HttpMiddleware, Message, Receive, Scope, Send, send_json
from rewardloop.service.security import key_of, plain_secret
from rewardloop.service.state import AppState
from rewardloop.store.idempotency import StoredAnswer, find_answer, purge_expired, save_answer
from rewardloop.types import utcnow

HEADER = "Idempotency-Key"
#: Where the request's record-level key is kept (``scope["state"]``).
STATE = "idempotency_record_key"
FIELD = f"header.{HEADER}"
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: The routes whose writes take the header: the API and the Personalizer-compatible routes.
PATHS = ("/v1/", "/personalizer/")
MAX_KEY = 255
#: Expired answers are deleted at most this often per worker (seconds).
PURGE_EVERY = 600.0


def record_key(api_key_id: str, key: str, fingerprint: str) -> str:
    """The record-level key a header key stands for on the logging routes (a decision's
    ``idempotency_key``, a feedback id): per API key and request, at most 64 characters.

    >>> a, b = record_key("k1", "order-7", "f"), record_key("k2", "order-7", "f")
    >>> a == record_key("k1", "order-7", "f") != b and len(a)
    43
    """
    return "ik_" + hashlib.sha256(f"{api_key_id}\0{key}\0{fingerprint}".encode()).hexdigest()[:40]


def scope_record_key(scope: Scope) -> str | None:
    """The :func:`record_key` this middleware put in the request's scope (None: no header)."""
    found = scope.get("state", {}).get(STATE)
    return str(found) if found is not None else None


def parse_key(raw: bytes) -> str | None:
    """The header's key (an RFC 8941 string ``"..."`` or a bare token), or None if malformed.

    >>> parse_key(b'"8e03978e"'), parse_key(b"abc-1"), parse_key(b""), parse_key(b"caf\\xc3\\xa9")
    ('8e03978e', 'abc-1', None, None)
    """
    try:
        value = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        return None
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    if not 1 <= len(value) <= MAX_KEY or not all(" " <= c <= "~" for c in value):
        return None
    return value


def fingerprint(method: str, path: str, query: bytes, body: bytes) -> str:
    """What makes two requests "the same": method, path, query and body (a JSON body as parsed)."""
    try:
        canonical = orjson.dumps(orjson.loads(body), option=orjson.OPT_SORT_KEYS) if body else b""
    except orjson.JSONDecodeError:
        canonical = body
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), query, canonical):
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()


async def _read_body(receive: Receive) -> bytes | None:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None  # the client went away before sending its body
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _replay(send: Send, answer: StoredAnswer) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": answer.status,
            "headers": [
                (b"content-type", answer.content_type.encode()),
                (b"content-length", str(len(answer.body)).encode()),
                (b"idempotent-replayed", b"true"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": answer.body})


class IdempotencyKeys(HttpMiddleware):
    """The ``Idempotency-Key`` semantics of the module docstring, around the app's ``/v1`` writes."""

    def __init__(self, app: ASGIApp) -> None:
        super().__init__(app)
        self._purged = 0.0

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = next((v for k, v in scope["headers"] if k == b"idempotency-key"), None)
        if raw is None or scope["method"] not in WRITES or not scope["path"].startswith(PATHS):
            await self.app(scope, receive, send)
            return
        key = parse_key(raw)
        if key is None:
            detail = (
                f"{FIELD}: must be 1-{MAX_KEY} printable ASCII characters (a bare token or a quoted string)"
            )
            await send_json(send, 400, {"detail": detail, "field": FIELD})
            return
        state: AppState = scope["app"].state.rl
        headers = Headers(scope=scope)
        secret = plain_secret(headers) or headers.get("ocp-apim-subscription-key")
        caller = await key_of(state, secret) if secret is not None else None
        body = await _read_body(receive)
        if body is None:
            return
        replay = _replayer(body, receive)
        if caller is None:  # no valid key: the route answers 401, nothing is stored
            await self.app(scope, replay, send)
            return
        now = utcnow()
        print_ = fingerprint(scope["method"], scope["path"], scope.get("query_string", b""), body)
        stored = await anyio.to_thread.run_sync(find_answer, state.store, caller.id, key, now)
        if stored is not None:
            await self._answer_stored(send, stored, print_)
            return
        scope.setdefault("state", {})[STATE] = record_key(caller.id, key, print_)
        capture = _Capture()
        await self.app(scope, replay, capture)
        if capture.storable:
            hours = state.config.service.idempotency_hours
            answer = StoredAnswer(
                caller.id, key, print_, scope["method"], scope["path"], capture.status,
                capture.content_type, capture.body, now, now + timedelta(hours=hours),
            )  # fmt: skip
            await anyio.to_thread.run_sync(save_answer, state.store, answer)
            await self._purge(state)
        for message in capture.messages:
            await send(message)

    @staticmethod
    async def _answer_stored(send: Send, stored: StoredAnswer, print_: str) -> None:
        if stored.fingerprint == print_:
            await _replay(send, stored)
            return
        detail = (
            f"{FIELD}: this key was used for another request (its method, path or body differ) within "
            "the last service.idempotency_hours; send a new key for a new request"
        )
        await send_json(send, 422, {"detail": detail, "field": FIELD})

    async def _purge(self, state: AppState) -> None:
        if time.monotonic() - self._purged >= PURGE_EVERY:
            self._purged = time.monotonic()
            await anyio.to_thread.run_sync(purge_expired, state.store, utcnow())


def _replayer(body: bytes, receive: Receive) -> Receive:
    """The body read already, then the client's own messages (its disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


class _Capture:
    """A ``send`` that holds the answer until it is complete (it is stored before the client sees it)."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.status = 500
        self.content_type = "application/octet-stream"
        self.chunks: list[bytes] = []

    async def __call__(self, message: Message) -> None:
        self.messages.append(message)
        if message["type"] == "http.response.start":
            self.status = int(message["status"])
            for k, v in message.get("headers", []):
                if k.lower() == b"content-type":
                    self.content_type = v.decode("latin-1")
        elif message["type"] == "http.response.body":
            self.chunks.append(message.get("body", b""))

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)

    @property
    def storable(self) -> bool:
        """Did the request get a final answer? 429 and 5xx say it was not processed: not stored."""
        return bool(self.messages) and self.status != 429 and self.status < 500
