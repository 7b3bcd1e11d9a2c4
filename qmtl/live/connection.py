"""The one way a live process connects to NATS: it fails fast, with one clear error, when the server
is not there at start, and once connected reconnects for as long as the process lives (a long-running
process outlives a server restart; JetStream keeps what was stored)."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("qmtl.live")


class NatsUnreachable(ConnectionError):
    """No NATS server answered at the address given."""


async def _log_error(exc: Exception) -> None:
    # nats-py's default prints a traceback per failed attempt; one line says the same
    log.warning("nats: %s: %s", type(exc).__name__, exc)


async def _quiet(exc: Exception) -> None:
    pass  # the probe's failure is reported once, as NatsUnreachable


async def connect(server: str, name: str) -> Any:
    """A client connected to ``server``; ``NatsUnreachable`` within a few seconds when it is not up."""
    import nats
    from nats.errors import NoServersError
    try:
        probe = await nats.connect(server, name=name, connect_timeout=2, max_reconnect_attempts=1,
                                   reconnect_time_wait=0.5, error_cb=_quiet)
    except (NoServersError, OSError) as exc:
        raise NatsUnreachable(f"no NATS server answers at {server} ({type(exc).__name__})") from None
    await probe.close()
    return await nats.connect(server, name=name, connect_timeout=2, max_reconnect_attempts=-1,
                              reconnect_time_wait=1.0, error_cb=_log_error)
