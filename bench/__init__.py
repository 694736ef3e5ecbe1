"""The benchmark harness: `python -m bench` (what `make bench` runs).

It starts every server it measures on 127.0.0.1, loads them with wrk, checks that no increment was
lost, and writes a table, a JSON file and a plot under bench/results/. See bench/README.md.
"""
