"""Fixtures shared by the integration tests: our own redis-server on a free port, and an
emulated Kubernetes API server for ConfigMaps."""

pytest_plugins = ["tests.integration.redis_fixtures", "tests.integration.kube_fixtures"]
