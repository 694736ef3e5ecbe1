"""Adapters: one module per store technology, each implementing domain.ports.CounterRepository."""
