"""The Python SDK of a rewardloop service (on httpx; no torch).

>>> from rewardloop.client import Client
>>> client = Client("http://127.0.0.1:8000", api_key="rl_...")  # doctest: +SKIP
>>> decision_id = client.log_decision(policy="router", policy_version="1", kind="router",
...     actions=["a", "b"], action="a", action_dist=[0.7, 0.3], pscore=0.7)  # doctest: +SKIP
>>> client.flush()  # doctest: +SKIP
LogReport(stored=1, replayed=0, failed=[])

``Client`` and ``AsyncClient`` talk to the service; ``Client.local(store_url)`` writes to a store.
See docs/sdk.md.
"""

from rewardloop.client.aio import AsyncClient
from rewardloop.client.local import LocalClient
from rewardloop.client.models import (
    Agreement,
    ApiError,
    BulkAnswer,
    BulkReport,
    Decided,
    FeedbackReceipt,
    ItemFailure,
    LogReport,
    Page,
    RetryPolicy,
    ReviewFailure,
    ReviewItem,
    ReviewPage,
    ReviewQueue,
)
from rewardloop.client.sync import Client

__all__ = [
    "Agreement",
    "ApiError",
    "AsyncClient",
    "BulkAnswer",
    "BulkReport",
    "Client",
    "Decided",
    "FeedbackReceipt",
    "ItemFailure",
    "LocalClient",
    "LogReport",
    "Page",
    "RetryPolicy",
    "ReviewFailure",
    "ReviewItem",
    "ReviewPage",
    "ReviewQueue",
]
