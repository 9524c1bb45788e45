"""A small OSC-over-UDP client for ``editorbot serve``: send one message, read replies.

``OscClient`` owns one UDP socket bound to an ephemeral loopback port, so the
server's replies (which go to the sender's address) come back to it.
``request`` sends a message and yields replies until a terminal one
(``pong``, ``done``, ``error``, ...) or a timeout. Used by ``editorbot send``,
the tests and ``bench/osc.py``.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import time
from collections.abc import Iterator, Sequence
from typing import Any

from pythonosc.osc_message import OscMessage, ParseError
from pythonosc.osc_message_builder import build_msg

log = logging.getLogger(__name__)

#: Replies after which ``request`` stops waiting (the job or query is over).
TERMINAL = frozenset(
    {"/editorbot/pong", "/editorbot/done", "/editorbot/error", "/editorbot/status", "/editorbot/cancelling"}
)
#: Socket receive buffer asked for (bytes); the kernel may cap it.
RECV_BUFFER_BYTES = 4 << 20

#: Port ``editorbot serve`` listens on unless told otherwise.
DEFAULT_PORT = 7878

Reply = tuple[str, list[Any]]


def encode(address: str, args: Sequence[Any] = ()) -> bytes:
    """One OSC message as a datagram (str, int, float, bool, bytes and None arguments)."""
    return build_msg(address, list(args)).dgram


def decode(data: bytes) -> Reply | None:
    """``(address, args)`` of an OSC message datagram, or None when it is not one."""
    try:
        msg = OscMessage(data)
    except (ParseError, ValueError, IndexError, TypeError):
        return None
    return msg.address, list(msg.params)


def parse_cli_arg(text: str) -> int | float | str:
    """A command-line argument as the OSC type it looks like: int, then float, else string."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


class OscClient:
    """UDP socket for talking to ``editorbot serve`` at ``(host, port)``."""

    def __init__(self, host: str = "127.0.0.1", port: int = DEFAULT_PORT, *, bind_host: str | None = None) -> None:
        self.address = (host, int(port))
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECV_BUFFER_BYTES)
        except OSError:
            pass
        self.sock.bind((bind_host or host, 0))

    @property
    def port(self) -> int:
        """The local port replies come back to."""
        return int(self.sock.getsockname()[1])

    def send(self, address: str, *args: Any) -> None:
        """Send one message."""
        self.sock.sendto(encode(address, args), self.address)

    def send_raw(self, data: bytes) -> None:
        """Send a datagram as it is (for tests of malformed input)."""
        self.sock.sendto(data, self.address)

    def receive(self, timeout: float) -> Reply | None:
        """The next reply within ``timeout`` seconds, or None. Non-OSC datagrams are skipped."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                data, _ = self.sock.recvfrom(65535)
            except TimeoutError:
                return None
            reply = decode(data)
            if reply is not None:
                return reply
            log.debug("skipped a reply that is not an OSC message (%d bytes)", len(data))

    def request(
        self, address: str, *args: Any, timeout: float = 5.0, terminal: frozenset[str] = TERMINAL
    ) -> Iterator[Reply]:
        """Send one message and yield replies until a terminal one (yielded too) or ``timeout``
        seconds without any reply."""
        self.send(address, *args)
        while True:
            reply = self.receive(timeout)
            if reply is None:
                return
            yield reply
            if reply[0] in terminal:
                return

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()

    def __enter__(self) -> OscClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: Host names that mean this machine only.
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
