"""Spool directory: the file-based job exchange with the Reaper Lua scripts.

ReaScripts cannot open sockets, so a script and the server talk through
files in one folder (DESIGN section 8). Every file that is read by the other
side appears by ``rename`` of a finished temporary file in the same folder,
so a reader never sees half a file.

Layout of ``SPOOL``::

    heartbeat            server liveness, rewritten every second
    inbox/ID.json        requests (client: write ``inbox/.ID.tmp``, rename)
    work/ID.json         requests being worked on (server claims by rename)
    outbox/ID.json       results (server: temp file + rename)
    outbox/ID.progress.json  progress of a claimed request
    outbox/ID.plan.json, outbox/ID.tsv, outbox/ID.wav   files a result names
    cancel/ID            cancel request (any content; client creates it)
    alive/ID             client liveness: the client rewrites it about every
                         second while it waits (optional)

``ID`` is 1-64 characters of ``A-Z a-z 0-9 _ . -`` and does not start with a
dot. Files whose names start with a dot are temporary and ignored.

Heartbeat (``heartbeat``)::

    {"schema": "editorbot.spool.heartbeat/1", "pid": 1234,
     "time": 1700000000.25, "busy": "ID or null"}

``time`` is the server's wall clock (Unix seconds). A client treats the
server as gone when ``time`` is more than a few seconds old (the scripts use
5 s) and may then start one (``editorbot serve --spool SPOOL`` or
``python -m editorbot.bridge.spool --spool SPOOL``).

Request (``inbox/ID.json``)::

    {"schema": "editorbot.spool.request/1",
     "id": "ID",                      # must equal the file name's ID
     "kind": "edit",                  # the only kind so far
     "audio": "/abs/path/song.wav",   # the file to edit
     "start_s": 12.0, "end_s": 60.0,  # optional: the part of the file to edit
     "target_duration_s": 40.0,       # optional: length of the edit
     "keep": [[3.0, 6.5]],            # optional: protected ranges, seconds
                                      #   from start_s (from 0 without it)
     "model": "",                     # "" default model, a .onnx path, or
                                      #   "dp" (pure DP retimer, no learned
                                      #   model; needs target_duration_s)
     "channel_files": ["/abs/R.wav"], # optional: the song's further channels,
                                      #   one mono file each, same rate and
                                      #   length as "audio" (Ardour keeps a
                                      #   stereo region as one file a channel)
     "created": 1700000000}           # client clock, informational

Progress (``outbox/ID.progress.json``)::

    {"schema": "editorbot.spool.progress/1", "id": "ID",
     "fraction": 0.4, "stage": "analysing", "time": 1700000001.5}

Result (``outbox/ID.json``)::

    {"schema": "editorbot.spool.result/1", "id": "ID",
     "status": "done" | "error" | "cancelled",
     "message": "one line (the error, or a summary)",
     "plan_path": ".../outbox/ID.plan.json",   # done only
     "tsv_path": ".../outbox/ID.tsv",          # done only
     "audio_path": ".../outbox/ID.wav",        # done, when rendered
     "source_offset_s": 12.0,   # add to every segment's src times to get
                                # positions in the request's audio file
     "n_segments": 17, "n_markers": 9,         # counts, for checking
     "plan": {...}}             # the EditPlan itself (engine.plan JSON)

Clean-up (``Spool.sweep``, about once a second): requests older than
``max_age_s`` (default 10 minutes) are dropped unanswered; a request whose
``alive/ID`` file has not been rewritten for ``client_timeout_s`` (default
30 s) counts as cancelled (its client is gone); results, progress, cancel and
alive files older than ``max_age_s`` are removed, and so are a cancelled
request's files. A claimed request found in ``work/`` when the server starts
(a server that died mid-job) goes back to ``inbox/``.

Safety (anyone who can write into ``inbox/`` is untrusted):

- ``inbox``, ``work``, ``outbox``, ``cancel`` and ``alive`` must be real
  folders: a symbolic link there is refused at start-up (``BadInput``), and
  every clean-up first checks that the folder is still the one it was.
- The spool records every file it writes in ``ledger.json`` (names under
  ``work/`` and ``outbox/``) and removes or moves only those, the requests
  handed to it, and the cancel and alive markers of its requests; it removes
  directory entries, never anything a link points to.
- A request must be a regular file (opened with ``O_NOFOLLOW|O_NONBLOCK``, so
  a link, FIFO or device gets an error result and never blocks the loop) of at
  most ``MAX_REQUEST_BYTES``; its ``audio`` and ``model`` paths must lie inside
  the allowed roots (``--allow``, as on the OSC side: ``bridge.paths``).
- Anything raised while one request is handled becomes that request's
  ``error`` result; the loop goes on.
- The files a result names are created exclusively (``engine.atomic.reserve_path``):
  a request reusing the id of one whose files are still in ``outbox/`` gets
  an error, and no earlier file is replaced.
- Only the request's owner (the user id owning its request file) can cancel
  it: a cancel or alive file owned by anyone else is ignored.

``run_spool(dir, handler)`` is a complete server loop (one job at a time, in
a worker thread so the heartbeat keeps beating); ``python -m editorbot.bridge.spool
--spool DIR`` runs it with ``bridge.spool_edit.edit_handler``, the edit pipeline
(``export.edit``) or the pure DP retimer.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import re
import stat
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from editorbot.bridge.paths import default_roots, request_path_check, resolve_roots
from editorbot.bridge.spool_edit import edit_handler
from editorbot.bridge.spool_files import (
    Ledger,
    age_s,
    entry_owner,
    read_request_file,
    remove_entry,
    size_bytes,
)
from editorbot.engine.atomic import reserve_path, write_json_atomic
from editorbot.engine.errors import BadInput, BadRequest
from editorbot.export.request import EditRequest

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)

REQUEST_SCHEMA = "editorbot.spool.request/1"
RESULT_SCHEMA = "editorbot.spool.result/1"
PROGRESS_SCHEMA = "editorbot.spool.progress/1"
HEARTBEAT_SCHEMA = "editorbot.spool.heartbeat/1"

KINDS: tuple[str, ...] = ("edit",)
#: Seconds between heartbeats.
HEARTBEAT_INTERVAL_S = 1.0
#: Requests and leftover files older than this are removed (seconds).
MAX_AGE_S = 600.0
#: A request whose ``alive/ID`` file is older than this has lost its client (seconds).
CLIENT_TIMEOUT_S = 30.0
#: Subfolders of a spool, each a real folder (never a link).
FOLDERS = ("inbox", "work", "outbox", "cancel", "alive")

_ID = re.compile(r"^[A-Za-z0-9_\-][A-Za-z0-9_.\-]{0,63}$")
#: A temp file of ``engine.atomic`` (``.NAME.<12 hex>.partial<ext>``); group 1 is NAME.
_PARTIAL = re.compile(r"^\.(.+)\.[0-9a-f]{12}\.partial")


class Cancelled(Exception):
    """The request was cancelled (cancel file, or its client is gone)."""


#: Fields of a request file besides the edit request's own (``export.request.EditRequest``).
ENVELOPE_FIELDS: tuple[str, ...] = ("schema", "id", "kind", "created", "channel_files")
#: Channels a request may name in all (``audio`` plus ``channel_files``).
MAX_CHANNELS = 8


@dataclass
class Request:
    """A parsed, validated request (see the module docstring for the fields).

    Attributes
    ----------
    id, kind:
        The request's id (its file name) and kind.
    edit:
        What to edit and how, validated as every front end's edit is.
    created:
        The client's clock when it wrote the request (informational), seconds.
    channel_files:
        Further channels of ``audio``, one mono file each (``audio`` is then channel 0).
    owner_uid:
        Owner of the request file: only their cancel and alive files count.
    """

    id: str
    edit: EditRequest
    kind: str = "edit"
    created: float | None = None
    channel_files: tuple[str, ...] = ()
    owner_uid: int | None = None

    @property
    def audio(self) -> str:
        """The file to edit."""
        return self.edit.audio


def parse_request(d: Any, request_id: str, roots: Sequence[str | os.PathLike] | None = None) -> Request:
    """Validate a request object; ``ValueError`` naming the first bad field.

    ``audio`` and a ``model`` or ``checkpoint`` path must be files inside
    ``roots`` (default: ``bridge.paths.default_roots()``), checked as the OSC
    server checks its paths; the other fields are ``EditRequest``'s.
    """
    if not isinstance(d, dict):
        raise ValueError("request must be a JSON object")
    if d.get("schema") != REQUEST_SCHEMA:
        raise ValueError(f"schema: expected {REQUEST_SCHEMA!r}, got {d.get('schema')!r}")
    if d.get("id") != request_id:
        raise ValueError(f"id: {d.get('id')!r} does not match the file name {request_id!r}")
    kind = d.get("kind", "edit")
    if kind not in KINDS:
        raise ValueError(f"kind: unknown {kind!r} (one of {', '.join(KINDS)})")
    created = d.get("created")
    if created is not None and (isinstance(created, bool) or not isinstance(created, (int, float))):
        raise ValueError(f"created: must be a number of seconds, got {json.dumps(created)[:40]}")
    check = request_path_check(resolve_roots(default_roots() if roots is None else roots))
    channel_files = d.get("channel_files", [])
    if not isinstance(channel_files, list) or not all(isinstance(p, str) for p in channel_files):
        raise ValueError("channel_files: must be a list of file paths")
    if len(channel_files) >= MAX_CHANNELS:
        raise ValueError(f"channel_files: at most {MAX_CHANNELS - 1} further channels")
    try:
        channel_files = [check("channel_files", p) for p in channel_files]
    except BadRequest as err:
        raise ValueError(str(err)) from None
    given = {k: v for k, v in d.items() if k not in ENVELOPE_FIELDS}
    if given.get("model") == "":  # the scripts' "default model"
        given["model"] = None
    try:
        edit = EditRequest.from_fields(given, resolve_path=check)
    except BadRequest as err:
        raise ValueError(str(err)) from None
    return Request(
        id=request_id, edit=edit, kind=kind, created=None if created is None else float(created),
        channel_files=tuple(channel_files),
    )


class SpoolJob:
    """A claimed request, handed to a handler.

    ``progress(fraction, stage)`` publishes progress; ``check_cancel()``
    raises ``Cancelled`` when the client cancelled or is gone; ``out(ext)``
    is the outbox path for one of the result's files.
    """

    def __init__(self, spool: Spool, request: Request) -> None:
        self.spool = spool
        self.request = request

    @property
    def id(self) -> str:
        return self.request.id

    def out(self, suffix: str) -> Path:
        """``outbox/ID<suffix>``, e.g. ``out(".plan.json")``."""
        return self.spool.outbox / f"{self.id}{suffix}"

    def create(self, suffix: str) -> Path:
        """``out(suffix)`` created empty and exclusively, recorded as the spool's; BadInput if it exists."""
        path = self.out(suffix)
        try:
            reserve_path(path)
        except BadInput:
            raise BadInput(path, f"exists from an earlier request with id {self.id}; a request needs a new id") from None
        self.spool.ledger.add(f"outbox/{path.name}")
        return path

    def scratch(self, suffix: str) -> Path:
        """``work/ID<suffix>``: a scratch file removed when the job ends."""
        path = self.spool.work / f"{self.id}{suffix}"
        self.spool.ledger.add(f"work/{path.name}")
        return path

    def cancelled(self) -> bool:
        return self.spool.is_cancelled(self.id, self.request.owner_uid)

    def check_cancel(self) -> None:
        if self.cancelled():
            raise Cancelled(self.id)

    def progress(self, fraction: float, stage: str) -> None:
        self.spool.write_progress(self.id, fraction, stage)


