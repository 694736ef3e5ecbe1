"""`counter`: the command line (`export` and `import`: entrypoints.transfer).

Options of `counter serve` are the COUNTER_* environment variables under another name, made
from the settings' declarations (name, help, default); an option given on the command line wins
over the variable. Secrets have no option. Settings are validated before anything starts, and a
wrong one stops the process with one line that names it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from importlib.metadata import version

from entrypoints import transfer
from entrypoints.setting_sources import unknown_variables
from entrypoints.settings import DECLARED, Declared, Settings, SettingsError, known_variables

APP_FACTORY = "entrypoints.http.app:app_factory"


def _option(declared: Declared) -> str:
    return "--" + declared.name.replace("_", "-")


def _help(declared: Declared) -> str:
    default = declared.default_text or "empty"
    # argparse expands %-formats in help; a literal % in a declaration must stay literal.
    return f"{declared.help} [{declared.variable}, default: {default}]".replace("%", "%%")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="counter",
        description="Counter Web Server: exact HTTP counters on SQLite, Redis or a Kubernetes ConfigMap.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version('counter-web-server')}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="run the HTTP service",
        description="Run the HTTP service under uvicorn. Every option can also be set by its"
        " environment variable (shown in brackets); the option wins.",
    )
    commands.add_parser(
        "settings",
        help="print the effective settings (secrets hidden) and exit",
        description="Validate the COUNTER_* variables and print the settings as JSON.",
    )
    transfer.add_commands(commands)
    secrets = []
    for declared in DECLARED:
        if declared.secret:
            secrets.append(declared)  # a secret on the command line ends up in `ps` and shell history
            continue
        serve.add_argument(
            _option(declared), dest=declared.variable, metavar="VALUE", default=None, help=_help(declared)
        )
    serve.epilog = " ".join(
        f"{declared.variable}: {declared.help}; read from the environment only, to keep it out of `ps`"
        f" (or from the file named by {declared.file_variable})."
        for declared in secrets
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for declared in DECLARED:
        value = getattr(args, declared.variable, None)
        if value is not None:
            os.environ[declared.variable] = value  # workers are new processes: they read the environment
            if declared.file_variable:
                os.environ.pop(declared.file_variable, None)  # the option wins over the file too
    try:
        settings = Settings.from_env()
    except SettingsError as error:
        sys.stderr.write(f"counter: invalid setting {error}\n")
        return 2
    if args.command == "settings":
        for unknown in unknown_variables(os.environ, known_variables()):
            sys.stderr.write(f"counter: {unknown.message}\n")
        sys.stdout.write(json.dumps(settings.redacted(), indent=2) + "\n")
        return 0
    if args.command in ("export", "import"):
        return transfer.run(args, settings)
    return serve(settings)


def serve(settings: Settings) -> int:
    """Run the server until it is told to stop. The exit code is 0, or 3 when it (or any of its
    workers) could not start: the store did not open, the port was taken..."""
    from entrypoints.logs import configure_logging
    from entrypoints.observability.multiprocess import metrics_directory, worker_exited
    from entrypoints.observability.tracing import warn_if_tracing_unavailable
    from entrypoints.uvicorn_server import ConnectionLimits, run

    configure_logging(settings.log_level, settings.log_format)
    log = logging.getLogger("counter.cli")
    log.info("starting", extra=settings.redacted())
    for unknown in unknown_variables(os.environ, known_variables()):
        log.warning(unknown.message, extra={"variable": unknown.variable, "suggestion": unknown.suggestion})
    warn_if_tracing_unavailable()  # once here, not once per worker
    # Before any worker starts: the workers of one server sum their metrics through it.
    with metrics_directory(settings.workers):
        code = run(
            APP_FACTORY,
            limits=ConnectionLimits(
                max_header_bytes=settings.max_header_bytes,
                keep_alive_seconds=settings.keep_alive_seconds,
                header_timeout_seconds=settings.header_timeout_seconds,
                body_timeout_seconds=settings.body_timeout_seconds,
                send_timeout_seconds=settings.send_timeout_seconds,
            ),
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            shutdown_timeout_seconds=settings.shutdown_timeout_seconds,
            on_worker_exit=worker_exited,
        )
    if code:
        log.error("the server did not start", extra={"exit_code": code})
    return code


if __name__ == "__main__":
    sys.exit(main())
