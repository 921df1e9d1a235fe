"""An app that logs its decisions and their feedback through the rewardloop SDK.

Against a running service (``rewardloop serve``; a key with the decide and feedback scopes)::

    python examples/app.py --url http://127.0.0.1:8000 --key rl_...

or against a store directly (no service)::

    python examples/app.py --store sqlite:///rewardloop.db

The "app" routes requests between two answer models with an epsilon-greedy rule, logs each decision
with its propensity in the background (batched), then sends one rating per decision.
"""

from __future__ import annotations

import argparse
import random

from rewardloop.client import Client, LocalClient

ARMS = ("small-model", "large-model")


def run(client: Client | LocalClient, n: int, seed: int = 0) -> tuple[int, int]:
    """Log ``n`` routing decisions and a rating of each; (decisions stored, feedback stored)."""
    rng = random.Random(seed)
    epsilon = 0.2
    decided = []
    for i in range(n):
        hard = rng.random() < 0.5  # the context: is the question hard?
        greedy = 1 if hard else 0
        dist = [epsilon / 2, epsilon / 2]
        dist[greedy] += 1 - epsilon
        arm = rng.choices(range(2), weights=dist)[0]
        decision_id = client.log_decision(
            policy="example-router",
            policy_version="1",
            kind="router",
            actions=list(ARMS),
            action=ARMS[arm],
            action_dist=dist,
            pscore=dist[arm],
            features=[float(hard), 1.0],
            metadata={"request": i},
        )
        decided.append((decision_id, hard, arm))
    logged = client.flush()  # every decision is stored before its feedback is sent
    ratings = [
        {"decision_id": d, "kind": "rating", "value": 1.0 if (arm == 1) == hard else 0.0, "scale": [0, 1]}
        for d, hard, arm in decided
    ]
    rated = client.feedback_many(ratings)
    if logged.failed or rated.failed:
        raise SystemExit(f"refused: {logged.failed[:3]} {rated.failed[:3]}")
    return logged.stored + logged.replayed, rated.stored


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="the service, e.g. http://127.0.0.1:8000")
    parser.add_argument("--key", help="an API key (decide and feedback scopes)")
    parser.add_argument("--store", help="a store URL: write to it directly instead of a service")
    parser.add_argument("--project", default="default", help="the project (with --store)")
    parser.add_argument("-n", type=int, default=200, help="decisions to log")
    args = parser.parse_args()
    if (args.url is None) == (args.store is None):
        parser.error("give --url (and --key) or --store")
    client = Client.local(args.store, args.project) if args.store else Client(args.url, args.key)
    with client:
        decisions, feedback = run(client, args.n)
    print(f"logged {decisions} decisions and {feedback} ratings")


if __name__ == "__main__":
    main()
