"""`KubeApiEmulator`: the emulated API server as an object a test starts, steers and stops."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from kube_emulator import kubeconfig
from kube_emulator.app import ApiServerApp
from kube_emulator.faults import Faults
from kube_emulator.httpserver import ApiHttpServer
from kube_emulator.state import EmulatorState
from kube_emulator.statuses import ApiError

logger = logging.getLogger(__name__)

DEFAULT_TOKEN = "kube-emulator-token"  # noqa: S105 - a fixed dummy bearer token, checked for presence


class KubeApiEmulator:
    """A Kubernetes API server for ConfigMaps on `host:port` (port 0: a free one), in a thread.

    with KubeApiEmulator() as api:
        api.write_kubeconfig(tmp_path / "kubeconfig")
        api.set_faults(Faults(conflict=0.1, seed=1))
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        write_delay: float = 0.0,
        token: str | None = DEFAULT_TOKEN,
    ) -> None:
        self._address = (host, port)
        self._state = EmulatorState(write_delay=write_delay, token=token)
        self._server: ApiHttpServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> Self:
        if self._server is not None:
            raise RuntimeError("the emulator is already running")
        self._state.stopping.clear()
        self._state.store.open()
        server = ApiHttpServer(self._address)
        host, port = server.socket.getsockname()[:2]
        self._address = (host, port)  # a restart comes back on the same port, like a restarted API server
        server.handle_request_fn = ApiServerApp(self._state, f"{host}:{port}").handle
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},  # how long stop() waits for the accept loop to notice
            name=f"kube-emulator-{port}",
            daemon=True,
        )
        self._thread.start()
        logger.info("kube API emulator serving on %s", self.url)
        return self

    def stop(self) -> None:
        """Stop serving (clients get connection errors); `start()` serves the same data again."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._state.stopping.set()  # ends injected sleeps
        self._state.late.drop()  # writes held for later are lost with the server
        self._state.store.close()  # ends watches
        server.shutdown()
        server.close_connections()
        server.server_close()
        thread.join()
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- where it is ------------------------------------------------------------------------

    @property
    def host(self) -> str:
        return str(self._running().server_address[0])

    @property
    def port(self) -> int:
        return int(self._running().server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def token(self) -> str | None:
        return self._state.token

    def kubeconfig(self, namespace: str = "default") -> dict[str, Any]:
        return kubeconfig.kubeconfig(self.url, self.token, namespace)

    def write_kubeconfig(self, path: str | Path, namespace: str = "default") -> Path:
        return kubeconfig.write(path, self.url, self.token, namespace)

    # -- controls ---------------------------------------------------------------------------

    @property
    def faults(self) -> Faults:
        return self._state.faults.faults

    def set_faults(self, faults: Faults) -> None:
        self._state.set_faults(faults)

    def clear_faults(self) -> None:
        self._state.clear_faults()

    @property
    def write_delay(self) -> float:
        return self._state.write_delay

    @write_delay.setter
    def write_delay(self, seconds: float) -> None:
        self._state.set_write_delay(seconds)

    def stats(self) -> dict[str, Any]:
        """Requests by verb, applied writes, conflicts answered, injected faults, current revision,
        writes refused as too long, late writes applied and dropped, the largest object stored
        (`largest_object_bytes` encoded, `largest_data_bytes` as the 1 MiB limit counts it)."""
        return self._state.snapshot()

    def reset_stats(self) -> None:
        """Zero the counters (the largest object stored included); objects and faults stay."""
        self._state.stats.reset()

    def reset(self) -> None:
        """Forget all objects, zero the counters, switch faults off."""
        self._state.reset()

    def get_configmap(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The stored object (a copy), bypassing HTTP and faults; None when absent."""
        try:
            return self._state.store.get(namespace, name).copy()
        except ApiError:
            return None

    def _running(self) -> ApiHttpServer:
        if self._server is None:
            raise RuntimeError("the emulator is not running")
        return self._server
