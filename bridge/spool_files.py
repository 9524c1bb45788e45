"""A spool's files, handled as untrusted: reading a request without following a
link or blocking, removing a directory entry (never what a link points to),
and the ledger of the files a spool wrote, the only ones it removes
(``bridge.spool``).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import stat
import threading
from pathlib import Path

from editorbot.engine.atomic import write_json_atomic

log = logging.getLogger(__name__)

LEDGER_SCHEMA = "editorbot.spool.ledger/1"
#: Largest request file read (bytes).
MAX_REQUEST_BYTES = 1 << 20


def remove_entry(path: Path) -> bool:
    """Unlink the directory entry ``path`` (a link itself, never its target); folders are left."""
    try:
        if stat.S_ISDIR(os.lstat(path).st_mode):
            return False
        path.unlink()
        return True
    except FileNotFoundError:
        return False


def age_s(path: Path, now: float) -> float | None:
    """Seconds since ``path`` itself (not a link's target) changed; None when it is gone."""
    try:
        return now - os.lstat(path).st_mtime
    except FileNotFoundError:
        return None


def read_request_file(path: Path) -> tuple[bytes, int]:
    """``(content, owner uid)`` of a request file; ``ValueError`` unless it is a regular file of
    at most ``MAX_REQUEST_BYTES``. Never follows a link and never blocks (a FIFO is refused)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise ValueError("a symbolic link; a request must be a regular file") from None
        raise ValueError(f"cannot open: {err.strerror or err}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError("not a regular file (a request must be one)")
        if st.st_size > MAX_REQUEST_BYTES:
            raise ValueError(f"{st.st_size} bytes; a request is at most {MAX_REQUEST_BYTES} bytes")
        data = os.read(fd, MAX_REQUEST_BYTES + 1)
        if len(data) > MAX_REQUEST_BYTES:
            raise ValueError(f"more than {MAX_REQUEST_BYTES} bytes; a request is at most that")
        return data, st.st_uid
    finally:
        os.close(fd)


class Ledger:
    """The files a spool wrote (``work/NAME`` and ``outbox/NAME``), kept in ``SPOOL/ledger.json``.

    Only files named here are ever swept or removed by the spool. The file is
    rewritten atomically when the set changes; a damaged ledger counts as empty.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._names: set[str] = set()
        self._lock = threading.Lock()
        try:
            doc = json.loads(read_request_file(path)[0]) if os.path.lexists(path) else {}
            names = doc.get("files", []) if isinstance(doc, dict) and doc.get("schema") == LEDGER_SCHEMA else []
            self._names = {n for n in names if isinstance(n, str) and _ledger_name_ok(n)}
        except (ValueError, RecursionError) as err:
            log.warning("spool: %s unreadable (%s): starting an empty ledger", path, err)

    def __contains__(self, name: str) -> bool:
        with self._lock:
            return name in self._names

    def names(self, folder: str, prefix: str = "") -> list[str]:
        """Recorded names in ``folder`` (``work`` or ``outbox``) starting with ``prefix``."""
        with self._lock:
            return sorted(n.split("/", 1)[1] for n in self._names if n.startswith(f"{folder}/{prefix}"))

    def add(self, name: str) -> None:
        with self._lock:
            if name in self._names:
                return
            self._names.add(name)
            self._save()

    def discard(self, name: str) -> None:
        with self._lock:
            if name not in self._names:
                return
            self._names.discard(name)
            self._save()

    def _save(self) -> None:
        write_json_atomic(self.path, {"schema": LEDGER_SCHEMA, "files": sorted(self._names)}, indent=None)


def _ledger_name_ok(name: str) -> bool:
    folder, _, base = name.partition("/")
    return folder in ("work", "outbox") and bool(base) and "/" not in base and base not in (".", "..")


def entry_owner(path: Path) -> int | None:
    try:
        return os.lstat(path).st_uid
    except FileNotFoundError:
        return None


def size_bytes(path: Path) -> int | None:
    try:
        return os.lstat(path).st_size
    except FileNotFoundError:
        return None
