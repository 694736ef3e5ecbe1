"""Peers: the common stack the service is compared with, each a minimal app."""
