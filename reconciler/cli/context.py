"""What every command shares: the ``--config`` it was given, and running a coroutine on the ledger."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from reconciler.config import Settings
    from reconciler.ledger.store import Ledger

T = TypeVar("T")


@dataclass
class Context:
    """The group's options, handed to every command as ``click``'s ``obj``."""

    config: str | None

    def ledger_path(self) -> Path:
        from reconciler.configfile import ledger_path

        return ledger_path(self.config)

    def settings(self) -> Settings:
        from reconciler.config import load_settings

        return load_settings(self.config)


def run(coro: Awaitable[T]) -> T:
    """Run one coroutine to the end on a fresh event loop."""
    return asyncio.run(coro)  # type: ignore[arg-type]


async def with_ledger(
    ctx: Context, fn: Callable[[Ledger], Awaitable[T]], *, create: bool = False, write: bool = False
) -> T:
    """Run ``fn`` on the ledger: read-only unless ``write`` or ``create``; writers never migrate."""
    from reconciler.ledger.store import Ledger

    path = ctx.ledger_path()
    if create or write:
        opened = await Ledger.open(path, create=create, migrate=False)
    else:
        opened = await Ledger.open_readonly(path)
    async with opened as ledger:
        return await fn(ledger)
