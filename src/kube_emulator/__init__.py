"""An emulated Kubernetes API server for ConfigMaps (tests and local runs)."""