Handler = Callable[[SpoolJob], dict[str, Any]]
"""Runs a job; returns the result's fields (``plan`` required, ``plan_path``,
``tsv_path``, ``audio_path``, ``source_offset_s``, ``message`` optional).
Raises ``BadInput`` for bad input (answered as an error), ``Cancelled``."""


class Spool:
    """One spool directory: claiming, answering, heartbeat and clean-up."""

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        max_age_s: float = MAX_AGE_S,
        client_timeout_s: float = CLIENT_TIMEOUT_S,
        clock: Callable[[], float] = time.time,
        allowed_roots: Sequence[str | os.PathLike] | None = None,
    ) -> None:
        self.root = Path(root)
        self.inbox = self.root / "inbox"
        self.work = self.root / "work"
        self.outbox = self.root / "outbox"
        self.cancel_dir = self.root / "cancel"
        self.alive = self.root / "alive"
        self.heartbeat = self.root / "heartbeat"
        self.max_age_s = max_age_s
        self.client_timeout_s = client_timeout_s
        self.clock = clock
        self.roots = resolve_roots(default_roots() if allowed_roots is None else allowed_roots)
        self.busy: str | None = None
        self.last_beat = self.last_sweep = -math.inf  # run_spool's timers (time.monotonic)
        self._bad_names: set[str] = set()
        self._folders: dict[Path, tuple[int, int]] = {}
        for d in (self.inbox, self.work, self.outbox, self.cancel_dir, self.alive):
            if os.path.islink(d):
                raise BadInput(d, "is a symbolic link; a spool's folders must be real folders (the spool deletes files in them)")
            d.mkdir(parents=True, exist_ok=True)
            st = os.lstat(d)
            if not stat.S_ISDIR(st.st_mode):
                raise BadInput(d, "is not a folder")
            self._folders[d] = (st.st_dev, st.st_ino)
        self.ledger = Ledger(self.root / "ledger.json")

    def _folder_ok(self, d: Path) -> bool:
        """``d`` is still the real folder found at start-up (not swapped for a link since)."""
        try:
            st = os.lstat(d)
        except FileNotFoundError:
            return False
        ok = stat.S_ISDIR(st.st_mode) and (st.st_dev, st.st_ino) == self._folders[d]
        if not ok:
            log.error("spool: %s is no longer the folder it was at start-up (a link?): not touching it", d)
        return ok

    def _remove_own(self, folder: Path, name: str) -> bool:
        """Remove ``folder/name`` if the ledger says the spool wrote it; forget it either way."""
        key = f"{folder.name}/{name}"
        if key not in self.ledger or not self._folder_ok(folder):
            return False
        removed = remove_entry(folder / name)
        self.ledger.discard(key)
        return removed

    # ---------------------------------------------------------------- liveness

    def write_heartbeat(self) -> None:
        write_json_atomic(
            self.heartbeat,
            {"schema": HEARTBEAT_SCHEMA, "pid": os.getpid(), "time": self.clock(), "busy": self.busy},
            indent=None,
        )

    def is_cancelled(self, request_id: str, owner_uid: int | None = None) -> bool:
        """A cancel file exists, or the client's alive file went stale.

        With ``owner_uid``, only files owned by that user count (another user
        cannot cancel someone's request).
        """

        def own(path: Path) -> os.stat_result | None:
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                return None
            if owner_uid is not None and st.st_uid != owner_uid:
                log.warning("spool: ignoring %s: not owned by the request's owner (uid %d)", path, owner_uid)
                return None
            return st

        if own(self.cancel_dir / request_id) is not None:
            return True
        alive = own(self.alive / request_id)
        return alive is not None and self.clock() - alive.st_mtime > self.client_timeout_s

    def write_result_file(self, name: str, doc: dict[str, Any]) -> Path | None:
        """Write ``outbox/name`` atomically, if it is new or the spool's own; None (logged) otherwise."""
        path = self.outbox / name
        if os.path.lexists(path) and f"outbox/{name}" not in self.ledger:
            log.error("spool: %s exists and was not written by this spool: not replacing it", path)
            return None
        self.ledger.add(f"outbox/{name}")
        write_json_atomic(path, doc, indent=None)
        return path

    def write_progress(self, request_id: str, fraction: float, stage: str) -> None:
        f = min(max(float(fraction), 0.0), 1.0)
        self.write_result_file(
            f"{request_id}.progress.json",
            {"schema": PROGRESS_SCHEMA, "id": request_id, "fraction": f, "stage": stage, "time": self.clock()},
        )

    # ---------------------------------------------------------------- requests

    def requeue_orphans(self) -> int:
        """Move requests left in ``work/`` by a dead server back to ``inbox/``; remove its scratch files."""
        if not (self._folder_ok(self.work) and self._folder_ok(self.inbox)):
            return 0
        n = 0
        for name in sorted(os.listdir(self.work)):
            if name.startswith(".") or not name.endswith(".json") or f"work/{name}" in self.ledger:
                continue
            try:
                os.rename(self.work / name, self.inbox / name)  # moves the entry, never a link's target
                n += 1
            except OSError:
                continue
        for name in self.ledger.names("work"):  # scratch files of the dead job
            self._remove_own(self.work, name)
        if n:
            log.info("spool: %d unfinished request(s) back in the inbox", n)
        return n

    def claim(self) -> SpoolJob | None:
        """Claim the oldest waiting request (rename into ``work/``).

        A request that cannot be read or parsed, or whose handling raises
        anything, is answered with an error result at once and the next one
        is tried. Returns None when the inbox is empty.
        """
        if not (self._folder_ok(self.inbox) and self._folder_ok(self.work)):
            return None
        candidates = []
        for entry in os.scandir(self.inbox):
            if entry.name.startswith(".") or not entry.name.endswith(".json"):
                continue
            try:
                candidates.append((entry.stat(follow_symlinks=False).st_mtime, entry.name))
            except FileNotFoundError:
                continue
        for _, name in sorted(candidates):
            request_id = name[: -len(".json")]
            try:
                job = self._claim_one(name, request_id)
            except Exception as err:
                log.exception("spool: request %s failed while being claimed", name)
                self._answer_safely(request_id, "error", f"{self.inbox / name}: bad request: {type(err).__name__}: {err}")
                continue
            if job is not None:
                return job
        return None

    def _claim_one(self, name: str, request_id: str) -> SpoolJob | None:
        p, dest = self.inbox / name, self.work / name
        if not _ID.match(request_id):
            if name not in self._bad_names:  # once: it stays until the sweep drops it as stale
                self._bad_names.add(name)
                log.warning("spool: ignoring request with a bad name %r", name)
            return None
        try:
            os.rename(p, dest)  # atomic: another server may take it first; moves a link, not its target
        except FileNotFoundError:
            return None
        try:
            raw, owner = read_request_file(dest)
            try:
                doc = json.loads(raw.decode("utf-8"))
            except RecursionError:
                raise ValueError("not JSON: nested too deeply") from None
            except json.JSONDecodeError as err:
                raise ValueError(f"not JSON: {err}") from None
            except UnicodeDecodeError:
                raise ValueError("not JSON: not UTF-8 text") from None
            request = parse_request(doc, request_id, self.roots)
        except ValueError as err:  # PathRefused included
            self.answer(request_id, "error", f"{p}: bad request: {err}")
            return None
        request.owner_uid = owner
        if self.is_cancelled(request_id, owner):
            self.answer(request_id, "cancelled", "cancelled before it started")
            return None
        log.info("spool: claimed %s (%s %s)", request_id, request.kind, request.audio)
        return SpoolJob(self, request)

    def answer(self, request_id: str, status: str, message: str, **fields: Any) -> Path | None:
        """Write ``outbox/ID.json`` and remove the request's work and progress files.

        Returns the result's path, or None when ``outbox/ID.json`` exists and
        is not the spool's (it is never replaced; the refusal is logged).
        """
        result = {"schema": RESULT_SCHEMA, "id": request_id, "status": status, "message": " ".join(message.split())}
        result.update(fields)
        path = self.write_result_file(f"{request_id}.json", result)
        if self._folder_ok(self.work):
            remove_entry(self.work / f"{request_id}.json")  # the request itself, handed over by its client
        self._remove_own(self.outbox, f"{request_id}.progress.json")
        for name in self.ledger.names("work", f"{request_id}."):
            self._remove_own(self.work, name)
        if status != "done":  # reserved outputs the failed job never filled
            for name in self.ledger.names("outbox", f"{request_id}."):
                if name != f"{request_id}.json" and size_bytes(self.outbox / name) == 0:
                    self._remove_own(self.outbox, name)
        log.info("spool: %s %s: %s", request_id, status, result["message"])
        return path

    def _answer_safely(self, request_id: str, status: str, message: str) -> None:
        try:
            self.answer(request_id, status, message)
        except Exception:
            log.exception("spool: could not answer %s", request_id)

    def discard(self, request_id: str) -> None:
        """Remove every file of a cancelled request (nobody will read its result):
        the spool's own files, the request and its cancel and alive markers."""
        for folder in (self.work, self.outbox):
            for name in self.ledger.names(folder.name, request_id):
                if name == request_id or name.startswith(request_id + "."):
                    self._remove_own(folder, name)
        for folder, name in (
            (self.inbox, f"{request_id}.json"), (self.work, f"{request_id}.json"),
            (self.cancel_dir, request_id), (self.alive, request_id),
        ):
            if self._folder_ok(folder):
                remove_entry(folder / name)

    def run(self, job: SpoolJob, handler: Handler) -> Path | None:
        """Run ``handler`` on ``job`` and answer; returns the result path (None when cancelled)."""
        self.busy = job.id
        try:
            job.progress(0.0, "starting")
            fields = handler(job)
            job.check_cancel()
        except Cancelled:
            log.info("spool: %s cancelled", job.id)
            self.discard(job.id)
            return None
        except BadInput as err:
            return self.answer(job.id, "error", str(err))
        except Exception as err:  # the client gets a line, the log the trace
            log.exception("spool: %s failed", job.id)
            return self.answer(job.id, "error", f"unexpected failure: {type(err).__name__}: {err}")
        finally:
            self.busy = None
        plan = fields.get("plan")
        if not isinstance(plan, dict):
            return self.answer(job.id, "error", "the handler returned no plan")
        fields.setdefault("source_offset_s", 0.0)
        fields.setdefault("n_segments", len(plan.get("segments", [])))
        fields.setdefault("n_markers", len(plan.get("markers", [])))
        message = fields.pop("message", f"{fields['n_segments']} segments, {fields['n_markers']} markers")
        try:
            return self.answer(job.id, "done", message, **fields)
        except Exception as err:
            log.exception("spool: %s: could not write its result", job.id)
            return self.answer(job.id, "error", f"unexpected failure writing the result: {type(err).__name__}: {err}")

    # ---------------------------------------------------------------- clean-up

    def sweep(self) -> list[str]:
        """Remove stale requests and leftovers; returns what was removed (names).

        In ``outbox/`` only the spool's own files (the ledger's) are removed;
        in ``inbox/``, ``cancel/`` and ``alive/`` the clients' protocol files
        (directory entries: a link is removed, never what it points to).
        """
        now = self.clock()
        removed: list[str] = []
        if not all(self._folder_ok(d) for d in (self.inbox, self.outbox, self.cancel_dir, self.alive, self.work)):
            return removed
        for name in os.listdir(self.inbox):
            if name.startswith(".") or not name.endswith(".json"):
                continue
            request_id = name[: -len(".json")]
            p = self.inbox / name
            age = age_s(p, now)
            if age is None:
                continue
            if age > self.max_age_s:
                log.info("spool: dropping %s: waited %.0f s", name, age)
                if remove_entry(p):
                    removed.append(name)
            elif self.is_cancelled(request_id, entry_owner(p)):
                log.info("spool: dropping %s: cancelled or its client is gone", name)
                self.discard(request_id)
                removed.append(name)
        for name in os.listdir(self.outbox):  # temp files of the spool's own writes, left by a crash
            own = _PARTIAL.match(name)
            if own and f"outbox/{own.group(1)}" in self.ledger:
                age = age_s(self.outbox / name, now)
                if age is not None and age > self.max_age_s and remove_entry(self.outbox / name):
                    removed.append(name)
        for name in self.ledger.names("outbox"):
            if self.busy and name.startswith(self.busy + "."):
                continue
            age = age_s(self.outbox / name, now)
            if age is None:
                self.ledger.discard(f"outbox/{name}")
            elif age > self.max_age_s and self._remove_own(self.outbox, name):
                removed.append(name)
        for folder in (self.cancel_dir, self.alive, self.inbox):
            for name in os.listdir(folder):
                if folder is self.inbox and not name.startswith("."):
                    continue  # requests handled above; only stray temp files here
                if self.busy and (name == self.busy or name.startswith(self.busy + ".")):
                    continue
                age = age_s(folder / name, now)
                if age is not None and age > self.max_age_s and remove_entry(folder / name):
                    removed.append(name)
        return removed


