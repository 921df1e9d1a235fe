"""The SDK's tests reuse the service's fixtures (the real app on the real store, fake policies)."""

from tests.service.conftest import api  # noqa: F401  (a fixture)
