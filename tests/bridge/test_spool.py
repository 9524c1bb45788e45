"""bridge.spool: claiming by rename, answers written atomically, heartbeat,
cancel files, clients that went away, stale clean-up, orphaned work, the
edit handler (pure DP retimer on a real song) and ``python -m editorbot.bridge.spool``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from editorbot.bridge.spool import (
    HEARTBEAT_SCHEMA,
    REQUEST_SCHEMA,
    RESULT_SCHEMA,
    Spool,
    SpoolJob,
    edit_handler,
    parse_request,
    run_spool,
)
from editorbot.engine.errors import BadInput
from editorbot.engine.exporters.tsv import read_tsv
from editorbot.engine.plan import load_plan, plan_from_dict

ROOT = Path(__file__).resolve().parents[2]
#: A file inside the allowed folders, for requests whose handler never reads it.
SOME_FILE = str(Path(__file__).resolve())


@pytest.fixture(autouse=True)
def _allowed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Requests here name files in the repository, the test's folder and the synthesized songs' folder."""
    from tests.export import _ROOT as songs

    monkeypatch.setattr("editorbot.bridge.spool.default_roots", lambda: [ROOT, tmp_path, songs])


def request(request_id: str, **fields: Any) -> dict[str, Any]:
    return {"schema": REQUEST_SCHEMA, "id": request_id, "kind": "edit", "audio": SOME_FILE, **fields}


def put(spool: Spool, request_id: str, body: Any) -> Path:
    """Submit as a client does: dot-named temp file, then rename into the inbox."""
    tmp = spool.inbox / f".{request_id}.tmp"
    tmp.write_text(body if isinstance(body, str) else json.dumps(body))
    path = spool.inbox / f"{request_id}.json"
    os.rename(tmp, path)
    return path


def result(spool: Spool, request_id: str) -> dict[str, Any]:
    return json.loads((spool.outbox / f"{request_id}.json").read_text())


def fake_plan() -> dict[str, Any]:
    return {"segments": [{"src_start_s": 0.0, "src_end_s": 1.0, "dst_start_s": 0.0}], "markers": []}


def test_parse_request_names_the_bad_field() -> None:
    ok = parse_request(request("a1", start_s=2, end_s=5.5, keep=[[1, 2]], target_duration_s=3), "a1")
    assert (ok.edit.start_s, ok.edit.end_s, ok.edit.keep, ok.edit.target_duration_s) == (2.0, 5.5, ((1.0, 2.0),), 3.0)
    bad = {
        "schema": ({"schema": "x"}, "schema"),
        "id": ({"id": "other"}, "id"),
        "kind": ({"kind": "dance"}, "kind"),
        "audio": ({"audio": ""}, "audio"),
        "span": ({"start_s": 5, "end_s": 2}, "end_s"),
        "keep": ({"keep": [[3, 1]]}, "keep"),
        "unknown": ({"colour": "red"}, "colour"),
        "dp": ({"model": "dp"}, "model"),
        "nan": ({"target_duration_s": "long"}, "target_duration_s"),
        "zero": ({"target_duration_s": 0}, "target_duration_s"),
    }
    for name, (fields, word) in bad.items():
        with pytest.raises(ValueError, match=f"^{word}: "):
            parse_request({**request("a1"), **fields}, "a1")
        assert name


