"""The outer edge: settings, wiring, HTTP and the command line."""