# ------------------------------------------------------------------------- loop


def run_spool(
    root: str | os.PathLike,
    handler: Handler = edit_handler,
    *,
    stop: threading.Event | None = None,
    poll_s: float = 0.1,
    spool: Spool | None = None,
    submit: Callable[[Callable[[], Any]], Any] | None = None,
) -> None:
    """Serve the spool until ``stop`` is set: heartbeat, sweep, one job at a time.

    Jobs run in a worker thread (or, with ``submit``, are handed to another
    job queue: ``submit(call)`` must run ``call()`` later, e.g. the OSC
    server's ``Server.run_on_worker``) so the heartbeat keeps beating while
    a job works; the loop itself only touches files.
    """
    sp = spool or Spool(root)
    stop = stop or threading.Event()
    try:
        sp.requeue_orphans()
    except Exception:
        log.exception("spool: requeueing unfinished requests failed; going on")
    worker: threading.Thread | threading.Event | None = None
    log.info("spool: serving %s", sp.root)
    while not stop.is_set():
        try:
            worker = _tick(sp, handler, worker, submit)
        except Exception:
            log.exception("spool: loop step failed; going on")
        stop.wait(poll_s)
    if isinstance(worker, threading.Thread):
        worker.join(timeout=5.0)
    remove_entry(sp.heartbeat)
    log.info("spool: stopped")


