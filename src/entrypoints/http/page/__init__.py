"""The page that watches a namespace's counters live (routes.py), with its assets (static/)."""
