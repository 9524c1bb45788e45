"""Hostile input to ``editorbot serve`` (a real subprocess on loopback): 1,000
malformed packets (random bytes, broken OSC, wrong types and counts, huge
strings, deep bundles, paths outside the allowed folders, files that are not
audio, unknown addresses). Each gets an ``/editorbot/error`` reply or is
dropped with a log line; a ping after every packet is answered; the server's
peak RSS stays flat."""

from __future__ import annotations

import json
import logging
import os
import random
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path

from bridge.osc_client import OscClient, encode
from tests.bridge.test_server import EDITORBOT, wait_for_port

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
        lambda: encode("/editorbot/edit", [str(text_file), '{"target_duration": NaN}']),
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
