"""What the sync and async clients share: request bodies, the retry decision, and reading answers."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Generic, Protocol, TypedDict, TypeVar

import httpx
import orjson

from rewardloop.client import models

#: The HTTP client: ``httpx.Client`` or ``httpx.AsyncClient``.
H = TypeVar("H", httpx.Client, httpx.AsyncClient)
T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

#: Errors on which a request is sent again (the write is idempotent, so a lost answer is harmless).
RETRIED_ERRORS = (httpx.TransportError,)
JSON = {"content-type": "application/json"}
#: The methods that write: each request carries its own ``Idempotency-Key``.
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class Settings(ABC, Generic[H]):
    """What :class:`~rewardloop.client.Client` and :class:`~rewardloop.client.AsyncClient` share: their
    parameters (documented on ``Client``), the retry policy, the background batching and the request
    headers. Each says how it connects (:meth:`_connect`) and sets up its background logging
    (:meth:`_open`)."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        api_key: str | None = None,
        *,
        timeout: float = 10.0,
        retry: models.RetryPolicy | None = None,
        batch_size: int = 500,
        queue_size: int = 10_000,
        linger: float = 0.05,
        http: H | None = None,
    ) -> None:
        if batch_size < 1 or queue_size < 1 or linger < 0:
            given = f"batch_size={batch_size}, queue_size={queue_size}, linger={linger}"
            raise ValueError(f"batch_size and queue_size must be >= 1 and linger >= 0; got {given}")
        self.retry = retry or models.RetryPolicy()
        self.batch_size = batch_size
        self.queue_size = queue_size
        self.linger = linger
        self._headers = headers(api_key)
        self._report = models.LogReport()
        self._http: H = http if http is not None else self._connect(base_url, timeout)
        self._open()

    @abstractmethod
    def _connect(self, base_url: str, timeout: float) -> H:
        """The HTTP client to send with when none is given."""

    @abstractmethod
    def _open(self) -> None:
        """Set up the background logging's queue (empty, nothing sent yet)."""

    def _chunks(self, items: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
        return [items[i : i + self.batch_size] for i in range(0, len(items), self.batch_size)]

    def _request_parts(self, method: str, body: Any) -> tuple[dict[str, str], bytes | None]:
        """The headers and body of one request, the same on every retry of it: a write carries a fresh
        ``Idempotency-Key``, so that a retry after a lost answer replays the first answer."""
        headers = self._headers
        if method in WRITES:
            headers = {**headers, "idempotency-key": models.new_key()}
        if body is None:
            return headers, None
        return {**headers, **JSON}, dumps(body)


def headers(api_key: str | None) -> dict[str, str]:
    out = {"accept": "application/json, application/problem+json", "user-agent": "rewardloop-sdk/0.1"}
    if api_key:
        out["authorization"] = f"Bearer {api_key}"
    return out


def retry_delay(
    policy: models.RetryPolicy, attempt: int, response: httpx.Response | None, error: Exception | None
) -> float | None:
    """Seconds to wait before sending again, or None to stop (answer or raise now)."""
    if attempt + 1 >= policy.max_attempts:
        return None
    if error is not None:
        return policy.delay(attempt) if isinstance(error, RETRIED_ERRORS) else None
    assert response is not None
    if response.status_code in policy.retry_statuses:
        return policy.delay(attempt, response.headers.get("retry-after"))
    return None


class Tries:
    """The retrying of one request, without the sending: after each try, :meth:`wait` says how many
    seconds to wait before sending again, or None to stop; :meth:`answer` is then the last answer."""

    def __init__(self, policy: models.RetryPolicy) -> None:
        self.policy = policy
        self.attempt = 0
        self.response: httpx.Response | None = None
        self.error: Exception | None = None

    def wait(self, response: httpx.Response | None, error: Exception | None) -> float | None:
        self.response, self.error = response, error
        delay = retry_delay(self.policy, self.attempt, response, error)
        self.attempt += 1
        return delay

    def answer(self) -> httpx.Response:
        return last(self.response, self.error)


def answer(response: httpx.Response) -> Any:
    """The JSON of a successful answer; ApiError from a problem body otherwise."""
    if response.status_code < 400:
        return response.json() if response.content else None
    try:
        body = response.json()
    except ValueError:
        body = {"detail": response.text[:500]}
    raise models.ApiError(
        response.status_code,
        str(body.get("detail", "")),
        body.get("field"),
        str(body.get("title", response.reason_phrase)),
        response.headers.get("x-request-id"),
    )


def last(response: httpx.Response | None, error: Exception | None) -> httpx.Response:
    """The answer to return once retrying stops; ApiError(0, ...) if there was none."""
    if response is None:
        raise models.ApiError(0, f"no answer after retrying: {type(error).__name__}: {error}") from error
    return response


def failures(items: list[dict[str, Any]], err: Exception) -> list[models.ItemFailure]:
    """Every item of a batch whose request failed as a whole (status 0: no usable answer)."""
    if not isinstance(err, models.ApiError):
        err = models.ApiError(0, f"{type(err).__name__}: {err}")
    return [models.ItemFailure(item.get("id"), err.status, err.detail, err.field) for item in items]


def jsonl(response: httpx.Response) -> list[dict[str, Any]]:
    """The rows of a JSONL answer (ApiError for an error answer)."""
    if response.status_code >= 400:
        answer(response)
    return [orjson.loads(line) for line in response.content.splitlines() if line.strip()]


def decide_body(policy: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """A ``/v1/decide`` body; every decide carries an idempotency key (a retry decides once)."""
    body = {"policy": policy, **{k: v for k, v in fields.items() if v is not None}}
    body.setdefault("idempotency_key", models.new_key())
    return body


def decision_body(fields: Mapping[str, Any]) -> dict[str, Any]:
    """A ``/v1/decisions`` item with a client id and idempotency key (kept when given)."""
    body = {k: _plain(v) for k, v in fields.items() if v is not None}
    body.setdefault("id", models.new_key())
    body.setdefault("idempotency_key", body["id"])
    return body


def feedback_body(fields: Mapping[str, Any]) -> dict[str, Any]:
    """A ``/v1/feedback`` body with a client-generated ``id``: a retried write is stored once."""
    body = {k: _plain(v) for k, v in fields.items() if v is not None}
    body.setdefault("id", models.new_key())
    return body


#: A review answer's set (None: the decision has none, or it is not answered).
Labels = Sequence[str] | None


def resolve_body(
    label: str | None,
    comment: str | None,
    labels: Labels,
    rating: int | None = None,
    better: str | None = None,
) -> dict[str, Any]:
    """A ``/v1/review/{id}/resolve`` body (absent fields left out)."""
    body = {
        "label": label,
        "comment": comment,
        "labels": list(labels) if labels is not None else None,
        "rating": rating,
        "better": better,
    }
    return {k: v for k, v in body.items() if v is not None}


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple):
        return list(value)
    return value


def dumps(body: Any) -> bytes:
    return orjson.dumps(body)


def batch_report(items: list[dict[str, Any]], data: dict[str, Any]) -> models.LogReport:
    """The report of one ``/v1/decisions/batch`` answer."""
    report = models.LogReport(int(data["stored"]), int(data["replayed"]))
    for r in data["results"]:
        if r["status"] >= 400:
            err = r.get("error") or {}
            item_id = items[r["index"]].get("id")
            report.failed.append(
                models.ItemFailure(item_id, r["status"], err.get("detail", ""), err.get("field"))
            )
    return report


def decided(data: dict[str, Any]) -> models.Decided:
    return models.build(models.Decided, data)


def receipt(data: dict[str, Any]) -> models.FeedbackReceipt:
    return models.build(models.FeedbackReceipt, data)


def review_queue(data: dict[str, Any]) -> models.ReviewQueue:
    return models.ReviewQueue(
        [models.build(models.ReviewItem, i) for i in data["items"]],
        dict(data["counts"]),
        data.get("next_page_token"),
    )


def page(data: dict[str, Any]) -> models.Page:
    return models.Page(list(data["items"]), data.get("next_page_token"))


#: The list routes the clients page through with ``page(name)`` / ``iter_pages(name)``.
LIST_ROUTES = {"policies": "/v1/policies", "experiments": "/v1/experiments", "keys": "/v1/keys"}


class _Paged(Protocol[T_co]):
    @property
    def items(self) -> Sequence[T_co]: ...
    @property
    def next_page_token(self) -> str | None: ...


def follow(fetch: Callable[[str | None], _Paged[T]]) -> Iterator[T]:
    """Every item of a list route: ``fetch(token)`` for each page, from the first (token None) until a
    page names no next one."""
    token: str | None = None
    while True:
        got = fetch(token)
        yield from got.items
        if (token := got.next_page_token) is None:
            return


async def afollow(fetch: Callable[[str | None], Awaitable[_Paged[T]]]) -> AsyncIterator[T]:
    """:func:`follow` for the async client."""
    token: str | None = None
    while True:
        got = await fetch(token)
        for item in got.items:
            yield item
        token = got.next_page_token
        if token is None:
            break


def page_params(limit: int, page_token: str | None, **more: Any) -> dict[str, Any]:
    """Query parameters of one page of a list route."""
    params: dict[str, Any] = {"limit": limit, **more}
    if page_token is not None:
        params["page_token"] = page_token
    return params


#: Most answers in one ``POST /v1/review/bulk`` (the service's limit); more are sent in several.
BULK_LIMIT = 100


class ReviewQuery(TypedDict, total=False):
    """What ``review_next`` asks for: a policy, a reason (``low_confidence``, ``audit``, ...) and a
    decision kind (each left out: any), ``limit`` items (default 10) from ``offset`` (default 0)."""

    policy: str | None
    reason: str | None
    kind: str | None
    limit: int
    offset: int


def review_next_params(query: ReviewQuery) -> dict[str, Any]:
    """Query parameters of ``GET /v1/review/next`` (absent filters left out); a TypeError names an
    unknown one."""
    unknown = sorted(set(query) - set(ReviewQuery.__annotations__))
    if unknown:
        raise TypeError(
            f"review_next: unknown filter {unknown[0]!r} (known: policy, reason, kind, limit, offset)"
        )
    params: dict[str, Any] = {"limit": query.get("limit", 10), "offset": query.get("offset", 0)}
    params |= {k: v for k, v in query.items() if k not in params and v is not None}
    return params


def review_page(data: dict[str, Any]) -> models.ReviewPage:
    agreement = data["agreement"]
    return models.ReviewPage(
        [models.build(models.ReviewItem, i) for i in data["items"]],
        int(data["available"]),
        int(data["claimed"]),
        dict(data["counts"]),
        models.Agreement(
            int(agreement["items"]), int(agreement["agreed"]), agreement.get("kappa"), agreement.get("alpha")
        ),
    )


def bulk_bodies(answers: Iterable[models.BulkAnswer]) -> list[dict[str, Any]]:
    """The ``/v1/review/bulk`` bodies of ``answers``, :data:`BULK_LIMIT` a body; a TypeError names the
    first answer that is not a :class:`~rewardloop.client.BulkAnswer`."""
    rows = []
    for i, a in enumerate(answers):
        if not isinstance(a, models.BulkAnswer):
            raise TypeError(f"answers[{i}]: expected a BulkAnswer, got {type(a).__name__}")
        body = resolve_body(a.label, a.comment, a.labels, a.rating, a.better)
        rows.append({"item_id": a.item_id, **body, **({"skip": True} if a.skip else {})})
    return [{"answers": rows[i : i + BULK_LIMIT]} for i in range(0, len(rows), BULK_LIMIT)]


def bulk_report(data: dict[str, Any]) -> models.BulkReport:
    return models.BulkReport(
        int(data["resolved"]),
        int(data["answered"]),
        int(data["skipped"]),
        [models.ReviewFailure(str(f["item_id"]), str(f["kind"]), str(f["message"])) for f in data["failed"]],
        dict(data["counts"]),
    )


def review_item(data: dict[str, Any]) -> models.ReviewItem:
    return models.build(models.ReviewItem, data)


def export_params(
    format: str, policy: str | None, since: datetime | None, until: datetime | None
) -> dict[str, str]:
    params = {"format": format}
    for name, value in (("policy", policy), ("since", since), ("until", until)):
        if value is not None:
            params[name] = value.isoformat() if isinstance(value, datetime) else value
    return params
