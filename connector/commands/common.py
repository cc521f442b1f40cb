"""What every command shares: the config (`--config` before or after it), dates, output."""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any, TextIO, TypeVar

import click
from rich.console import Console

from connector.commands.state import State
from connector.config import Config, load_config, resolve_config_path
from connector.errors import InputError

F = TypeVar("F", bound=Callable[..., Any])


def _remember_config(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value:
        ctx.ensure_object(State).config_option = value


def config_option(command: F) -> F:
    """``--config PATH`` on a sub-command too: ``sync --config x`` = ``--config x sync``."""
    return click.option(
        "--config",
        metavar="PATH",
        expose_value=False,
        callback=_remember_config,
        help="The config file (default: $SPM_CONFIG, else ./spm.yaml).",
    )(command)


def wait_option(command: F) -> F:
    """``--wait SECONDS``: how long a command waits for the store's lock (sync, the pay cycle)."""
    return click.option(
        "--wait",
        "wait_s",
        type=click.FloatRange(0),
        default=600.0,
        show_default=True,
        metavar="SECONDS",
        help="How long to wait for the webhook worker or another sync holding the store; "
        "exit 4 when the wait runs out (0: do not wait).",
    )(command)


def config_of(ctx: click.Context) -> Config:
    state = ctx.find_object(State)
    return load_config(resolve_config_path(state.config_option if state else None, os.environ))


def config_name(ctx: click.Context) -> str:
    """The config file's name as messages give it (``spm.yaml``)."""
    state = ctx.find_object(State)
    return Path(resolve_config_path(state.config_option if state else None, os.environ)).name


def console() -> Console:
    """Where progress, warnings and summaries go: stderr, so stdout stays clean."""
    return Console(stderr=True, highlight=False, soft_wrap=True)


def as_of_date(text: str | None, config: Config) -> date:
    if text is None:
        # The commands may read the clock; the engine never does.
        return datetime.now(config.zone).date()
    try:
        if len(text) != 10:
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise InputError(f"--as-of: {text!r} is not a date (YYYY-MM-DD)") from None


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector around a bulk computation.

    The engine builds millions of acyclic records (credits, lines); each
    automatic collection would walk all of them again, which costs about as
    much as the computation itself on a large org. Reference counting still
    frees everything as usual.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@contextmanager
def private_file(path: str | Path) -> Iterator[TextIO]:
    """Open ``path`` for writing text that is pay data: readable by its owner only (0600),
    like the store, whatever the umask and whatever mode an older file had."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(descriptor, 0o600)
        out = os.fdopen(descriptor, "w", encoding="utf-8", newline="")
    except OSError as error:
        raise InputError(f"{path}: cannot be written ({error.strerror})") from None
    with out:
        yield out