def _tick(
    sp: Spool, handler: Handler, worker: threading.Thread | threading.Event | None,
    submit: Callable[[Callable[[], Any]], Any] | None,
) -> threading.Thread | threading.Event | None:
    """One pass of the loop: heartbeat and sweep when due, then claim and start a job when idle."""
    now = time.monotonic()
    if now - sp.last_beat >= HEARTBEAT_INTERVAL_S:
        sp.last_beat = now
        sp.write_heartbeat()
    if now - sp.last_sweep >= HEARTBEAT_INTERVAL_S:
        sp.last_sweep = now
        sp.sweep()
    if isinstance(worker, threading.Thread) and not worker.is_alive():
        worker = None
    elif isinstance(worker, threading.Event) and worker.is_set():
        worker = None
    if worker is not None:
        return worker
    job = sp.claim()
    if job is None:
        return None
    sp.busy = job.id
    sp.write_heartbeat()
    if submit is None:
        thread = threading.Thread(target=sp.run, args=(job, handler), name=f"spool-{job.id}", daemon=True)
        thread.start()
        return thread
    done = threading.Event()

    def call() -> None:
        try:
            sp.run(job, handler)
        finally:
            done.set()

    submit(call)
    return done


def start_spool_thread(
    root: str | os.PathLike,
    handler: Handler = edit_handler,
    *,
    stop: threading.Event,
    submit: Callable[[Callable[[], Any]], Any] | None = None,
    allowed_roots: Sequence[str | os.PathLike] | None = None,
) -> threading.Thread:
    """``run_spool`` in a daemon thread (``editorbot serve --spool``: ``submit`` is the OSC server's
    queue, ``allowed_roots`` its ``--allow`` folders)."""
    spool = Spool(root, allowed_roots=allowed_roots)  # folder problems surface here, in the caller's thread
    thread = threading.Thread(
        target=run_spool, args=(root, handler), kwargs={"stop": stop, "spool": spool, "submit": submit},
        name="spool", daemon=True,
    )
    thread.start()
    return thread


def main(argv: list[str] | None = None) -> int:
    """``python -m editorbot.bridge.spool --spool DIR``: serve a spool folder until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m editorbot.bridge.spool", description="serve a spool folder for the Reaper scripts")
    parser.add_argument("--spool", required=True, metavar="DIR", help="spool folder (created if missing)")
    parser.add_argument("--max-age", type=float, default=MAX_AGE_S, metavar="S", help="drop requests and files older than S seconds")
    parser.add_argument("--allow", action="append", metavar="DIR", help="folder request paths may name (repeatable; default: home and the working directory)")
    parser.add_argument("--verbose", "-v", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        spool = Spool(args.spool, max_age_s=args.max_age, allowed_roots=args.allow)
    except BadInput as err:
        print(f"editorbot: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"editorbot: {args.spool}: cannot use as a spool folder: {err.strerror or err}", file=sys.stderr)
        return 2
    try:
        run_spool(spool.root, edit_handler, spool=spool)
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
