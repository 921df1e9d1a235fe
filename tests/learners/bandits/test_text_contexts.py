"""The real text path: MiniLM embeddings as router contexts (slow: loads the encoder)."""

from __future__ import annotations

import pytest

from rewardloop.learners.bandits import LinUCB
from rewardloop.policies.router import ContextFeatures


@pytest.mark.slow
def test_linucb_routes_minilm_contexts_by_topic():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    feats = ContextFeatures("both", n_numeric=1)
    tax = [
        "how do I file my income tax return",
        "what VAT rate applies to books",
        "tax deduction for a home office",
    ]
    law = [
        "what is the precedent for breach of contract",
        "can my landlord evict me",
        "how to appeal a court ruling",
    ]
    X = feats.transform_many([[1.0]] * 6, tax + law)
    assert X.shape == (6, 385)
    router = LinUCB(["tax_agent", "legal_agent"], dim=feats.dim, alpha=0.1, random_state=0)
    for _ in range(5):
        for x, arm in zip(X, ["tax_agent"] * 3 + ["legal_agent"] * 3, strict=True):
            router.learn(x, arm, 1.0)
            router.learn(x, "legal_agent" if arm == "tax_agent" else "tax_agent", 0.0)
    new = feats.transform_many([[1.0], [1.0]], ["is my pension taxable", "suing a company for negligence"])
    assert [router.act(x).arm for x in new] == ["tax_agent", "legal_agent"]
