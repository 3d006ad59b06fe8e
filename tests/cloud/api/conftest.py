"""The API tests speak HTTP to a real uvicorn serving the app with an in-memory controller (see fixtures)."""

from tests.cloud.api.fixtures import api_token, api_url, client, memory, served_memory

__all__ = ["api_token", "api_url", "client", "memory", "served_memory"]
