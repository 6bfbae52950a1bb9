"""What every deployable's command line shares: loading config with one line per problem,
``check-config``, and running a service until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, Protocol, TypeVar

import click
from pydantic import BaseModel

from runtime.config import load_config
from runtime.errors import ConfigError
from runtime.logs import setup_logging
from runtime.sdnotify import Notifier

M = TypeVar("M", bound=BaseModel)
log = logging.getLogger(__name__)


def load_or_exit(path: str | Path, model: type[M]) -> M:
    """Load config or print each problem (``file: key: message``) and exit 2."""
    try:
        return load_config(path, model)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(f"{exc.path}: {problem}", err=True)
        raise SystemExit(2) from None


def check_config_command(model: type[BaseModel]) -> click.Command:
    @click.command("check-config")
    @click.argument("config_file", type=click.Path(dir_okay=False))
    def check_config(config_file: str) -> None:
        """Validate CONFIG_FILE; print each problem with its key and exit non-zero."""
        load_or_exit(config_file, model)
        click.echo(f"{config_file}: ok")

    return check_config


class Service(Protocol):
    ready: asyncio.Event  # set once the service serves (systemd's READY=1)

    async def run(self) -> None: ...


def run_command(model: type[M], service: Callable[[M], Service], what: str) -> click.Command:
    """``run --config FILE``: load and validate, set up logging, run until a signal."""

    @click.command("run", help=f"Run {what} until SIGINT or SIGTERM.")
    @click.option(
        "--config",
        "config_file",
        required=True,
        type=click.Path(dir_okay=False),
        help=f"the TOML configuration of {what}",
    )
    def run(config_file: str) -> None:
        config = load_or_exit(config_file, model)
        setup_logging(getattr(config, "log_level", "INFO"))
        svc = service(config)
        run_until_signal(svc.run, ready=svc.ready, what=what)

    return run


def run_until_signal(
    main: Callable[[], Coroutine[Any, Any, None]],
    ready: asyncio.Event | None = None,
    what: str = "the service",
) -> None:
    """Run ``main()`` as a task until it returns or SIGINT/SIGTERM cancels it (then it cleans
    up). Under systemd (``NOTIFY_SOCKET``): ``READY=1`` once ``ready`` is set, watchdog pings
    from this event loop while it runs, ``STOPPING=1`` on the signal."""
    try:
        notifier = Notifier.from_environ()
    except ValueError as exc:
        click.echo(f"systemd notification: {exc}", err=True)
        raise SystemExit(2) from None

    async def runner() -> None:
        service = asyncio.create_task(main(), name=what)
        stopping: list[signal.Signals] = []

        def on_signal(sig: signal.Signals) -> None:
            if not stopping:
                log.info("stopping on %s", sig.name)
                notifier.stopping(f"stopping on {sig.name}")
            stopping.append(sig)
            service.cancel()

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal, sig)
        try:
            async with (
                notifier.watchdog(),
                notifier.ready_when(ready, f"{what} is serving"),
            ):
                try:
                    await service
                except asyncio.CancelledError:
                    if not stopping:
                        raise
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    asyncio.run(runner())
