"""One MiniLM encoder for the whole test session (loading takes seconds); one torch thread."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="session")
def encoder():
    torch.set_num_threads(1)
    from rewardloop.encoders import default_encoder

    return default_encoder()  # process-wide: every test area shares it, and its embedding cache
