"""Fixtures shared by the integration tests: a redis-server of our own on a free port."""

pytest_plugins = ["tests.integration.redis_fixtures"]