def test_claim_is_by_rename_oldest_first_and_only_once(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    other = Spool(tmp_path)  # a second server on the same folder
    put(spool, "first", request("first"))
    os.utime(spool.inbox / "first.json", (time.time() - 5, time.time() - 5))
    put(spool, "second", request("second"))
    (spool.inbox / ".third.tmp").write_text("{half")  # a client still writing: ignored
    job = spool.claim()
    assert job is not None and job.id == "first"
    assert (spool.work / "first.json").exists() and not (spool.inbox / "first.json").exists()
    job2 = other.claim()
    assert job2 is not None and job2.id == "second"
    assert spool.claim() is None and other.claim() is None
    assert (spool.inbox / ".third.tmp").exists()


def test_malformed_requests_get_an_error_result(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    put(spool, "trunc", '{"schema": "editorbot.spool.req')
    put(spool, "wrong", request("wrong", keep="3-6"))
    assert spool.claim() is None
    for rid, words in (("trunc", "not JSON"), ("wrong", "keep")):
        r = result(spool, rid)
        assert r["schema"] == RESULT_SCHEMA and r["status"] == "error" and words in r["message"]
        assert "\n" not in r["message"]
    assert list(spool.work.iterdir()) == []


def test_answers_are_atomic_and_clean_up_work(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    put(spool, "ok1", request("ok1"))
    seen: list[str] = []

    def handler(job: SpoolJob) -> dict[str, Any]:
        job.progress(0.5, "half")
        progress = json.loads(job.out(".progress.json").read_text())
        seen.append(progress["stage"])
        job.scratch(".excerpt.wav").write_bytes(b"x")
        return {"plan": fake_plan(), "plan_path": "p"}

    job = spool.claim()
    assert job is not None
    spool.run(job, handler)
    r = result(spool, "ok1")
    assert r["status"] == "done" and r["n_segments"] == 1 and r["n_markers"] == 0 and r["source_offset_s"] == 0.0
    assert seen == ["half"]
    assert sorted(p.name for p in spool.outbox.iterdir()) == ["ok1.json"]  # no temp or progress files left
    assert list(spool.work.iterdir()) == []


def test_handler_errors_become_error_results(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    for rid, exc in (("bad", BadInput("/x.wav", "not audio")), ("boom", RuntimeError("kaput"))):
        put(spool, rid, request(rid))
        job = spool.claim()
        assert job is not None

        def handler(job: SpoolJob, exc: Exception = exc) -> dict[str, Any]:
            raise exc

        spool.run(job, handler)
    assert result(spool, "bad")["message"] == "/x.wav: not audio"
    assert "kaput" in result(spool, "boom")["message"]


def test_cancel_file_and_gone_client_drop_the_job(tmp_path: Path) -> None:
    clock = [1000.0]
    spool = Spool(tmp_path, client_timeout_s=30, clock=lambda: clock[0])
    # cancelled while waiting: the sweep removes it and the cancel file
    put(spool, "c1", request("c1"))
    (spool.cancel_dir / "c1").write_text("1")
    os.utime(spool.inbox / "c1.json", (clock[0], clock[0]))
    assert "c1.json" in spool.sweep()
    assert not (spool.cancel_dir / "c1").exists() and spool.claim() is None
    # cancelled while running: no result, everything of it removed
    put(spool, "c2", request("c2"))
    job = spool.claim()
    assert job is not None

    def handler(job: SpoolJob) -> dict[str, Any]:
        (spool.cancel_dir / job.id).write_text("1")
        job.check_cancel()
        raise AssertionError("check_cancel did not raise")

    assert spool.run(job, handler) is None
    assert not any(p.name.startswith("c2") for d in (spool.outbox, spool.work, spool.cancel_dir) for p in d.iterdir())
    # client gone: its alive file was last written more than client_timeout_s ago
    put(spool, "c3", request("c3"))
    alive = spool.alive / "c3"
    alive.write_text("1")
    os.utime(alive, (clock[0] - 10, clock[0] - 10))
    os.utime(spool.inbox / "c3.json", (clock[0], clock[0]))
    assert spool.sweep() == [] and not spool.is_cancelled("c3")
    clock[0] += 25
    assert spool.is_cancelled("c3")
    assert "c3.json" in spool.sweep()


def test_stale_requests_and_leftovers_are_removed(tmp_path: Path) -> None:
    clock = [time.time()]
    spool = Spool(tmp_path, max_age_s=600, clock=lambda: clock[0])
    put(spool, "old", request("old"))
    put(spool, "new", request("new"))
    spool.write_result_file("gone.json", {})  # the spool's own result
    (spool.outbox / ".gone.json.0123456789ab.partial.json").write_text("{")  # its temp file, left by a crash
    (spool.outbox / "mine.wav").write_text("a user's file")  # not the spool's: never removed
    long_ago = clock[0] - 700
    for name in ("gone.json", ".gone.json.0123456789ab.partial.json", "mine.wav"):
        os.utime(spool.outbox / name, (long_ago, long_ago))
    os.utime(spool.inbox / "old.json", (long_ago, long_ago))
    removed = spool.sweep()
    assert sorted(removed) == [".gone.json.0123456789ab.partial.json", "gone.json", "old.json"]
    assert (spool.inbox / "new.json").exists() and (spool.outbox / "mine.wav").exists()


def test_orphaned_work_goes_back_to_the_inbox(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    put(spool, "o1", request("o1"))
    job = spool.claim()
    assert job is not None
    job.scratch(".excerpt.wav").write_bytes(b"x")  # the spool's scratch file: removed
    (spool.work / "notes.txt").write_text("not the spool's")  # never removed
    restarted = Spool(tmp_path)
    assert restarted.requeue_orphans() == 1
    assert (spool.inbox / "o1.json").exists() and [p.name for p in spool.work.iterdir()] == ["notes.txt"]


def test_run_spool_beats_every_second_while_a_job_runs(tmp_path: Path) -> None:
    release = threading.Event()

    def slow(job: SpoolJob) -> dict[str, Any]:
        release.wait(10)
        return {"plan": fake_plan()}

    stop = threading.Event()
    thread = threading.Thread(target=run_spool, args=(tmp_path, slow), kwargs={"stop": stop, "poll_s": 0.05})
    thread.start()
    try:
        spool = Spool(tmp_path)
        put(spool, "hb", request("hb"))
        beats = []
        deadline = time.monotonic() + 10
        while len({b["time"] for b in beats}) < 3 and time.monotonic() < deadline:
            try:
                beats.append(json.loads(spool.heartbeat.read_text()))
            except (FileNotFoundError, json.JSONDecodeError):
                pass
            time.sleep(0.1)
        times = sorted({b["time"] for b in beats})
        assert len(times) >= 3, beats
        assert all(b["schema"] == HEARTBEAT_SCHEMA and b["pid"] == os.getpid() for b in beats)
        assert any(b["busy"] == "hb" for b in beats)
        assert 0.8 <= times[-1] - times[-2] <= 1.6
        release.set()
        deadline = time.monotonic() + 10
        while not (spool.outbox / "hb.json").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert result(spool, "hb")["status"] == "done"
    finally:
        release.set()
        stop.set()
        thread.join(10)
    assert not thread.is_alive() and not (tmp_path / "heartbeat").exists()


def test_edit_handler_dp_on_part_of_a_song(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.export import song_file

    monkeypatch.setenv("EDITORBOT_CACHE", str(tmp_path / "cache"))
    song = song_file(41, 20.0)
    spool = Spool(tmp_path / "spool")
    put(spool, "dp1", request("dp1", audio=str(song), start_s=4.0, end_s=16.0, target_duration_s=9.0, keep=[[1.0, 3.0]], model="dp"))
    job = spool.claim()
    assert job is not None
    spool.run(job, edit_handler)
    r = result(spool, "dp1")
    assert r["status"] == "done", r["message"]
    plan = plan_from_dict(r["plan"])
    assert abs(r["source_offset_s"] - 4.0) < 1e-4
    assert abs(plan.source.duration_s - 12.0) < 1e-3
    assert abs(plan.duration_s - 9.0) <= 0.75  # within a beat at the song's tempo
    assert load_plan(r["plan_path"]).segments == plan.segments
    assert len(read_tsv(r["tsv_path"]).segments) == r["n_segments"] == len(plan.segments)
    # without a target the retimer has nothing to aim at: one line naming the problem
    put(spool, "dp2", request("dp2", audio=str(song), model="dp"))
    assert spool.claim() is None  # refused when read, as every bad field
    assert result(spool, "dp2")["status"] == "error" and "model: the dp retimer needs target_duration_s" in result(spool, "dp2")["message"]
    put(spool, "dp3", request("dp3", audio=str(tmp_path / "missing.wav"), model="dp", target_duration_s=5.0))
    assert spool.claim() is None  # refused when read, as every path outside or missing
    assert result(spool, "dp3")["message"].endswith("missing.wav: no such file")


def test_channel_files_are_the_songs_further_channels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ardour keeps a stereo region as one mono file per channel: ``audio`` is channel 0 and
    ``channel_files`` the others; the edit runs on them stacked, the plan names a stereo excerpt."""
    import soundfile as sf

    from tests.export import song_file

    monkeypatch.setenv("EDITORBOT_CACHE", str(tmp_path / "cache"))
    samples, rate = sf.read(song_file(41, 20.0), dtype="float32", always_2d=True)
    left, right = tmp_path / "song-0.wav", tmp_path / "song-1.wav"
    sf.write(left, samples[:, 0], rate, subtype="FLOAT")
    sf.write(right, samples[:, 1], rate, subtype="FLOAT")
    spool = Spool(tmp_path / "spool")
    put(spool, "ch1", request("ch1", audio=str(left), channel_files=[str(right)], start_s=4.0, end_s=16.0,
                              target_duration_s=9.0, model="dp"))  # fmt: skip
    job = spool.claim()
    assert job is not None and job.request.channel_files == (str(right),)
    spool.run(job, edit_handler)
    r = result(spool, "ch1")
    assert r["status"] == "done", r["message"]
    plan = plan_from_dict(r["plan"])
    assert plan.source.channels == 2 and abs(r["source_offset_s"] - 4.0) < 1e-4
    assert abs(plan.source.duration_s - 12.0) < 1e-3 and plan.source.sample_rate == rate
    # a channel outside the allowed folders, a non-list, or one of another length: refused, one line
    with pytest.raises(ValueError, match="^channel_files: "):
        parse_request(request("c2", channel_files=["/etc/passwd"]), "c2")
    with pytest.raises(ValueError, match="^channel_files: must be a list"):
        parse_request(request("c3", channel_files=str(right)), "c3")
    short = tmp_path / "short.wav"
    sf.write(short, samples[: rate * 2, 1], rate, subtype="FLOAT")
    put(spool, "ch4", request("ch4", audio=str(left), channel_files=[str(short)], target_duration_s=9.0, model="dp"))
    job = spool.claim()
    assert job is not None
    spool.run(job, edit_handler)
    assert result(spool, "ch4")["status"] == "error"
    assert result(spool, "ch4")["message"].endswith(f"{short}: channel file differs from {left} in sample rate or length")


def test_module_entry_serves_until_interrupted(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "editorbot.bridge.spool", "--spool", str(tmp_path / "sp")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # a test run started in the background inherits SIGINT ignored; the server must see it
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    try:
        heartbeat = tmp_path / "sp" / "heartbeat"
        deadline = time.monotonic() + 30
        while not heartbeat.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        beat = json.loads(heartbeat.read_text())
        assert beat["pid"] == proc.pid and abs(beat["time"] - time.time()) < 5
        put(Spool(tmp_path / "sp"), "m1", '{"not": "a request"')
        deadline = time.monotonic() + 10
        while not (tmp_path / "sp" / "outbox" / "m1.json").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert json.loads((tmp_path / "sp" / "outbox" / "m1.json").read_text())["status"] == "error"
    finally:
        proc.send_signal(2)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    bad = subprocess.run([sys.executable, "-m", "editorbot.bridge.spool", "--spool", str(heartbeat)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "cannot use as a spool folder" in bad.stderr


def test_spool_jobs_run_on_the_osc_servers_worker(tmp_path: Path) -> None:
    """``editorbot serve --spool``: spool requests go through the OSC server's job queue."""
    from editorbot.bridge.server import Server, ServerConfig
    from editorbot.bridge.spool import start_spool_thread

    server = Server(ServerConfig(port=0, out_dir=tmp_path / "out", allowed_roots=[tmp_path])).start()
    stop = threading.Event()
    ran_on: list[str] = []

    def handler(job: SpoolJob) -> dict[str, Any]:
        ran_on.append(threading.current_thread().name)
        return {"plan": fake_plan()}

    try:
        thread = start_spool_thread(tmp_path / "sp", handler, stop=stop, submit=server.run_on_worker)
        spool = Spool(tmp_path / "sp")
        put(spool, "w1", request("w1"))
        put(spool, "w2", request("w2"))
        deadline = time.monotonic() + 20
        while not (spool.outbox / "w2.json").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert result(spool, "w1")["status"] == result(spool, "w2")["status"] == "done"
        assert ran_on == ["editorbot-job-worker"] * 2
    finally:
        stop.set()
        thread.join(10)
        server.close()


def test_serve_with_spool_flag(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "editorbot.bridge", "serve", "--port", "0", "--out-dir", str(tmp_path / "out"), "--spool", str(tmp_path / "sp")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        heartbeat = tmp_path / "sp" / "heartbeat"
        deadline = time.monotonic() + 60
        while not heartbeat.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert json.loads(heartbeat.read_text())["pid"] == proc.pid
        put(Spool(tmp_path / "sp"), "s1", request("s1", kind="dance"))
        while not (tmp_path / "sp" / "outbox" / "s1.json").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "kind" in json.loads((tmp_path / "sp" / "outbox" / "s1.json").read_text())["message"]
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert not heartbeat.exists()
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    bad = subprocess.run(
        [sys.executable, "-m", "editorbot.bridge", "serve", "--port", "0", "--spool", str(a_file)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert bad.returncode == 2 and "--spool: cannot use as a spool folder" in bad.stderr, bad.stderr


def test_edit_handler_runs_the_edit_pipeline_with_a_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.export import song_file, tiny_model

    monkeypatch.setenv("EDITORBOT_CACHE", str(tmp_path / "cache"))
    model, _ = tiny_model()
    song = song_file(41, 20.0)
    spool = Spool(tmp_path / "spool")
    put(spool, "pl1", request("pl1", audio=str(song), model=str(model), target_duration_s=15.0))
    job = spool.claim()
    assert job is not None
    spool.run(job, edit_handler)
    r = result(spool, "pl1")
    assert r["status"] == "done", r["message"]
    plan = plan_from_dict(r["plan"])
    assert plan.model is not None and plan.model.name == "tiny"
    assert r["source_offset_s"] == 0.0 and plan.source.path == str(song)
    assert Path(r["audio_path"]).stat().st_size > 0 and Path(r["audio_path"]).parent == spool.outbox
    assert len(read_tsv(r["tsv_path"]).segments) == r["n_segments"] == len(plan.segments)
    assert load_plan(r["plan_path"]).segments == plan.segments
