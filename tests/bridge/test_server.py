"""``editorbot serve`` over real UDP on loopback (ephemeral ports): ping/pong,
analyze, edit and render jobs with progress, markers and done, cancel in the
middle of a job, a job queued behind another, a burst of 1,000 pings, SIGTERM
and ``editorbot send``."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from editorbot.bridge.osc_client import OscClient
from editorbot.bridge.server import Server, ServerConfig
from editorbot.engine.plan import load_plan
from tests.export import song_file, tiny_model

logger = logging.getLogger(__name__)

EDITORBOT = str(Path(sys.executable).with_name("editorbot"))
JOB_TIMEOUT_S = 90.0


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDITORBOT_CACHE", str(tmp_path / "cache"))


def start_server(tmp: Path, roots: list[Path], **overrides) -> Server:
    """An in-process server on a free loopback port writing into ``tmp/out``."""
    config = ServerConfig(host="127.0.0.1", port=0, out_dir=tmp / "out", allowed_roots=roots, **overrides)
    return Server(config).start()


def collect(client: OscClient, *, until_done_of: int | None = None, timeout: float = JOB_TIMEOUT_S) -> list[tuple[float, str, list]]:
    """Replies with their arrival time until the done/error of job ``until_done_of`` (or of any job)."""
    out: list[tuple[float, str, list]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reply = client.receive(min(5.0, deadline - time.monotonic()))
        if reply is None:
            continue
        address, args = reply
        out.append((time.monotonic(), address, args))
        if address in ("/editorbot/done", "/editorbot/error") and (
            until_done_of is None or (args and args[-1] == until_done_of)
        ):
            return out
    raise AssertionError(f"no done/error within {timeout} s; got {[(a, r) for _, a, r in out][-10:]}")


def submit(client: OscClient, address: str, *args) -> int:
    """Send a job request and return its id from the ``queued`` reply."""
    client.send(address, *args)
    reply = client.receive(5.0)
    assert reply is not None and reply[0] == "/editorbot/queued", reply
    return int(reply[1][0])


def assert_progress_every_second(replies: list[tuple[float, str, list]], job_id: int) -> None:
    """Progress replies of ``job_id`` come at least once a second from its first to its end."""
    times = [t for t, a, r in replies if a == "/editorbot/progress" and r[-1] == job_id]
    end = [t for t, a, r in replies if a in ("/editorbot/done", "/editorbot/error") and r and r[-1] == job_id]
    assert times and end
    gaps = [b - a for a, b in zip(times, times[1:] + end[:1])]
    assert max(gaps) <= 1.0, f"progress gap {max(gaps):.2f} s"
    fractions = [r[0] for _, a, r in replies if a == "/editorbot/progress" and r[-1] == job_id]
    assert all(0.0 <= f <= 1.0 for f in fractions) and fractions == sorted(fractions)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    song = song_file(41, 20.0)
    srv = start_server(tmp_path, [song.parent, tmp_path])
    yield srv
    srv.close()


def test_ping_pong_echoes_arguments(server: Server) -> None:
    with OscClient("127.0.0.1", server.port) as c:
        replies = list(c.request("/editorbot/ping", 7, 2.5, "hi", timeout=2.0))
        assert replies == [("/editorbot/pong", [7, 2.5, "hi"])]
        assert list(c.request("/editorbot/ping", timeout=2.0)) == [("/editorbot/pong", [])]


def test_analyze_job_progress_and_done(server: Server) -> None:
    song = song_file(41, 20.0)
    with OscClient("127.0.0.1", server.port) as c:
        job = submit(c, "/editorbot/analyze", str(song))
        replies = collect(c, until_done_of=job)
    done = replies[-1]
    assert done[1] == "/editorbot/done", replies[-3:]
    path = Path(done[2][0])
    assert path.parent == server.out_dir and path.is_file()
    doc = json.loads(path.read_text())
    assert doc["schema"] == "editorbot.analysis/1" and doc["summary"]["n_beats"] > 10
    assert_progress_every_second(replies, job)
    stages = [r[1] for _, a, r in replies if a == "/editorbot/progress"]
    assert stages[0] == "analysis" and stages[-1] == "done"


def test_edit_job_with_a_model_gives_markers_and_done(server: Server) -> None:
    model, _ = tiny_model()
    song = song_file(41, 20.0)
    server.roots.append(model.parent.resolve())
    options = json.dumps({"model": str(model), "target_duration_s": 15.0, "seed": 3, "exports": "tsv"})
    with OscClient("127.0.0.1", server.port) as c:
        job = submit(c, "/editorbot/edit", str(song), options)
        replies = collect(c, until_done_of=job)
        # a second edit with the same model reuses the loaded policy
        job2 = submit(c, "/editorbot/edit", str(song), json.dumps({"model": str(model), "name": "again"}))
        replies2 = collect(c, until_done_of=job2)
    assert replies[-1][1] == "/editorbot/done", replies[-3:]
    plan_path, audio_path, done_id = replies[-1][2]
    assert done_id == job
    plan = load_plan(plan_path)
    assert abs(plan.duration_s - 15.0) < 1.0
    assert Path(audio_path).is_file() and Path(audio_path).parent == server.out_dir
    assert Path(audio_path).with_suffix(".tsv").is_file()
    markers = [r for _, a, r in replies if a == "/editorbot/marker"]
    assert len(markers) == len(plan.markers) > 0
    assert [m[0] for m in markers] == pytest.approx(sorted(m.time_s for m in plan.markers), abs=1e-4)
    assert_progress_every_second(replies, job)
    assert replies2[-1][1] == "/editorbot/done" and Path(replies2[-1][2][1]).name.startswith("again-")
    assert server.models.loads == 1


def test_edit_without_a_default_model_is_an_error_reply(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    from editorbot.export import runtime

    monkeypatch.setattr(runtime, "DEFAULT_MODEL", server.out_dir / "missing" / "policy.onnx")
    song = song_file(41, 20.0)
    with OscClient("127.0.0.1", server.port) as c:
        job = submit(c, "/editorbot/edit", str(song))
        replies = collect(c, until_done_of=job)
    assert replies[-1][1] == "/editorbot/error"
    assert "no model found" in replies[-1][2][0] and replies[-1][2][-1] == job


def _retime_plan(song: Path, target_s: float, out: Path) -> Path:
    """A plan made by the pure DP retimer (no policy), saved to ``out``."""
    from editorbot.engine.analysis import analyze
    from editorbot.engine.plan import plan_from_actions, save_plan
    from editorbot.export.retime import retime

    analysis = analyze(song)
    plan = plan_from_actions(analysis, retime(analysis, target_s).walk)
    save_plan(plan, out)
    return out


def test_render_job_renders_the_plan(server: Server, tmp_path: Path) -> None:
    song = song_file(41, 20.0)
    plan_path = _retime_plan(song, 14.0, tmp_path / "cut.plan.json")
    with OscClient("127.0.0.1", server.port) as c:
        job = submit(c, "/editorbot/render", str(plan_path), json.dumps({"format": "flac"}))
        replies = collect(c, until_done_of=job)
    assert replies[-1][1] == "/editorbot/done", replies[-3:]
    assert replies[-1][2][0] == str(plan_path)
    import soundfile as sf

    info = sf.info(replies[-1][2][1])
    assert info.format == "FLAC" and abs(info.duration - load_plan(plan_path).duration_s) < 0.01


def test_cancel_stops_a_running_job_at_its_next_progress_point(server: Server) -> None:
    song = song_file(43, 60.0)  # not in the feature cache: the analysis stage takes a while
    with OscClient("127.0.0.1", server.port) as c:
        job = submit(c, "/editorbot/analyze", str(song))
        first = c.receive(5.0)
        assert first is not None and first[0] == "/editorbot/progress" and first[1][1] == "analysis"
        c.send("/editorbot/cancel", job)
        replies = collect(c, until_done_of=job)
    addresses = [a for _, a, _ in replies]
    assert "/editorbot/cancelling" in addresses and "/editorbot/done" not in addresses
    assert replies[-1][1:] == ("/editorbot/error", ["cancelled", job])
    assert not list(server.out_dir.glob("*.analysis.json"))
    assert server.counters["jobs_cancelled"] == 1


def test_second_job_waits_for_the_first_and_a_queued_job_can_be_cancelled(server: Server) -> None:
    song, other = song_file(41, 20.0), song_file(44, 30.0)
    with OscClient("127.0.0.1", server.port) as c:
        c.send("/editorbot/analyze", str(other))
        c.send("/editorbot/analyze", str(song))
        c.send("/editorbot/analyze", str(song))
        replies = []
        while len([r for _, a, r in replies if a == "/editorbot/queued"]) < 3:
            reply = c.receive(5.0)
            assert reply is not None
            replies.append((time.monotonic(), *reply))
        first, second, third = (r[0] for _, a, r in replies if a == "/editorbot/queued")
        positions = [r[1] for _, a, r in replies if a == "/editorbot/queued"]
        assert positions[1:] == [1, 2]
        c.send("/editorbot/cancel", third)
        replies += collect(c, until_done_of=second)
    ends = {r[-1]: a for _, a, r in replies if a in ("/editorbot/done", "/editorbot/error")}
    assert ends == {first: "/editorbot/done", second: "/editorbot/done", third: "/editorbot/error"}
    first_end = next(t for t, a, r in replies if a == "/editorbot/done" and r[-1] == first)
    second_start = min(t for t, a, r in replies if a == "/editorbot/progress" and r[-1] == second)
    assert second_start >= first_end
    assert not any(a == "/editorbot/progress" and r[-1] == third for _, a, r in replies)


def test_burst_of_1000_pings_gets_1000_pongs(server: Server) -> None:
    n = 1000
    got: list[int] = []
    with OscClient("127.0.0.1", server.port) as c:
        reader = threading.Thread(target=lambda: got.extend(_pongs(c, n)), daemon=True)
        reader.start()
        for i in range(n):
            c.send("/editorbot/ping", i)
        reader.join(15.0)
    assert sorted(got) == list(range(n)), f"{n - len(set(got))} pongs missing"


def _pongs(c: OscClient, n: int) -> Iterator[int]:
    seen = 0
    while seen < n:
        reply = c.receive(5.0)
        if reply is None:
            return
        if reply[0] == "/editorbot/pong":
            seen += 1
            yield reply[1][0]


def test_bad_requests_get_error_replies(server: Server, tmp_path: Path) -> None:
    song = song_file(41, 20.0)
    (tmp_path / "link.wav").symlink_to("/etc/hostname")
    cases = [
        (("/editorbot/analyze",), "takes 1 argument"),
        (("/editorbot/analyze", 3), "must be a string"),
        (("/editorbot/analyze", "relative.wav"), "must be absolute"),
        (("/editorbot/analyze", "/etc/hostname"), "outside the allowed folders"),
        (("/editorbot/analyze", str(tmp_path / "link.wav")), "outside the allowed folders"),
        (("/editorbot/analyze", str(tmp_path / "nope.wav")), "no such file"),
        (("/editorbot/analyze", str(tmp_path)), "not a regular file"),
        (("/editorbot/edit", str(song), "{bad json"), "not valid JSON"),
        (("/editorbot/edit", str(song), '{"volume": 11}'), "unknown option"),
        (("/editorbot/edit", str(song), '{"target_duration_s": -1}'), "target_duration_s: must be > 0"),
        (("/editorbot/edit", str(song), '{"model": "/etc/hostname"}'), "outside the allowed folders"),
        (("/editorbot/cancel", "x"), "must be an integer"),
        (("/editorbot/cancel", 12345), "no queued or running job"),
        (("/editorbot/*",), "address patterns are not accepted"),
        (("/other",), "unknown address"),
        (("/editorbot/analyze", "/" + "a" * 5000), "at most 4096"),
    ]
    with OscClient("127.0.0.1", server.port) as c:
        for message, expected in cases:
            replies = list(c.request(*message, timeout=3.0))
            assert replies and replies[-1][0] == "/editorbot/error", (message, replies)
            assert expected in replies[-1][1][0], (message, replies)
        assert list(c.request("/editorbot/ping", 1, timeout=2.0)) == [("/editorbot/pong", [1])]


def test_send_command_and_sigterm_shutdown(tmp_path: Path) -> None:
    song = song_file(41, 20.0)
    log_path = tmp_path / "serve.log"
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen(
            [EDITORBOT, "serve", "--port", "0", "--out-dir", str(tmp_path / "out"), "--allow", str(song.parent),
             "--log-format", "json"],
            stderr=log_file,
        )  # fmt: skip
        try:
            port = wait_for_port(log_path, proc)
            out = subprocess.run([EDITORBOT, "send", "ping", "5", "--port", str(port)], capture_output=True, text=True, timeout=30)
            assert out.returncode == 0 and out.stdout.strip() == "/editorbot/pong 5"
            out = subprocess.run(
                [EDITORBOT, "send", "/editorbot/analyze", str(song), "--port", str(port), "--timeout", "60"],
                capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            lines = out.stdout.strip().splitlines()
            assert out.returncode == 0, out
            assert lines[0].startswith("/editorbot/queued") and lines[-1].startswith("/editorbot/done")
            assert any(line.startswith("/editorbot/progress") for line in lines)
            out = subprocess.run([EDITORBOT, "send", "analyze", "/etc/hostname", "--port", str(port)], capture_output=True, text=True, timeout=30)
            assert out.returncode == 2 and out.stdout.startswith("/editorbot/error")
        finally:
            proc.terminate()
            rc = proc.wait(20)
    assert rc == 0
    events = [json.loads(line).get("event") for line in log_path.read_text().splitlines() if line.startswith("{")]
    assert events[-1] == "stopped" and "signal" in events


def test_send_times_out_without_a_server() -> None:
    import socket

    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))  # a port nobody answers on
    port = s.getsockname()[1]
    try:
        out = subprocess.run([EDITORBOT, "send", "ping", "--port", str(port), "--timeout", "0.5"], capture_output=True, text=True, timeout=30)
    finally:
        s.close()
    assert out.returncode == 1 and "no reply" in out.stderr


def wait_for_port(log_path: Path, proc: subprocess.Popen, timeout: float = 30.0) -> int:
    """The port a ``serve --port 0 --log-format json`` subprocess logged as listening."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log_path.read_text().splitlines():
            if line.startswith("{"):
                doc = json.loads(line)
                if doc.get("event") == "listening":
                    return int(doc["port"])
        if proc.poll() is not None:
            raise AssertionError(f"serve exited {proc.returncode}: {log_path.read_text()[-2000:]}")
        time.sleep(0.05)
    raise AssertionError("serve did not log its port")


def test_log_lines_reach_stderr_while_a_decoder_is_quieted(capfd: pytest.CaptureFixture[str]) -> None:
    """``serve`` logs to a copy of fd 2: while engine.audio sends fd 2 to the debug log
    around a decoder call, the other threads' log lines still reach stderr."""
    import os

    from editorbot.bridge.commands.serve import _log_to_a_copy_of_fd2
    from editorbot.engine.audio import _native_stderr_to_log

    handler = logging.StreamHandler(os.fdopen(2, "w", closefd=False))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        _log_to_a_copy_of_fd2()
        with _native_stderr_to_log("song.mp3"):
            logging.getLogger("editorbot.bridge.server").warning("logged while a decoder runs")
    finally:
        root.removeHandler(handler)
        handler.close()
    assert "logged while a decoder runs" in capfd.readouterr().err
