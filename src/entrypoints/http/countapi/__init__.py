"""CountAPI's API (countapi.xyz) under `/countapi`, on the same counters as the native API."""

from entrypoints.http.countapi.routes import countapi_router

__all__ = ["countapi_router"]
