"""Hostile input to ``editorbot serve`` (a real subprocess on loopback): 1,000
malformed packets (random bytes, broken OSC, wrong types and counts, huge
strings, deep bundles, paths outside the allowed folders, files that are not
audio, unknown addresses). Each gets an ``/editorbot/error`` reply or is
dropped with a log line; a ping after every packet is answered; the server's
peak RSS stays flat.

Then hostile requests, each an attack on the server or the spool that once
worked: a checkpoint that runs code when unpickled, a chain naming a plugin
outside the plugin folders, symlinked spool folders, a request nested
100,000 deep, a FIFO, an oversized or symlinked request, paths outside
``--allow`` in a spool request, outputs of a restarted server, a cancel from
another client, a non-loopback bind. Every one runs on loopback or in a
temp folder, is bounded by a few seconds and stops by itself.
"""

from __future__ import annotations

import json
import logging
import os
import random
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from editorbot.bridge.osc_client import OscClient, encode
from editorbot.bridge.server import Server, ServerConfig
from editorbot.bridge.spool import REQUEST_SCHEMA, Spool, SpoolJob, run_spool
from editorbot.engine.audio import write_audio
from editorbot.engine.errors import BadInput
from tests.bridge.conftest import SR, song
from tests.bridge.test_server import EDITORBOT, collect, start_server, submit, wait_for_port

logger = logging.getLogger(__name__)

N_PACKETS = 1000
#: Peak RSS may grow by at most this much over the 1,000 packets (after a warm-up round).
RSS_SLACK_KB = 8 * 1024


def _osc_string(text: bytes) -> bytes:
    return text + b"\x00" * (4 - len(text) % 4)


def _bundle(depth: int, inner: bytes) -> bytes:
    for _ in range(depth):
        inner = b"#bundle\x00" + struct.pack(">Q", 1) + struct.pack(">i", len(inner)) + inner
    return inner


def hostile_packets(rng: random.Random, root: Path) -> list[Callable[[], bytes]]:
    """Makers of hostile datagrams; each call returns one."""
    text_file, empty_file, bad_wav = root / "notes.wav", root / "empty.wav", root / "bad.wav"
    outside_link = root / "escape.wav"
    return [
        lambda: rng.randbytes(rng.randrange(1, 1500)),
        lambda: b"/editorbot/" + rng.randbytes(rng.randrange(0, 200)),
        lambda: b"#bundle\x00" + rng.randbytes(rng.randrange(0, 64)),
        lambda: encode("/editorbot/ping", [1, 2])[: rng.randrange(1, 20)] + b"\x01",
        lambda: _osc_string(b"/editorbot/ping") + _osc_string(b",zq") + b"\x00" * 8,
        lambda: _osc_string(b"/editorbot/analyze") + _osc_string(b",i"),  # int announced, missing
        lambda: encode(f"/editorbot/{rng.choice(['pingg', 'edits', 'x', ''])}{rng.randrange(99)}"),
        lambda: encode("/" + "".join(rng.choice("abc/*?[]{}") for _ in range(rng.randrange(1, 40)))),
        lambda: encode("/editorbot/analyze"),
        lambda: encode("/editorbot/analyze", [rng.randrange(-9, 9), 2.5, "x"]),
        lambda: encode("/editorbot/analyze", [rng.random()]),
        lambda: encode("/editorbot/analyze", [b"\x00\x01blob"]),
        lambda: encode("/editorbot/analyze", ["/" + "A" * rng.randrange(5000, 60000)]),
        lambda: encode("/editorbot/analyze", [rng.choice(["/etc/passwd", "/proc/self/environ", "/dev/zero", "/"])]),
        lambda: encode("/editorbot/analyze", ["../../etc/passwd"]),
        lambda: encode("/editorbot/analyze", [str(root) + "/../../etc/passwd"]),
        lambda: encode("/editorbot/analyze", [str(outside_link)]),
        lambda: encode("/editorbot/analyze", [str(root / "nope.wav")]),
        lambda: encode("/editorbot/analyze", [str(root)]),
        lambda: encode("/editorbot/edit", [str(text_file), "{" * rng.randrange(1, 5000)]),
        lambda: encode("/editorbot/edit", [str(text_file), "[1, 2]"]),
        lambda: encode("/editorbot/edit", [str(text_file), json.dumps({"model": "/etc/passwd"})]),
        lambda: encode("/editorbot/edit", [str(text_file), '{"target_duration_s": NaN}']),
        lambda: encode("/editorbot/edit", [str(text_file), json.dumps({"seed": "x", "keep": 5})]),
        lambda: encode("/editorbot/edit", [str(text_file), "{}", "extra"]),
        lambda: encode("/editorbot/render", [None]),
        lambda: encode("/editorbot/cancel", [rng.choice(["x", 1.5, True, 10**9])]),
        lambda: encode("/editorbot/cancel", [1, 2]),
        lambda: _bundle(rng.randrange(1500, 3000), encode("/editorbot/ping")),
        lambda: _bundle(1, encode("/nowhere") + b"\x00\x00"),
        lambda: b"",
        # files inside the allowed folder that are not audio: accepted, then a job error
        lambda: encode("/editorbot/analyze", [str(rng.choice([text_file, empty_file, bad_wav]))]),
    ]


