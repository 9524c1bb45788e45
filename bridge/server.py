"""``editorbot serve``: the OSC server a DAW (or ``editorbot send``) talks to (DESIGN section 8).

One UDP socket (python-osc's ``BlockingOSCUDPServer`` run in a thread, with a
large receive buffer so bursts are queued by the kernel, not dropped), one
worker thread that runs jobs one at a time from a bounded queue, and one
ticker thread that repeats the running job's progress at least once a second.

Requests (addresses under ``/editorbot/``; no OSC address patterns):

=================================  ===========================================
``ping [ARGS...]``                 ``pong`` (up to 8 short int/float/str
                                   arguments echoed, to match round trips)
``analyze PATH``                   ``queued``, ``progress``..., ``done JSON``
``edit PATH [OPTIONS_JSON]``       ``queued``, ``progress``..., ``marker``...,
                                   ``done PLAN AUDIO``
``render PLAN_PATH [OPTIONS_JSON]``  as ``edit``, for an existing plan
``cancel [JOB_ID]``                ``cancelling JOB_ID``; the job then ends
                                   with ``error "cancelled" JOB_ID``
``status``                         ``status JSON`` (queue, running job, counters)
``stems PATH [OPTIONS_JSON]``      ``queued``, ``progress``..., ``done FOLDER MIX``
                                   (options: chain, separator, name, format)
=================================  ===========================================

Replies (to the sender's address, or its host and ``reply_port`` when set):
``queued JOB_ID POSITION``, ``progress FRACTION STAGE JOB_ID``,
``marker TIME_S NAME [END_S]``, ``done PATH [PATH] JOB_ID``,
``error MESSAGE [JOB_ID]``. Job replies carry the job id last so that the
first arguments are what DESIGN section 8 names.

Cancel stops a running job at its next progress point (between stages: a
stage already running, e.g. the analysis, finishes first); a queued job is
dropped at once. Without an id, cancel means the running job.

Paths must be absolute and resolve (symlinks followed) inside an allowed root
(``--allow``; default: the user's home and the server's working directory;
``bridge.paths``), and the output folder is the server's own. Bad input of
any kind (not OSC, unknown address, wrong argument count or types, oversized
strings, paths outside the roots, files that are not audio) gets
``/editorbot/error`` or is dropped with a log line; it never stops the server.

Security: the server listens on loopback only unless ``allow_remote`` is set
(``--allow-remote``), as OSC has no authentication. Checkpoints load
weights-only (no code runs from a file), external plugins only from the
plugin folders (``plugin_dirs``), outputs are created exclusively under job
ids that go on from the last run's (``.editorbot-jobs.json`` in the output
folder), and a job can be cancelled only from the reply address that queued
it (docs/daws.md, Security).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import queue
import socket
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_server import BlockingOSCUDPServer

from editorbot.bridge.dialects import Dialect, JobResult, Outgoing, make_dialect
from editorbot.bridge.osc_client import DEFAULT_PORT, encode, is_loopback
from editorbot.bridge.osc_requests import (
    MAX_BUNDLE_MESSAGES,
    PREFIX,
    RequestError,
    check_bundle_size,
    check_count,
    parse_datagram,
    parse_options,
    route_name,
)
from editorbot.bridge.paths import PathRefused, default_roots, request_path_check, resolve_roots
from editorbot.bridge.paths import allowed_path as check_path
from editorbot.engine.atomic import reserve_path, write_json_atomic
from editorbot.engine.errors import BadInput, BadRequest
from editorbot.engine.formats import JOB_AUDIO_FORMATS, SEPARATOR_NAMES
from editorbot.export.request import EditRequest, parse_name, safe_stem

log = logging.getLogger(__name__)

#: Largest datagram read (bytes): UDP's maximum, so oversized input is seen whole and refused.
MAX_DATAGRAM = 65535
#: Receive buffer asked of the kernel (bytes); a 1,000-message burst needs far more than the default.
RECV_BUFFER_BYTES = 8 << 20
#: Jobs waiting behind the running one.
MAX_QUEUED = 16
#: Error message length cap (characters).
MAX_ERROR_CHARS = 300
#: Seconds between repeated progress replies of a running job.
PROGRESS_INTERVAL_S = 0.5
#: Edit options accepted in the OPTIONS_JSON argument.
EDIT_OPTIONS = tuple(f for f in EditRequest.field_names() if f not in ("audio", "start_s", "end_s"))
RENDER_OPTIONS = ("name", "format")
STEMS_OPTIONS = ("chain", "separator", "name", "format")
#: The next job id, kept in the output folder so ids (and output names) go on across restarts.
JOB_COUNTER_FILE = ".editorbot-jobs.json"
#: Largest job id (OSC int32) before the counter wraps to 1.
MAX_JOB_ID = 2**31 - 1


class JobCancelled(Exception):
    """Raised at a progress point of a job whose cancel was requested."""


@dataclass
class ServerConfig:
    """Settings of ``editorbot serve``.

    Attributes
    ----------
    host, port:
        Where to listen (port 0: any free port; ``Server.port`` tells which).
    out_dir:
        Folder for every file a job writes.
    daw:
        Dialect name: ``generic``, ``reaper`` or ``ardour``.
    daw_host, daw_port:
        The DAW's OSC address (port default: the dialect's).
    daw_sample_rate:
        Session rate for sample positions (ardour; default: the source's).
    reaper_command_id:
        Named command id of the ReaScript that applies a plan.
    allowed_roots:
        Folders input paths must resolve into.
    reply_port:
        Send replies to the sender's host on this port instead of its source port.
    plugin_dirs:
        Folders external plugins in a chain may load from (None: the platform's
        standard VST3/AU folders, ``engine.chains.default_plugin_dirs``).
    allow_remote:
        Listen on a host other than loopback (refused otherwise: OSC has no
        authentication, so anyone who can reach the port could start jobs).
    progress_interval_s:
        Seconds between repeated progress replies.
    max_queued:
        Jobs allowed to wait.
    """

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    out_dir: Path = field(default_factory=lambda: Path.cwd() / "editorbot-out")
    daw: str = "generic"
    daw_host: str = "127.0.0.1"
    daw_port: int | None = None
    daw_sample_rate: int | None = None
    reaper_command_id: str | None = None
    allowed_roots: Sequence[Path] = field(default_factory=lambda: default_roots())
    reply_port: int | None = None
    progress_interval_s: float = PROGRESS_INTERVAL_S
    max_queued: int = MAX_QUEUED
    plugin_dirs: Sequence[Path] | None = None
    allow_remote: bool = False


@dataclass
class OscJob:
    """One queued or running job."""

    id: int
    kind: str  # analyze | edit | render
    path: str
    options: dict[str, Any]
    reply_to: tuple[str, int]
    request: EditRequest | None = None  # an edit job's request
    cancel: threading.Event = field(default_factory=threading.Event)
    reserved: list[str] = field(default_factory=list)  # output names created empty for it
    fraction: float = 0.0
    stage: str = "queued"
    started: float | None = None
    last_progress: float = 0.0


class ModelCache:
    """Policies kept loaded between jobs, keyed by file identity (path, size, mtime); LRU of ``size``."""

    def __init__(self, size: int = 2) -> None:
        self.size = size
        self._models: OrderedDict[tuple, Any] = OrderedDict()
        self.loads = 0

    def __len__(self) -> int:
        return len(self._models)

    def get(self, model: str | None, checkpoint: str | None) -> Any:
        """The policy for ``model`` (ONNX) or ``checkpoint`` (torch), or the default model."""
        from editorbot.export.edit import load_model

        target = checkpoint or model
        ident: tuple = ("default",)
        if target is not None:
            st = os.stat(target)
            ident = ("checkpoint" if checkpoint else "model", os.path.realpath(target), st.st_size, st.st_mtime_ns)
        if ident in self._models:
            self._models.move_to_end(ident)
            return self._models[ident]
        policy = load_model(model, checkpoint, device="cpu")
        self.loads += 1
        self._models[ident] = policy
        while len(self._models) > self.size:
            self._models.popitem(last=False)
        log.info("policy loaded", extra={"event": "model_loaded", "model": str(target or "default")})
        return policy


class _UDPServer(BlockingOSCUDPServer):
    """``BlockingOSCUDPServer`` that hands every datagram (OSC or not) to the editorbot ``Server``."""

    max_packet_size = MAX_DATAGRAM

    def __init__(self, address: tuple[str, int], owner: Server) -> None:
        self.owner = owner
        super().__init__(address, Dispatcher(strict_timing=False))

    def server_bind(self) -> None:
        for opt in (getattr(socket, "SO_RCVBUFFORCE", None), socket.SO_RCVBUF):
            if opt is None:
                continue
            try:
                self.socket.setsockopt(socket.SOL_SOCKET, opt, RECV_BUFFER_BYTES)
                break
            except OSError:
                continue
        super().server_bind()

    def verify_request(self, request: Any, client_address: Any) -> bool:
        return True  # non-OSC datagrams are answered too (see Server.handle_datagram)

    def finish_request(self, request: Any, client_address: Any) -> None:
        self.owner.handle_datagram(request[0], client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.exception("request from %s failed", client_address, extra={"event": "handler_crash"})


class Server:
    """The editorbot OSC server: receive thread, job worker, progress ticker."""

    def __init__(self, config: ServerConfig) -> None:
        if not is_loopback(config.host) and not config.allow_remote:
            raise ValueError(
                f"{config.host}: not a loopback address; OSC has no authentication, so editorbot listens on"
                " 127.0.0.1 unless told otherwise (--allow-remote)"
            )
        self.config = config
        self.out_dir = Path(config.out_dir).resolve()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.roots = resolve_roots(config.allowed_roots)
        self.plugin_dirs = config.plugin_dirs
        kwargs: dict[str, Any] = {"out_dir": self.out_dir, "sample_rate": config.daw_sample_rate}
        if config.reaper_command_id:
            kwargs["command_id"] = config.reaper_command_id
        self.dialect: Dialect = make_dialect(config.daw, **kwargs)
        port = config.daw_port or self.dialect.default_port
        self.daw_address = None if port is None else (config.daw_host, int(port))
        self.dialect.bind_daw(self.daw_address)  # dialects that talk with the DAW (ableton) send to it themselves
        self.models = ModelCache()
        self.counters: Counter[str] = Counter()
        self._next_id = self._read_job_counter()
        self._queue: queue.Queue[OscJob | None] = queue.Queue()
        self._queued: dict[int, OscJob] = {}
        self._lock = threading.Lock()
        self._running: OscJob | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._udp = _UDPServer((config.host, config.port), self)
        self._routes: dict[str, Callable[[tuple[str, int], list[Any]], None]] = {
            "ping": self._on_ping,
            "analyze": self._on_analyze,
            "edit": self._on_edit,
            "render": self._on_render,
            "cancel": self._on_cancel,
            "status": self._on_status,
            "stems": self._on_stems,
        }
        if not is_loopback(config.host):
            log.warning(
                "listening on %s (--allow-remote): any host that can reach this address can start jobs",
                config.host,
                extra={"event": "non_loopback_bind", "host": config.host},
            )

    # ------------------------------------------------------------------ lifecycle

    @property
    def port(self) -> int:
        """The UDP port actually bound."""
        return int(self._udp.server_address[1])

    def start(self) -> Server:
        """Start the receive, worker and ticker threads; returns self."""
        rcvbuf = self._udp.socket.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        for name, target in (("osc-recv", self._serve), ("job-worker", self._work), ("progress", self._tick)):
            t = threading.Thread(target=target, name=f"editorbot-{name}", daemon=True)
            t.start()
            self._threads.append(t)
        log.info(
            "listening on %s:%d (dialect %s, output %s)",
            self.config.host,
            self.port,
            self.dialect.name,
            self.out_dir,
            extra={"event": "listening", "port": self.port, "rcvbuf": rcvbuf, "dialect": self.dialect.name},
        )
        return self

    def _serve(self) -> None:
        self._udp.serve_forever(poll_interval=0.2)

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop receiving, cancel the running job and the queued ones, join the threads, close the socket."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._udp.shutdown()
        with self._lock:
            queued = list(self._queued.values())
            self._queued.clear()
            running = self._running
        for job in queued:
            self._reply(job.reply_to, "error", f"job {job.id} dropped: server shutting down", job.id)
        if running is not None:
            running.cancel.set()
        self._queue.put(None)
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(timeout_s)
                if t.is_alive():
                    log.warning("thread %s still running at shutdown", t.name, extra={"event": "shutdown_timeout"})
        self._udp.server_close()
        log.info("stopped", extra={"event": "stopped", **dict(self.counters)})

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ replies

    def _reply_address(self, sender: tuple[str, int]) -> tuple[str, int]:
        return (sender[0], self.config.reply_port) if self.config.reply_port else (sender[0], sender[1])

    def _send(self, address: tuple[str, int], osc_address: str, args: Sequence[Any]) -> None:
        try:
            self._udp.socket.sendto(encode(osc_address, args), address)
        except OSError as err:  # an unreachable or closed peer must not stop anything
            self.counters["send_failed"] += 1
            log.warning("could not send %s to %s: %s", osc_address, address, err, extra={"event": "send_failed"})

    def _reply(self, sender: tuple[str, int], what: str, *args: Any) -> None:
        if what == "error":
            self.counters["errors_sent"] += 1
            args = (str(args[0])[:MAX_ERROR_CHARS],) + tuple(args[1:])
        self._send(self._reply_address(sender), PREFIX + what, args)

    # ------------------------------------------------------------------ receiving

    def handle_datagram(self, data: bytes, sender: tuple[str, int]) -> None:
        """Parse one datagram and answer it; never raises."""
        self.counters["received"] += 1
        try:
            self._handle(data, sender)
        except RequestError as err:
            self.counters["refused"] += 1
            log.info("refused from %s:%d: %s", sender[0], sender[1], err, extra={"event": "refused"})
            self._reply(sender, "error", str(err))
        except Exception as err:  # nothing a client sends may stop the server
            self.counters["handler_errors"] += 1
            log.exception("request from %s failed", sender, extra={"event": "handler_error"})
            self._reply(sender, "error", f"internal error: {type(err).__name__}")

    def _handle(self, data: bytes, sender: tuple[str, int]) -> None:
        if not data:
            self.counters["dropped"] += 1
            log.info("dropped an empty datagram from %s:%d", *sender[:2], extra={"event": "dropped", "why": "empty"})
            return
        messages = parse_datagram(data)
        for msg in messages[:MAX_BUNDLE_MESSAGES]:
            self._routes[route_name(msg.address, self._routes)](sender, list(msg.params))
        check_bundle_size(len(messages))

    # ------------------------------------------------------------------ argument checks

    def allowed_path(self, name: str, value: Any, *, what: str = "path") -> str:
        """An absolute path inside an allowed root, symlinks resolved, naming an existing regular file
        (``bridge.paths.allowed_path``, the check the spool makes too)."""
        try:
            return check_path(value, self.roots, what=what, context=f"/editorbot/{name}")
        except PathRefused as err:
            raise RequestError(str(err)) from None

    def _check_options(self, name: str, o: dict[str, Any]) -> dict[str, Any]:
        """Options of render and stems jobs: output name and format, stems' chain and separator."""
        out: dict[str, Any] = {"format": o.get("format", "wav")}
        if out["format"] not in JOB_AUDIO_FORMATS:
            raise RequestError(f"/editorbot/{name}: format must be one of {', '.join(JOB_AUDIO_FORMATS)}")
        if o.get("name") is not None:
            try:
                out["name"] = parse_name(o["name"])
            except BadRequest as err:
                raise RequestError(f"/editorbot/{name}: {err}") from None
        if o.get("chain") is not None:
            out["chain"] = self.allowed_path(name, o["chain"], what="chain")
        if o.get("separator") is not None:
            if o["separator"] not in SEPARATOR_NAMES:
                raise RequestError(f"/editorbot/{name}: separator must be one of {', '.join(SEPARATOR_NAMES)}")
            out["separator"] = o["separator"]
        return out

    def edit_request(self, path: str, options: dict[str, Any]) -> EditRequest:
        """The ``EditRequest`` of ``/editorbot/edit PATH OPTIONS``: every path inside ``--allow``."""
        try:
            return EditRequest.from_fields(
                {**options, "audio": path}, resolve_path=request_path_check(self.roots, context="/editorbot/edit")
            )
        except BadRequest as err:
            raise RequestError(f"/editorbot/edit: {err}") from None

    # ------------------------------------------------------------------ handlers

    def _on_ping(self, sender: tuple[str, int], args: list[Any]) -> None:
        echo = [a for a in args[:8] if isinstance(a, (int, float, str)) and not (isinstance(a, str) and len(a) > 64)]
        self.counters["pongs"] += 1
        self._reply(sender, "pong", *echo)

    def _on_analyze(self, sender: tuple[str, int], args: list[Any]) -> None:
        check_count("analyze", args, 1, 1)
        self._enqueue("analyze", self.allowed_path("analyze", args[0]), {}, sender)

    def _on_edit(self, sender: tuple[str, int], args: list[Any]) -> None:
        check_count("edit", args, 1, 2)
        request = self.edit_request(args[0], parse_options("edit", args, EDIT_OPTIONS))  # checks the path too
        self._enqueue("edit", request.audio, {"name": request.name, "format": request.format}, sender, request=request)

    def _on_render(self, sender: tuple[str, int], args: list[Any]) -> None:
        check_count("render", args, 1, 2)
        path = self.allowed_path("render", args[0], what="plan path")
        self._enqueue(
            "render", path, self._check_options("render", parse_options("render", args, RENDER_OPTIONS)), sender
        )

    def _on_stems(self, sender: tuple[str, int], args: list[Any]) -> None:
        check_count("stems", args, 1, 2)
        path = self.allowed_path("stems", args[0])
        self._enqueue("stems", path, self._check_options("stems", parse_options("stems", args, STEMS_OPTIONS)), sender)

    def _on_cancel(self, sender: tuple[str, int], args: list[Any]) -> None:
        check_count("cancel", args, 0, 1)
        with self._lock:
            if not args:
                job = self._running
                if job is None:
                    raise RequestError("/editorbot/cancel: no job is running")
            else:
                job_id = args[0]
                if isinstance(job_id, bool) or not isinstance(job_id, int):
                    raise RequestError(f"/editorbot/cancel: job id must be an integer, got {type(job_id).__name__}")
                job = self._queued.get(job_id) or (
                    self._running if self._running and self._running.id == job_id else None
                )
                if job is None:
                    raise RequestError(f"/editorbot/cancel: no queued or running job {job_id}")
            if self._reply_address(sender) != self._reply_address(job.reply_to):
                # the job's replies go to whoever queued it; only that address may stop it
                raise RequestError(f"/editorbot/cancel: job {job.id} was queued from another address")
            job.cancel.set()
            dropped = self._queued.pop(job.id, None) is not None
        log.info("cancel requested for job %d", job.id, extra={"event": "cancel", "job": job.id, "queued": dropped})
        self._reply(sender, "cancelling", job.id)
        if dropped:  # never started: it ends now
            self.counters["jobs_cancelled"] += 1
            self._reply(job.reply_to, "error", "cancelled", job.id)

    def _on_status(self, sender: tuple[str, int], args: list[Any]) -> None:
        with self._lock:
            running = self._running
            doc = {
                "running": None
                if running is None
                else {"id": running.id, "kind": running.kind, "stage": running.stage, "fraction": running.fraction},
                "queued": sorted(self._queued),
                "dialect": self.dialect.name,
                "models_loaded": len(self.models),
                "counters": dict(self.counters),
            }
        self._reply(sender, "status", json.dumps(doc))

    def _enqueue(
        self,
        kind: str,
        path: str,
        options: dict[str, Any],
        sender: tuple[str, int],
        *,
        request: EditRequest | None = None,
    ) -> None:
        with self._lock:
            if self._stop.is_set():
                raise RequestError("server shutting down")
            if len(self._queued) >= self.config.max_queued:
                raise RequestError(f"queue full ({self.config.max_queued} jobs waiting); try again later")
            job = OscJob(self._take_job_id(), kind, path, options, sender, request=request)
            self._queued[job.id] = job
            position = len(self._queued) - (0 if self._running else 1)
        self.counters["jobs_queued"] += 1
        log.info("job %d queued: %s %s", job.id, kind, path, extra={"event": "queued", "job": job.id, "kind": kind})
        self._reply(sender, "queued", job.id, position)
        self._queue.put(job)

    # ------------------------------------------------------------------ job ids and outputs

    def _read_job_counter(self) -> int:
        path = self.out_dir / JOB_COUNTER_FILE
        try:
            with open(path, "rb") as f:
                doc = json.loads(f.read(4096))
            next_id = doc["next"] if isinstance(doc, dict) else None
        except FileNotFoundError:
            return 1
        except (OSError, ValueError, KeyError) as err:
            log.warning("%s unreadable (%s): job ids start at 1 (outputs are still never replaced)", path, err)
            return 1
        if isinstance(next_id, bool) or not isinstance(next_id, int) or not 1 <= next_id <= MAX_JOB_ID:
            return 1
        return next_id

    def _take_job_id(self) -> int:
        """The next job id, recorded before it is used (called with ``_lock`` held)."""
        job_id = self._next_id
        self._next_id = job_id + 1 if job_id < MAX_JOB_ID else 1
        try:
            write_json_atomic(self.out_dir / JOB_COUNTER_FILE, {"next": self._next_id}, indent=None)
        except (OSError, BadInput) as err:
            log.warning("could not record the job counter: %s", err, extra={"event": "counter_not_saved"})
        return job_id

    def _reserve(self, job: OscJob, paths: Sequence[str]) -> None:
        """Create each output of ``job`` empty and exclusively: an earlier file of that name is never replaced."""
        for p in paths:
            reserve_path(p)
            job.reserved.append(p)

    @staticmethod
    def _release(job: OscJob) -> None:
        """Remove the reserved outputs a failed job left empty (they are the server's own)."""
        for p in job.reserved:
            try:
                if os.path.isdir(p) and not os.path.islink(p):
                    os.rmdir(p)  # only when empty
                elif os.lstat(p).st_size == 0:
                    os.unlink(p)
            except OSError:
                continue
        job.reserved.clear()

    # ------------------------------------------------------------------ jobs

    def run_on_worker(self, fn: Callable[[], Any]) -> None:
        """Queue ``fn`` behind the waiting jobs; the job worker runs it, one thing at a time.

        ``editorbot serve --spool DIR`` sends the spool folder's requests
        (``bridge.spool``) through here, so they share the OSC jobs' queue.
        """
        self._queue.put(fn)  # type: ignore[arg-type]

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None or self._stop.is_set():
                return
            if not isinstance(job, OscJob):  # a call queued by run_on_worker (spool requests)
                try:
                    job()
                except Exception:  # the worker goes on
                    log.exception("queued call failed", extra={"event": "call_failed"})
                continue
            with self._lock:
                if self._queued.pop(job.id, None) is None:
                    continue  # dropped at shutdown
                self._running = job
            try:
                self._run(job)
            finally:
                with self._lock:
                    self._running = None

    def _run(self, job: OscJob) -> None:
        t0 = time.perf_counter()
        job.started = time.monotonic()
        try:
            if job.cancel.is_set():
                raise JobCancelled
            result = {
                "analyze": self._job_analyze,
                "edit": self._job_edit,
                "render": self._job_render,
                "stems": self._job_stems,
            }[job.kind](job)
            job.reserved.clear()  # filled: they stay
            self.progress(job, 1.0, "done")
        except JobCancelled:
            self._release(job)  # before the reply: a client that sees the end sees no empty file
            self.counters["jobs_cancelled"] += 1
            log.info("job %d cancelled", job.id, extra={"event": "job_cancelled", "job": job.id})
            self._reply(job.reply_to, "error", "cancelled", job.id)
            return
        except BadInput as err:
            self._release(job)
            self.counters["jobs_failed"] += 1
            log.info("job %d: bad input: %s", job.id, err, extra={"event": "job_bad_input", "job": job.id})
            self._reply(job.reply_to, "error", str(err), job.id)
            return
        except Exception as err:  # a failed job is an error reply, the server goes on
            self._release(job)
            self.counters["jobs_failed"] += 1
            log.exception("job %d failed", job.id, extra={"event": "job_failed", "job": job.id})
            self._reply(job.reply_to, "error", f"job failed: {type(err).__name__}: {err}", job.id)
            return
        self.counters["jobs_done"] += 1
        log.info(
            "job %d done in %.2f s",
            job.id,
            time.perf_counter() - t0,
            extra={"event": "job_done", "job": job.id, "kind": job.kind, "seconds": round(time.perf_counter() - t0, 3)},
        )
        self._reply(job.reply_to, "done", *result, job.id)

    def progress(self, job: OscJob, fraction: float, stage: str) -> None:
        """A progress point: reply, then stop here if the job was cancelled."""
        job.fraction, job.stage = float(fraction), stage
        self._send_progress(job)
        if job.cancel.is_set() and fraction < 1.0:
            raise JobCancelled

    def _send_progress(self, job: OscJob) -> None:
        job.last_progress = time.monotonic()
        self._reply(job.reply_to, "progress", round(job.fraction, 4), job.stage, job.id)

    def _tick(self) -> None:
        interval = self.config.progress_interval_s
        while not self._stop.wait(interval / 2):
            job = self._running
            if job is not None and time.monotonic() - job.last_progress >= interval:
                self._send_progress(job)

    def _out_path(self, job: OscJob, stem: str, suffix: str) -> str:
        stem = job.options.get("name") or safe_stem(stem) or "out"
        return str(self.out_dir / f"{stem}-{job.id}{suffix}")

    def _job_analyze(self, job: OscJob) -> tuple[str]:
        out = self._out_path(job, Path(job.path).stem, ".analysis.json")
        self._reserve(job, [out])
        self.progress(job, 0.0, "analysis")
        from editorbot.engine.analysis import analyze

        analysis = analyze(job.path)
        self.progress(job, 0.9, "write")
        return (analysis.save_json(out),)

    def _job_edit(self, job: OscJob) -> tuple[str, str]:
        from editorbot.export.edit import edit_file, output_paths

        assert job.request is not None  # _on_edit queues every edit with its request
        exports = tuple(dict.fromkeys((*job.request.exports, *self.dialect.exports_needed())))
        request = dataclasses.replace(job.request, exports=exports)
        audio_out = self._out_path(job, Path(job.path).stem, "." + request.format)
        self._reserve(job, list(output_paths(audio_out, plan=None, exports=exports).values()))
        self.progress(job, 0.0, "model")
        policy = self.models.get(request.model, request.checkpoint)

        def on_stage(stage: str, fraction: float) -> None:  # the edit's stages fill 5%..95% of the job
            self.progress(job, 0.05 + 0.9 * fraction, stage)

        report = edit_file(request, audio_out, policy, quiet=True, on_stage=on_stage)  # progress goes to the DAW
        self.progress(job, 0.95, "daw")
        written = report.written
        result = JobResult(
            plan=report.plan,
            plan_path=written["plan"],
            audio_path=written["audio"],
            exports={k: v for k, v in written.items() if k not in ("plan", "audio")},
        )
        self._deliver(job, result)
        return written["plan"], written["audio"]

    def _job_render(self, job: OscJob) -> tuple[str, str]:
        self.progress(job, 0.0, "load")
        from editorbot.engine.exporters import EXTENSIONS, export_plan
        from editorbot.engine.plan import load_plan, resolve_source
        from editorbot.engine.render import render_to_file

        plan = load_plan(job.path)
        resolve_source(plan, job.path)
        try:  # the plan names the audio it cuts: a file from the request, so inside --allow too
            plan.source.path = self.allowed_path("render", plan.source.path, what="plan source")
        except RequestError as err:
            raise BadInput(job.path, f"source: {err}") from None
        self.progress(job, 0.1, "render")
        stem = Path(job.path).name.removesuffix(".json").removesuffix(".plan")
        audio_out = self._out_path(job, stem, "." + job.options.get("format", "wav"))
        export_paths = {fmt: str(Path(audio_out).with_suffix(EXTENSIONS[fmt])) for fmt in self.dialect.exports_needed()}
        self._reserve(job, [audio_out, *export_paths.values()])
        render_to_file(plan, audio_out)
        exports = {}
        for fmt, path in export_paths.items():
            exports[fmt] = export_plan(plan, fmt, path)
        self.progress(job, 0.95, "daw")
        self._deliver(job, JobResult(plan=plan, plan_path=job.path, audio_path=audio_out, exports=exports))
        return job.path, audio_out

    def _job_stems(self, job: OscJob) -> tuple[str, str]:
        self.progress(job, 0.0, "stems")
        from editorbot.engine.chains import load_chain
        from editorbot.engine.stems import split_file

        o = job.options
        folder = self._out_path(job, Path(job.path).stem, ".stems")
        chain = None
        if o.get("chain"):  # plugins only from the plugin folders, impulse responses also from --allow
            chain = load_chain(o["chain"], plugin_dirs=self.plugin_dirs, file_roots=self.roots)
        try:
            os.mkdir(folder)  # exclusive: an earlier run's folder is never written into
        except FileExistsError:
            raise BadInput(folder, "exists already; outputs never replace an earlier file") from None
        job.reserved.append(folder)
        result = split_file(
            job.path,
            folder,
            chain=chain,
            separator=o.get("separator", "auto"),
            fmt=o.get("format", "wav"),
            protect=(o["chain"],) if o.get("chain") else (),
        )
        return folder, result.paths["mix"]

    def _deliver(self, job: OscJob, result: JobResult) -> None:
        """Send the dialect's messages: markers to the client, DAW commands to the DAW (paced)."""
        messages: list[Outgoing] = self.dialect.messages(result)
        for m in messages:
            if m.target == "client":
                self._send(self._reply_address(job.reply_to), m.address, m.args)
            elif self.daw_address is not None:
                self._send(self.daw_address, m.address, m.args)
                time.sleep(max(m.pause_s, 0.002))  # a DAW's OSC input queue is small: do not burst
        log.info(
            "job %d: %d messages through the %s dialect",
            job.id,
            len(messages),
            self.dialect.name,
            extra={"event": "delivered", "job": job.id, "messages": len(messages)},
        )
