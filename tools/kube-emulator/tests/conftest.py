"""The emulator's own tests: its fixtures, as any suite that uses it would load them."""

from kube_emulator.testing import kube_api, kube_kubeconfig

__all__ = ["kube_api", "kube_kubeconfig"]
