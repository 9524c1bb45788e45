"""The ableton dialect against a fake AbletonOSC, written from AbletonOSC's README.

The fake keeps what the dialect touches of a Live set: tempo, song time (beats)
and cue points (name, time), and answers the README's messages:

- ``/live/song/get/tempo`` -> ``tempo_bpm``
- ``/live/song/get/current_song_time`` -> ``current_song_time``;
  ``/live/song/set/current_song_time beats``
- ``/live/song/get/cue_points`` -> ``name, time, ...``
- ``/live/song/cue_point/add_or_delete``: add a cue point under the cursor,
  or, if one exists there, delete it
- ``/live/song/cue_point/set/name index name`` (the README lists the index;
  AbletonOSC's song.py takes the name as the second argument)

Replies go to the sender's address (AbletonOSC replies to the sender's IP on
11001, and the dialect sends from its socket bound on that port). Tests are
send-and-await: each query waits for its reply, bounded by a timeout, and the
server thread is shut down after each test (and by a timer if a test hangs).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_server import BlockingOSCUDPServer

from editorbot.bridge.dialects import AbletonDialect, AbletonOscError, JobResult
from editorbot.bridge.osc_client import OscClient, encode
from editorbot.engine.plan import EditPlan, Grid, Marker, Segment, Source

#: A fake server still up after this many seconds shuts itself down.
FAKE_LIFETIME_S = 10.0


class FakeLive:
    """The part of a Live set AbletonOSC exposes for cue points, behind a UDP OSC server on loopback."""

    def __init__(self, tempo: float = 120.0, cues: list[tuple[str, float]] | None = None, silent: bool = False) -> None:
        self.tempo = tempo
        self.song_time = 0.0
        self.cues: list[list[Any]] = [[n, t] for n, t in (cues or [])]
        self.received: list[tuple[str, tuple[Any, ...]]] = []
        d = Dispatcher()
        if not silent:
            d.map("/live/song/*", self._on, needs_reply_address=True)
        self.server = BlockingOSCUDPServer(("127.0.0.1", 0), d)
        self.address = self.server.server_address[:2]

    def _reply(self, to: tuple[str, int], address: str, *args: Any) -> None:
        self.server.socket.sendto(encode(address, args), to)

    def _on(self, client: tuple[str, int], address: str, *args: Any) -> None:
        self.received.append((address, args))
        if address == "/live/song/get/tempo":
            self._reply(client, address, self.tempo)
        elif address == "/live/song/get/current_song_time":
            self._reply(client, address, self.song_time)
        elif address == "/live/song/set/current_song_time":
            self.song_time = float(args[0])
        elif address == "/live/song/get/cue_points":
            self._reply(client, address, *[x for cue in self.cues for x in cue])
        elif address == "/live/song/cue_point/add_or_delete":
            here = [c for c in self.cues if abs(c[1] - self.song_time) < 1e-9]
            if here:
                self.cues.remove(here[0])
            else:
                self.cues.append(["", self.song_time])  # appended, not sorted: the dialect must look indices up
        elif address == "/live/song/cue_point/set/name":
            self.cues[int(args[0])][0] = str(args[1])
        else:
            self._reply(client, "/live/error", f"unknown address {address}")


@pytest.fixture
def live() -> Iterator[FakeLive]:
    fake = FakeLive(cues=[("user verse", 64.0), ("user chorus", 3.0)])
    thread = threading.Thread(target=fake.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    guard = threading.Timer(FAKE_LIFETIME_S, fake.server.shutdown)
    guard.start()
    try:
        yield fake
    finally:
        guard.cancel()
        fake.server.shutdown()
        fake.server.server_close()
        thread.join(2.0)


def plan_with_markers() -> EditPlan:
    return EditPlan(
        source=Source("/x/song.wav", "0" * 64, 48000, 2, 30.0),
        grid=Grid(90.0, [0.0], [0]),
        segments=[Segment(0.0, 30.0, 0.0)],
        markers=[
            Marker(10.0, "cut\nhere"),
            Marker(0.5, "intro", end_s=4.0),
            Marker(1.5, "on the user's cue"),  # 3 beats at 120 BPM: a cue is already there
            Marker(10.0, "fade"),  # same time as "cut here": one cue, both names
        ],
    )


def test_cue_points_land_at_the_plan_marker_times_with_their_names(live: FakeLive) -> None:
    d = AbletonDialect(reply_port=0, timeout_s=2.0)
    placed = d.place_locators(plan_with_markers(), live.address)
    # seconds -> beats at Live's tempo (120 BPM, not the plan grid's 90): 0.5 s = 1 beat, 10 s = 20 beats
    assert sorted(placed, key=lambda c: c[1]) == [("intro", 1.0), ("cut here / fade", 20.0)]
    assert sorted(map(tuple, live.cues), key=lambda c: c[1]) == [
        ("intro", 1.0), ("user chorus", 3.0), ("cut here / fade", 20.0), ("user verse", 64.0),
    ]  # fmt: skip
    # the user's cue at beat 3 was not toggled away, and nothing was added twice at beat 20
    adds = [a for a, _ in live.received if a == "/live/song/cue_point/add_or_delete"]
    assert len(adds) == 2 and live.received[0][0] == "/live/song/get/tempo"


def test_messages_places_cues_through_the_bound_daw_and_tells_the_client(live: FakeLive) -> None:
    live.tempo = 60.0
    d = AbletonDialect(reply_port=0, timeout_s=2.0)
    d.bind_daw(live.address)
    msgs = d.messages(JobResult(plan=plan_with_markers()))
    assert {m.target for m in msgs} == {"client"} and len(msgs) == 4
    assert ("intro", 0.5) in map(tuple, live.cues) and ("cut here / fade", 10.0) in map(tuple, live.cues)


def test_no_reply_is_a_clear_error_and_changes_nothing() -> None:
    fake = FakeLive(silent=True)
    thread = threading.Thread(target=fake.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        with pytest.raises(AbletonOscError, match="no reply to /live/song/get/tempo"):
            AbletonDialect(reply_port=0, timeout_s=0.2).place_locators(plan_with_markers(), fake.address)
        assert fake.cues == []
    finally:
        fake.server.shutdown()
        fake.server.server_close()
        thread.join(2.0)


def test_without_a_bound_daw_only_the_client_hears(live: FakeLive) -> None:
    msgs = AbletonDialect(reply_port=0).messages(JobResult(plan=plan_with_markers()))
    assert len(msgs) == 4 and live.received == []


def test_unreachable_live_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as nobody:
        nobody.bind(("127.0.0.1", 0))  # a port where nothing answers
        d = AbletonDialect(reply_port=0, timeout_s=0.1)
        d.bind_daw(nobody.getsockname())
        msgs = d.messages(JobResult(plan=plan_with_markers()))
    assert len(msgs) == 4 and "no cue points placed" in caplog.text


def test_a_render_job_through_the_server_places_cue_points(live: FakeLive, tmp_path: Path) -> None:
    import hashlib

    import soundfile as sf

    from editorbot.engine.plan import save_plan
    from tests.bridge.test_server import collect, start_server, submit
    from tests.export import song_file

    song = song_file(41, 6.0)
    info = sf.info(str(song))
    plan = EditPlan(
        source=Source(
            str(song), hashlib.sha256(song.read_bytes()).hexdigest(), info.samplerate, info.channels, info.duration
        ),
        grid=Grid(120.0, [0.0], [0]),
        segments=[Segment(0.0, 5.0, 0.0)],
        markers=[Marker(0.5, "intro"), Marker(2.0, "drop")],
    )
    plan_path = tmp_path / "p.plan.json"
    save_plan(plan, plan_path)
    srv = start_server(tmp_path, [tmp_path, song.parent], daw="ableton", daw_port=live.address[1])
    srv.dialect.reply_port = 0  # type: ignore[attr-defined]
    try:
        with OscClient("127.0.0.1", srv.port) as c:
            replies = collect(c, until_done_of=submit(c, "/editorbot/render", str(plan_path)))
    finally:
        srv.close()
    assert replies[-1][1] == "/editorbot/done", replies[-1]
    assert sorted(map(tuple, live.cues), key=lambda c: c[1])[:3] == [
        ("intro", 1.0),
        ("user chorus", 3.0),
        ("drop", 4.0),
    ]