def _write_fixtures(root: Path) -> None:
    (root / "notes.wav").write_text("not audio at all\n" * 20)
    (root / "empty.wav").write_bytes(b"")
    (root / "bad.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 10)
    (root / "escape.wav").symlink_to("/etc/passwd")


def _peak_rss_kb(pid: int) -> tuple[int, int]:
    """(VmHWM, VmRSS) of ``pid`` in kB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmHWM"].split()[0]), int(fields["VmRSS"].split()[0])


def _round(client: OscClient, makers: list[Callable[[], bytes]], rng: random.Random, n: int, start: int) -> dict[str, int]:
    """Send ``n`` hostile packets, each followed by a numbered ping; tally what each packet got."""
    tally = {"error": 0, "no_reply": 0, "queued": 0, "job_errors": 0}
    queued_ids: set[int] = set()
    ended_ids: set[int] = set()
    for k in range(start, start + n):
        data = makers[rng.randrange(len(makers))]()
        client.send_raw(data)
        client.send("/editorbot/ping", k)
        got: list[tuple[str, list]] = []
        while True:
            reply = client.receive(5.0)
            assert reply is not None, f"no pong for packet {k} ({data[:60]!r})"
            if reply[0] == "/editorbot/pong" and reply[1] == [k]:
                break
            got.append(reply)
        job_ends = [args for address, args in got if address == "/editorbot/error" and len(args) == 2]
        ended_ids.update(args[1] for args in job_ends)  # jobs that ended while we pinged
        got = [(a, r) for a, r in got if not (a == "/editorbot/error" and len(r) == 2) and a != "/editorbot/progress"]
        direct = [a for a, _ in got]
        assert len(direct) <= 1, (data[:60], got)
        if not direct:
            tally["no_reply"] += 1
        elif direct[0] == "/editorbot/queued":
            tally["queued"] += 1
            queued_ids.add(got[0][1][0])
        else:
            assert direct[0] == "/editorbot/error", (data[:60], got)
            tally["error"] += 1
    while queued_ids - ended_ids:  # every accepted non-audio file ends in a job error
        reply = client.receive(30.0)
        assert reply is not None, f"jobs {sorted(queued_ids - ended_ids)} never ended"
        assert reply[0] != "/editorbot/done", reply
        if reply[0] == "/editorbot/error":
            ended_ids.add(reply[1][-1])
    tally["job_errors"] = len(ended_ids & queued_ids)
    assert ended_ids <= queued_ids, ended_ids - queued_ids
    return tally


def test_fuzz_1000_hostile_packets(tmp_path: Path) -> None:
    root = tmp_path / "allowed"
    root.mkdir()
    _write_fixtures(root)
    log_path = tmp_path / "serve.log"
    rng = random.Random(1234)
    makers = hostile_packets(rng, root)
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen(
            [EDITORBOT, "serve", "--port", "0", "--out-dir", str(tmp_path / "out"), "--allow", str(root),
             "--log-format", "json"],
            stderr=log_file, env={**os.environ, "EDITORBOT_CACHE": str(tmp_path / "cache")},
        )  # fmt: skip
        try:
            port = wait_for_port(log_path, proc)
            with OscClient("127.0.0.1", port) as client:
                warm = _round(client, makers, rng, 200, 0)  # imports and caches settle
                before = _peak_rss_kb(proc.pid)
                tally = _round(client, makers, rng, N_PACKETS, 10_000)
                after = _peak_rss_kb(proc.pid)
                assert list(client.request("/editorbot/ping", "alive", timeout=5.0)) == [("/editorbot/pong", ["alive"])]
        finally:
            proc.terminate()
            rc = proc.wait(20)
    logger.info("fuzz tally %s (warm-up %s); peak RSS %d -> %d kB, RSS %d -> %d kB", tally, warm, before[0], after[0], before[1], after[1])
    print(f"\nfuzz: {tally}; peak RSS (VmHWM) {before[0]} -> {after[0]} kB; RSS {before[1]} -> {after[1]} kB")
    assert rc == 0
    assert tally["error"] + tally["no_reply"] + tally["queued"] == N_PACKETS
    assert tally["error"] > 800 and tally["queued"] > 0
    assert tally["job_errors"] == tally["queued"]
    # every packet without a reply was logged as dropped
    events = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    dropped = sum(1 for e in events if e.get("event") == "dropped")
    assert dropped == tally["no_reply"] + warm["no_reply"]
    assert not any(e.get("event") in ("handler_error", "handler_crash") for e in events), [
        e for e in events if e.get("event") in ("handler_error", "handler_crash")
    ][:3]
    assert after[0] - before[0] <= RSS_SLACK_KB, f"peak RSS grew {after[0] - before[0]} kB"



# --------------------------------------------------------------------------- hostile requests


@pytest.fixture
def allowed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An allowed folder holding ``song.wav`` (4 s); the feature cache in the test's folder."""
    monkeypatch.setenv("EDITORBOT_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "allowed"
    root.mkdir()
    write_audio(root / "song.wav", song(), SR)
    return root


class _Touch:
    """Unpickling this creates ``path``: proof that a load ran code from the file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def test_hostile_checkpoint_runs_no_code(allowed: Path, tmp_path: Path) -> None:
    evil, marker = allowed / "evil.pt", tmp_path / "pwned"
    torch.save({"format": _Touch(marker), "agent": {}, "agent_config": {}}, evil)
    server = start_server(tmp_path, [allowed])
    try:
        with OscClient("127.0.0.1", server.port) as c:
            job = submit(c, "/editorbot/edit", str(allowed / "song.wav"), json.dumps({"checkpoint": str(evil)}))
            end = collect(c, until_done_of=job, timeout=60.0)[-1]
    finally:
        server.close()
    assert end[1] == "/editorbot/error" and "evil.pt" in end[2][0] and "weights-only" in end[2][0], end
    assert not marker.exists()


def test_chain_plugin_outside_the_plugin_folders_is_never_loaded(
    allowed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "Evil.vst3").write_bytes(b"native code")
    (elsewhere / "ir.wav").write_bytes((allowed / "song.wav").read_bytes())
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    opened: list[Any] = []
    monkeypatch.setattr("pedalboard.load_plugin", lambda *a, **k: opened.append(a))
    chains = {
        "plugin.json": {"stems": {"drums": [{"plugin": str(elsewhere / "Evil.vst3")}]}},
        "ir.json": {"stems": {"vocals": [{"plugin": "Convolution", "params": {"impulse_response_filename": str(elsewhere / "ir.wav")}}]}},
    }
    server = start_server(tmp_path, [allowed], plugin_dirs=[plugins])
    try:
        with OscClient("127.0.0.1", server.port) as c:
            for name, doc in chains.items():
                (allowed / name).write_text(json.dumps(doc))
                options = json.dumps({"chain": str(allowed / name), "separator": "builtin"})
                job = submit(c, "/editorbot/stems", str(allowed / "song.wav"), options)
                end = collect(c, until_done_of=job, timeout=30.0)[-1]
                assert end[1] == "/editorbot/error" and str(elsewhere) in end[2][0] and "outside" in end[2][0], end
    finally:
        server.close()
    assert opened == []
    assert not any((tmp_path / "out").glob("song-*.stems/*"))


def test_plan_whose_source_is_outside_allow_is_not_rendered(saved_plan, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDITORBOT_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "allowed"
    root.mkdir()
    doc = json.loads(saved_plan.plan_path.read_text())
    doc["source"]["path"] = str(saved_plan.wav)  # a real file with the right checksum, outside --allow
    (root / "evil.plan.json").write_text(json.dumps(doc))
    server = start_server(tmp_path, [root])
    try:
        with OscClient("127.0.0.1", server.port) as c:
            job = submit(c, "/editorbot/render", str(root / "evil.plan.json"))
            end = collect(c, until_done_of=job, timeout=30.0)[-1]
    finally:
        server.close()
    assert end[1] == "/editorbot/error" and "outside the allowed folders" in end[2][0], end
    assert not any((tmp_path / "out").glob("*.wav"))


@pytest.mark.parametrize("folder", ["work", "outbox", "cancel", "inbox"])
def test_symlinked_spool_folder_is_refused_and_nothing_is_deleted(tmp_path: Path, folder: str) -> None:
    victim = tmp_path / "music"
    victim.mkdir()
    for name in ("take1.wav", "notes.json", ".hidden"):
        (victim / name).write_text("a user's file")
        os.utime(victim / name, (1.0, 1.0))  # old: a sweep would think it stale
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    (spool_dir / folder).symlink_to(victim)
    with pytest.raises(BadInput, match=f"{folder}: is a symbolic link"):
        Spool(spool_dir).requeue_orphans()
    assert sorted(p.name for p in victim.iterdir()) == [".hidden", "notes.json", "take1.wav"]


def _put(spool_dir: Path, request_id: str, body: str | bytes) -> Path:
    inbox = spool_dir / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    tmp = inbox / f".{request_id}.tmp"
    tmp.write_bytes(body if isinstance(body, bytes) else body.encode())
    os.rename(tmp, inbox / f"{request_id}.json")
    return inbox / f"{request_id}.json"


def _request(request_id: str, audio: str, **fields: Any) -> str:
    return json.dumps({"schema": REQUEST_SCHEMA, "id": request_id, "kind": "edit", "audio": audio, **fields})


def _plan_handler(calls: list[str]) -> Callable[[SpoolJob], dict[str, Any]]:
    def handler(job: SpoolJob) -> dict[str, Any]:
        calls.append(job.id)
        return {"plan": {"segments": [], "markers": []}}

    return handler


@pytest.fixture
def spool_loop(tmp_path: Path) -> Iterator[Callable[..., dict[str, Any]]]:
    """``serve(spool_dir, allowed_roots, handler, ids)``: run ``run_spool`` until every id in
    ``ids`` has a result (at most 10 s), stop it, and return the results by id."""
    threads: list[tuple[threading.Thread, threading.Event]] = []

    def serve(spool_dir: Path, roots: list[Path], handler: Callable[[SpoolJob], dict[str, Any]], ids: list[str]) -> dict[str, Any]:
        stop = threading.Event()
        spool = Spool(spool_dir, allowed_roots=roots)
        thread = threading.Thread(
            target=run_spool, args=(spool_dir, handler), kwargs={"stop": stop, "poll_s": 0.02, "spool": spool}, daemon=True
        )
        threads.append((thread, stop))
        thread.start()
        deadline = time.monotonic() + 10.0
        results: dict[str, Any] = {}
        while time.monotonic() < deadline and len(results) < len(ids):
            for rid in ids:
                path = spool_dir / "outbox" / f"{rid}.json"
                if rid not in results and path.exists():
                    results[rid] = json.loads(path.read_text())
            time.sleep(0.02)
        assert thread.is_alive(), "the spool loop died"
        return results

    yield serve
    for thread, stop in threads:
        stop.set()
        thread.join(5.0)


def test_spool_survives_a_deeply_nested_request_and_a_restart(tmp_path: Path, allowed: Path, spool_loop) -> None:
    spool_dir = tmp_path / "spool"
    calls: list[str] = []
    deep = "[" * 100_000 + "]" * 100_000
    _put(spool_dir, "deep", deep)
    _put(spool_dir, "after", _request("after", str(allowed / "song.wav")))
    # a server that died while holding the same request: the restart finds it in work/
    (spool_dir / "work").mkdir()
    (spool_dir / "work" / "deep2.json").write_text(deep)
    results = spool_loop(spool_dir, [allowed], _plan_handler(calls), ["deep", "deep2", "after"])
    assert results["deep"]["status"] == "error" and "nested too deeply" in results["deep"]["message"], results
    assert results["deep2"]["status"] == "error"
    assert results["after"]["status"] == "done" and calls == ["after"]


def test_spool_refuses_fifo_oversized_and_symlinked_requests(tmp_path: Path, allowed: Path, spool_loop) -> None:
    spool_dir = tmp_path / "spool"
    calls: list[str] = []
    _put(spool_dir, "big", _request("big", str(allowed / "song.wav")) + " " * (1 << 20))
    fifo = spool_dir / "inbox" / "fifo.json"
    os.mkfifo(fifo)
    target = tmp_path / "old-request.json"  # a link to an old file: answered, not dropped as stale
    target.write_text(_request("link", str(allowed / "song.wav")))
    os.utime(target, (time.time() - 3600, time.time() - 3600))
    (spool_dir / "inbox" / "link.json").symlink_to(target)
    _put(spool_dir, "ok", _request("ok", str(allowed / "song.wav")))
    try:
        results = spool_loop(spool_dir, [allowed], _plan_handler(calls), ["big", "fifo", "link", "ok"])
    finally:
        try:  # a reader blocked opening the FIFO (the old loop) is released
            os.close(os.open(spool_dir / "work" / "fifo.json", os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass
    assert results.get("big", {}).get("status") == "error" and "1048576 bytes" in results["big"]["message"], results
    assert results.get("fifo", {}).get("status") == "error" and "regular file" in results["fifo"]["message"], results
    assert results.get("link", {}).get("status") == "error" and "symbolic link" in results["link"]["message"], results
    assert results.get("ok", {}).get("status") == "done" and calls == ["ok"]
    assert target.exists()


def test_spool_applies_allow_to_every_path(tmp_path: Path, allowed: Path, spool_loop) -> None:
    spool_dir = tmp_path / "spool"
    calls: list[str] = []
    outside = tmp_path / "private"
    outside.mkdir()
    (outside / "secret.wav").write_bytes((allowed / "song.wav").read_bytes())
    (outside / "evil.onnx").write_bytes(b"x")
    (allowed / "link.wav").symlink_to(outside / "secret.wav")
    song_path = str(allowed / "song.wav")
    cases = {
        "audio": _request("audio", str(outside / "secret.wav")),
        "hostname": _request("hostname", "/etc/hostname"),
        "through_link": _request("through_link", str(allowed / "link.wav")),
        "relative": _request("relative", "../private/secret.wav"),
        "model": _request("model", song_path, model=str(outside / "evil.onnx")),
    }
    for rid, body in cases.items():
        _put(spool_dir, rid, body)
    results = spool_loop(spool_dir, [allowed], _plan_handler(calls), list(cases))
    for rid in cases:
        r = results.get(rid, {})
        assert r.get("status") == "error" and ("outside the allowed folders" in r["message"] or "absolute" in r["message"]), (rid, r)
    assert calls == []


def test_spool_cancel_counts_only_from_the_requests_owner(tmp_path: Path, allowed: Path) -> None:
    spool = Spool(tmp_path / "spool", allowed_roots=[allowed])
    (spool.cancel_dir / "r1").write_text("1")
    assert spool.is_cancelled("r1", os.getuid())
    assert not spool.is_cancelled("r1", os.getuid() + 1)  # someone else's cancel file


def test_outputs_of_an_earlier_run_are_never_replaced(allowed: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = start_server(tmp_path, [allowed])
    try:
        with OscClient("127.0.0.1", first.port) as c:
            job1 = submit(c, "/editorbot/analyze", str(allowed / "song.wav"))
            done = collect(c, until_done_of=job1, timeout=60.0)[-1]
    finally:
        first.close()
    assert done[1] == "/editorbot/done", done
    earlier = Path(done[2][0])
    os.utime(earlier, (1.0, 1.0))
    kept = earlier.read_bytes(), earlier.stat().st_mtime
    # a restarted server: new ids; and a stray file already holding the next id's name is kept too
    counter = json.loads((out / ".editorbot-jobs.json").read_text())["next"]
    squatter = out / f"song-{counter}.analysis.json"
    squatter.write_text("not the server's")
    second = start_server(tmp_path, [allowed])
    try:
        with OscClient("127.0.0.1", second.port) as c:
            job2 = submit(c, "/editorbot/analyze", str(allowed / "song.wav"))
            end2 = collect(c, until_done_of=job2, timeout=60.0)[-1]
            job3 = submit(c, "/editorbot/analyze", str(allowed / "song.wav"))
            end3 = collect(c, until_done_of=job3, timeout=60.0)[-1]
    finally:
        second.close()
    assert job2 != job1 and job3 != job1
    assert end2[1] == "/editorbot/error" and "exists already" in end2[2][0], end2
    assert squatter.read_text() == "not the server's"
    assert end3[1] == "/editorbot/done" and Path(end3[2][0]) != earlier
    assert (earlier.read_bytes(), earlier.stat().st_mtime) == kept


def test_cancel_only_from_the_address_that_queued(allowed: Path, tmp_path: Path) -> None:
    server = start_server(tmp_path, [allowed])
    gate = threading.Event()
    server.run_on_worker(lambda: gate.wait(10.0))  # holds the worker: the next job stays queued
    try:
        with OscClient("127.0.0.1", server.port) as owner, OscClient("127.0.0.1", server.port) as other:
            job = submit(owner, "/editorbot/analyze", str(allowed / "song.wav"))
            assert list(other.request("/editorbot/cancel", job, timeout=2.0)) == [
                ("/editorbot/error", [f"/editorbot/cancel: job {job} was queued from another address"])
            ]
            owner.send("/editorbot/cancel", job)
            replies = [owner.receive(2.0), owner.receive(2.0)]
            assert ("/editorbot/cancelling", [job]) in replies and ("/editorbot/error", ["cancelled", job]) in replies
    finally:
        gate.set()
        server.close()


def test_non_loopback_bind_needs_allow_remote(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="allow-remote"):
        Server(ServerConfig(host="0.0.0.0", port=0, out_dir=tmp_path / "out", allowed_roots=[tmp_path]))
    proc = subprocess.run(
        [EDITORBOT, "serve", "--host", "0.0.0.0", "--port", "0", "--out-dir", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=30,
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "--allow-remote" in proc.stderr, proc.stderr
