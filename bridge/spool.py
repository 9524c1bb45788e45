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
``python -m bridge.spool --spool SPOOL``).

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

``run_spool(dir, handler)`` is a complete server loop (one job at a time, in
a worker thread so the heartbeat keeps beating); ``python -m bridge.spool
--spool DIR`` runs it with ``edit_handler``, the edit pipeline
(``export.edit``) or the pure DP retimer.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.atomic import write_json_atomic
from engine.errors import BadInput

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
#: A request covering all but this much of its file is edited whole (seconds).
WHOLE_FILE_SLACK_S = 1e-3

_ID = re.compile(r"^[A-Za-z0-9_\-][A-Za-z0-9_.\-]{0,63}$")


class Cancelled(Exception):
    """The request was cancelled (cancel file, or its client is gone)."""


@dataclass
class Request:
    """A parsed, validated request (see the module docstring for the fields)."""

    id: str
    kind: str = "edit"
    audio: str = ""
    start_s: float | None = None
    end_s: float | None = None
    target_duration_s: float | None = None
    keep: list[tuple[float, float]] = field(default_factory=list)
    model: str = ""
    created: float | None = None


def _number(d: dict[str, Any], key: str, *, required: bool = False, positive: bool = False) -> float | None:
    if key not in d or d[key] is None:
        if required:
            raise ValueError(f"{key}: missing")
        return None
    v = d[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
        raise ValueError(f"{key}: must be a finite number, got {json.dumps(v)[:40]}")
    x = float(v)
    if x < 0 or (positive and x == 0):
        raise ValueError(f"{key}: must be {'> 0' if positive else '>= 0'}, got {x:g}")
    return x


def parse_request(d: Any, request_id: str) -> Request:
    """Validate a request object; ``ValueError`` naming the first bad field."""
    if not isinstance(d, dict):
        raise ValueError("request must be a JSON object")
    if d.get("schema") != REQUEST_SCHEMA:
        raise ValueError(f"schema: expected {REQUEST_SCHEMA!r}, got {d.get('schema')!r}")
    if d.get("id") != request_id:
        raise ValueError(f"id: {d.get('id')!r} does not match the file name {request_id!r}")
    kind = d.get("kind", "edit")
    if kind not in KINDS:
        raise ValueError(f"kind: unknown {kind!r} (one of {', '.join(KINDS)})")
    audio = d.get("audio")
    if not isinstance(audio, str) or not audio:
        raise ValueError("audio: must be a non-empty path")
    model = d.get("model", "") or ""
    if not isinstance(model, str):
        raise ValueError("model: must be a string")
    req = Request(id=request_id, kind=kind, audio=audio, model=model)
    req.start_s = _number(d, "start_s")
    req.end_s = _number(d, "end_s")
    if req.start_s is not None and req.end_s is not None and req.end_s <= req.start_s:
        raise ValueError(f"end_s: must be > start_s ({req.end_s:g} <= {req.start_s:g})")
    req.target_duration_s = _number(d, "target_duration_s", positive=True)
    req.created = _number(d, "created")
    keep = d.get("keep", []) or []
    if not isinstance(keep, list):
        raise ValueError("keep: must be a list of [start_s, end_s] pairs")
    for i, pair in enumerate(keep):
        if not (isinstance(pair, list) and len(pair) == 2):
            raise ValueError(f"keep[{i}]: must be [start_s, end_s]")
        a = _number({"v": pair[0]}, "v", required=True)
        b = _number({"v": pair[1]}, "v", required=True)
        assert a is not None and b is not None
        if b <= a:
            raise ValueError(f"keep[{i}]: end must be > start ({b:g} <= {a:g})")
        req.keep.append((a, b))
    return req


def _remove(path: Path) -> bool:
    try:
        path.unlink()
        return True
    except FileNotFoundError:
        return False


def _age_s(path: Path, now: float) -> float | None:
    try:
        return now - path.stat().st_mtime
    except FileNotFoundError:
        return None


class Job:
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

    def scratch(self, suffix: str) -> Path:
        """``work/ID<suffix>``: a scratch file removed when the job ends."""
        return self.spool.work / f"{self.id}{suffix}"

    def cancelled(self) -> bool:
        return self.spool.is_cancelled(self.id)

    def check_cancel(self) -> None:
        if self.cancelled():
            raise Cancelled(self.id)

    def progress(self, fraction: float, stage: str) -> None:
        self.spool.write_progress(self.id, fraction, stage)


Handler = Callable[[Job], dict[str, Any]]
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
        self.busy: str | None = None
        for d in (self.inbox, self.work, self.outbox, self.cancel_dir, self.alive):
            d.mkdir(parents=True, exist_ok=True)

    # ---------------------------------------------------------------- liveness

    def write_heartbeat(self) -> None:
        write_json_atomic(
            self.heartbeat,
            {"schema": HEARTBEAT_SCHEMA, "pid": os.getpid(), "time": self.clock(), "busy": self.busy},
            indent=None,
        )

    def is_cancelled(self, request_id: str) -> bool:
        """A cancel file exists, or the client's alive file went stale."""
        if (self.cancel_dir / request_id).exists():
            return True
        age = _age_s(self.alive / request_id, self.clock())
        return age is not None and age > self.client_timeout_s

    def write_progress(self, request_id: str, fraction: float, stage: str) -> None:
        f = min(max(float(fraction), 0.0), 1.0)
        write_json_atomic(
            self.outbox / f"{request_id}.progress.json",
            {"schema": PROGRESS_SCHEMA, "id": request_id, "fraction": f, "stage": stage, "time": self.clock()},
            indent=None,
        )

    # ---------------------------------------------------------------- requests

    def requeue_orphans(self) -> int:
        """Move requests left in ``work/`` by a dead server back to ``inbox/``."""
        n = 0
        for p in sorted(self.work.glob("*.json")):
            if p.name.startswith("."):
                continue
            try:
                os.rename(p, self.inbox / p.name)
                n += 1
            except FileNotFoundError:
                continue
        for p in self.work.iterdir():  # scratch files of the dead job
            if not p.name.endswith(".json"):
                _remove(p)
        if n:
            log.info("spool: %d unfinished request(s) back in the inbox", n)
        return n

    def claim(self) -> Job | None:
        """Claim the oldest waiting request (rename into ``work/``).

        A request that cannot be parsed is answered with an error result at
        once and the next one is tried. Returns None when the inbox is empty.
        """
        candidates = []
        for p in self.inbox.glob("*.json"):
            if p.name.startswith("."):
                continue
            try:
                candidates.append((p.stat().st_mtime, p.name, p))
            except FileNotFoundError:
                continue
        for _, _, p in sorted(candidates):
            request_id = p.name[: -len(".json")]
            dest = self.work / p.name
            try:
                os.rename(p, dest)  # atomic: another server may take it first
            except FileNotFoundError:
                continue
            if not _ID.match(request_id):
                log.warning("spool: ignoring request with a bad name %r", p.name)
                _remove(dest)
                continue
            try:
                raw = dest.read_text(encoding="utf-8")
                request = parse_request(json.loads(raw), request_id)
            except (ValueError, UnicodeDecodeError) as err:
                problem = f"not JSON: {err}" if isinstance(err, json.JSONDecodeError) else str(err)
                self.answer(request_id, "error", f"{p}: bad request: {problem}")
                continue
            if self.is_cancelled(request_id):
                self.answer(request_id, "cancelled", "cancelled before it started")
                continue
            log.info("spool: claimed %s (%s %s)", request_id, request.kind, request.audio)
            return Job(self, request)
        return None

    def answer(self, request_id: str, status: str, message: str, **fields: Any) -> Path:
        """Write ``outbox/ID.json`` and remove the request's work and progress files."""
        result = {"schema": RESULT_SCHEMA, "id": request_id, "status": status, "message": " ".join(message.split())}
        result.update(fields)
        path = self.outbox / f"{request_id}.json"
        write_json_atomic(path, result, indent=None)
        _remove(self.work / f"{request_id}.json")
        _remove(self.outbox / f"{request_id}.progress.json")
        for p in self.work.glob(f"{request_id}.*"):
            _remove(p)
        log.info("spool: %s %s: %s", request_id, status, result["message"])
        return path

    def discard(self, request_id: str) -> None:
        """Remove every file of a cancelled request (nobody will read its result)."""
        for folder in (self.inbox, self.work, self.outbox, self.cancel_dir, self.alive):
            for p in folder.glob(f"{request_id}*"):
                if p.name == request_id or p.name.startswith(request_id + "."):
                    _remove(p)

    def run(self, job: Job, handler: Handler) -> Path | None:
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
        return self.answer(job.id, "done", message, **fields)

    # ---------------------------------------------------------------- clean-up

    def sweep(self) -> list[str]:
        """Remove stale requests and leftovers; returns what was removed (names)."""
        now = self.clock()
        removed: list[str] = []
        for p in self.inbox.glob("*.json"):
            if p.name.startswith("."):
                continue
            request_id = p.name[: -len(".json")]
            age = _age_s(p, now)
            if age is None:
                continue
            if age > self.max_age_s:
                log.info("spool: dropping %s: waited %.0f s", p.name, age)
                if _remove(p):
                    removed.append(p.name)
            elif self.is_cancelled(request_id):
                log.info("spool: dropping %s: cancelled or its client is gone", p.name)
                self.discard(request_id)
                removed.append(p.name)
        for folder in (self.outbox, self.cancel_dir, self.alive, self.inbox):
            for p in folder.iterdir():
                if folder is self.inbox and not p.name.startswith("."):
                    continue  # requests handled above; only stray temp files here
                age = _age_s(p, now)
                if age is not None and age > self.max_age_s and p.is_file():
                    if self.busy and p.name.startswith(self.busy):
                        continue
                    if _remove(p):
                        removed.append(p.name)
        return removed


# ------------------------------------------------------------------------- handler


def _excerpt(job: Job) -> tuple[str, float]:
    """The audio to edit and its offset in the request's file: the file itself,
    or ``work/ID.excerpt.wav`` holding ``start_s..end_s`` of it."""
    from engine.audio import load_audio, write_audio

    req = job.request
    if req.start_s is None and req.end_s is None:
        return req.audio, 0.0
    audio = load_audio(req.audio)
    start = req.start_s or 0.0
    end = audio.duration_s if req.end_s is None else min(req.end_s, audio.duration_s)
    if start <= WHOLE_FILE_SLACK_S and end >= audio.duration_s - WHOLE_FILE_SLACK_S:
        return req.audio, 0.0
    if end - start < 1.0:
        raise BadInput(req.audio, f"the part to edit ({start:g}-{end:g} s) is shorter than a second")
    i0, i1 = int(round(start * audio.sample_rate)), int(round(end * audio.sample_rate))
    path = job.scratch(".excerpt.wav")
    write_audio(path, audio.samples[:, i0:i1], audio.sample_rate, protect=(req.audio,))
    return str(path), i0 / audio.sample_rate


def edit_handler(job: Job) -> dict[str, Any]:
    """Edit the request's audio: the edit pipeline, or the pure DP retimer (``model: "dp"``).

    Writes ``outbox/ID.plan.json`` and ``outbox/ID.tsv`` (and the rendered
    ``outbox/ID.wav`` on the pipeline path) and returns the result fields.
    """
    from engine.exporters.tsv import write_tsv
    from engine.plan import plan_to_dict, save_plan

    req = job.request
    if not os.path.isfile(req.audio):
        raise BadInput(req.audio, "no such file")
    job.progress(0.05, "reading audio")
    audio_path, offset_s = _excerpt(job)
    job.check_cancel()
    plan_path, tsv_path = job.out(".plan.json"), job.out(".tsv")
    fields: dict[str, Any] = {"source_offset_s": offset_s}
    if req.model == "dp":
        from engine.analysis import analyze
        from engine.plan import plan_from_actions
        from export.retime import retime

        if req.target_duration_s is None:
            raise BadInput("model", "the pure DP retimer (model \"dp\") needs a target duration")
        job.progress(0.15, "analysing")
        analysis = analyze(audio_path)
        job.check_cancel()
        job.progress(0.6, "re-timing")
        result = retime(analysis, req.target_duration_s, keep=req.keep)
        plan = plan_from_actions(analysis, result.walk)
        job.check_cancel()
        job.progress(0.9, "writing")
        save_plan(plan, plan_path)
        write_tsv(plan, tsv_path)
    else:
        from export.edit import edit_file, load_model

        job.progress(0.1, "loading model")
        policy = load_model(req.model or None)
        job.check_cancel()
        job.progress(0.2, "editing")
        report = edit_file(
            audio_path,
            job.out(".wav"),
            policy,
            plan_path=str(plan_path),
            exports=["tsv"],
            target_duration_s=req.target_duration_s,
            keep=req.keep,
            quiet=True,  # the job's progress goes to the spool
        )
        plan = report.plan
        tsv_path = Path(report.written["tsv"])
        fields["audio_path"] = report.written["audio"]
    fields.update(plan=plan_to_dict(plan), plan_path=str(plan_path), tsv_path=str(tsv_path))
    fields["message"] = (
        f"{len(plan.segments)} segments, {plan.duration_s:.2f} s"
        f" from {float(plan.source.duration_s):.2f} s"
    )
    return fields


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
    sp.requeue_orphans()
    worker: threading.Thread | threading.Event | None = None
    last_beat = last_sweep = -math.inf
    log.info("spool: serving %s", sp.root)
    while not stop.is_set():
        now = time.monotonic()
        if now - last_beat >= HEARTBEAT_INTERVAL_S:
            sp.write_heartbeat()
            last_beat = now
        if now - last_sweep >= HEARTBEAT_INTERVAL_S:
            sp.sweep()
            last_sweep = now
        if isinstance(worker, threading.Thread) and not worker.is_alive():
            worker = None
        elif isinstance(worker, threading.Event) and worker.is_set():
            worker = None
        if worker is None:
            job = sp.claim()
            if job is not None:
                sp.busy = job.id
                sp.write_heartbeat()
                if submit is None:
                    worker = threading.Thread(target=sp.run, args=(job, handler), name=f"spool-{job.id}", daemon=True)
                    worker.start()
                else:
                    done = threading.Event()

                    def call(job: Job = job, done: threading.Event = done) -> None:
                        try:
                            sp.run(job, handler)
                        finally:
                            done.set()

                    worker = done
                    submit(call)
        stop.wait(poll_s)
    if isinstance(worker, threading.Thread):
        worker.join(timeout=5.0)
    _remove(sp.heartbeat)
    log.info("spool: stopped")


def start_spool_thread(
    root: str | os.PathLike,
    handler: Handler = edit_handler,
    *,
    stop: threading.Event,
    submit: Callable[[Callable[[], Any]], Any] | None = None,
) -> threading.Thread:
    """``run_spool`` in a daemon thread (``editorbot serve --spool``: ``submit`` is the OSC server's queue)."""
    spool = Spool(root)  # folder problems surface here, in the caller's thread
    thread = threading.Thread(
        target=run_spool, args=(root, handler), kwargs={"stop": stop, "spool": spool, "submit": submit},
        name="spool", daemon=True,
    )
    thread.start()
    return thread


def main(argv: list[str] | None = None) -> int:
    """``python -m bridge.spool --spool DIR``: serve a spool folder until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m bridge.spool", description="serve a spool folder for the Reaper scripts")
    parser.add_argument("--spool", required=True, metavar="DIR", help="spool folder (created if missing)")
    parser.add_argument("--max-age", type=float, default=MAX_AGE_S, metavar="S", help="drop requests and files older than S seconds")
    parser.add_argument("--verbose", "-v", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        spool = Spool(args.spool, max_age_s=args.max_age)
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
