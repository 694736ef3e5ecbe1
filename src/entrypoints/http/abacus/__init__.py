"""Abacus 1.6.0's API (github.com/JasonLovesDoggo/abacus, CountAPI's successor) under `/abacus`,
on the same counters as the native API: names.py reads names, answers.py writes Abacus's bodies,
routes.py, admin.py and shields.py serve it, docs.py documents it, router.py puts it together."""

from entrypoints.http.abacus.router import abacus_router

__all__ = ["abacus_router"]
