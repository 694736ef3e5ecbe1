"""`counter`: the command line.

Options of `counter serve` are the COUNTER_* environment variables under another name; an
option given on the command line wins over the variable. Settings are validated before anything
starts, and a wrong one stops the process with one line that names it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from importlib.metadata import version

from entrypoints.settings import SPECS, Settings, SettingsError

APP_FACTORY = "entrypoints.http.app:app_factory"


def _option(variable: str) -> str:
    return "--" + variable.removeprefix("COUNTER_").lower().replace("_", "-")


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
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    settings = commands.add_parser(
        "settings",
        help="print the effective settings (secrets hidden) and exit",
        description="Validate the COUNTER_* variables and print the settings as JSON.",
    )
    for spec in SPECS:
        if spec.variable == "COUNTER_ADMIN_TOKEN":
            continue  # a secret on the command line ends up in `ps` and shell history
        serve.add_argument(
            _option(spec.variable),
            dest=spec.variable,
            metavar="VALUE",
            default=None,
            help=f"{spec.help} [{spec.variable}, default: {spec.default or 'empty'}]",
        )
    serve.epilog = "COUNTER_ADMIN_TOKEN is read from the environment only, to keep it out of `ps`."
    del settings
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for spec in SPECS:
        value = getattr(args, spec.variable, None)
        if value is not None:
            os.environ[spec.variable] = value  # workers are new processes: they read the environment
    try:
        settings = Settings.from_env()
    except SettingsError as error:
        sys.stderr.write(f"counter: invalid setting {error}\n")
        return 2
    if args.command == "settings":
        sys.stdout.write(json.dumps(settings.redacted(), indent=2) + "\n")
        return 0
    return serve(settings)


def serve(settings: Settings) -> int:
    import uvicorn

    from entrypoints.logs import configure_logging

    configure_logging(settings.log_level, settings.log_format)
    logging.getLogger("counter.cli").info("starting", extra=settings.redacted())
    uvicorn.run(
        APP_FACTORY,
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=False,
        timeout_graceful_shutdown=10,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
