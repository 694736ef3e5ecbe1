"""The pure core of the counter service: standard library only."""
