"""Is a service within reach? Asked once, in about two seconds, before a library asks: the
Hugging Face hub before timm asks for weights (without network, huggingface_hub retries for
about 50 s before it gives up), a tracking server before a run starts (maskctl.engine.trackers)."""
from __future__ import annotations

import contextlib
import socket
import threading
import urllib.parse
import urllib.request
from typing import Iterator

CONNECT_TIMEOUT_S = 2.0


def unreachable_reason() -> str | None:
    """None when the hub's host takes a connection, else why not, in a few words."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    return url_unreachable(constants.ENDPOINT)


def url_unreachable(url: str) -> str | None:
    """None when the host of an http(s) `url` takes a TCP connection within CONNECT_TIMEOUT_S
    (or a proxy stands between, which only a real request can judge), else why not. Services
    (the hub, a tracking server) retry for minutes before they give up: this asks once."""
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    if urllib.request.getproxies().get(parts.scheme) and not urllib.request.proxy_bypass(host):
        return None
    outcome: list[str | None] = []

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
            outcome.append(None)
        except OSError as exc:
            outcome.append(f"{host} is out of reach ({exc.strerror or type(exc).__name__})")

    # In a thread because name resolution does not honour the timeout.
    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(CONNECT_TIMEOUT_S + 0.5)
    return outcome[0] if outcome else f"{host} did not answer within {CONNECT_TIMEOUT_S:.0f} s"


@contextlib.contextmanager
def offline_unless_reachable() -> Iterator[str | None]:
    """Yields why the hub is out of reach (None when it answers). While it is, huggingface_hub
    runs offline: weights already in its cache still load, and missing ones fail at once."""
    from huggingface_hub import constants

    reason = unreachable_reason()
    saved = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = saved or reason is not None
    try:
        yield reason
    finally:
        constants.HF_HUB_OFFLINE = saved
