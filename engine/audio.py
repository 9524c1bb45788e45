"""Audio files in and out (DESIGN sections 2, 6 and 11).

``load_audio`` decodes wav, flac, ogg, mp3 and aiff into an ``Audio`` whose
``samples`` are float32 ``(n_channels, n_samples)`` at the file's own rate
(rendering needs the original), and turns every kind of bad input into one
``BadInput`` line. ``analysis_mono`` makes the 22,050 Hz mono copy that the
beat grid and features read. ``write_audio`` writes atomically and never over
a protected path.

Decoders: pedalboard.io.AudioFile first, soundfile as fallback, except for
FLAC, where soundfile goes first because libFLAC reports a cut-off stream
while pedalboard pads it with zeros. A truncated WAV/AIFF is found from its
chunk headers and a truncated MP3 from its Xing header, for the same reason.
An Ogg stream carries no up-front length, so a cut-off Ogg file decodes as a
shorter song.

libmpg123 (soundfile's MP3 decoder) writes notes such as "Illegal
Audio-MPEG-Header" straight to file descriptor 2; ``_native_stderr_to_log``
points fd 2 at a temp file around soundfile's calls and logs what it caught
at debug level, so bad input still prints only editorbot's one line.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import stat
import struct
import sys
import tempfile
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from editorbot.engine.atomic import atomic_path, check_destination
from editorbot.engine.errors import BadInput

log = logging.getLogger(__name__)

ANALYSIS_SR = 22050
MIN_SAMPLE_RATE = 8_000
MAX_SAMPLE_RATE = 192_000
MAX_CHANNELS = 8
MIN_DURATION_S = 1.0
DEFAULT_MAX_DURATION_S = 30 * 60.0
SILENCE_DBFS = -90.0
# Columns decoded/checked per step: bounds the temporaries of the NaN and
# peak checks on long files (2**20 frames x 8 channels x 4 B = 32 MiB).
_CHUNK_FRAMES = 1 << 20
# mpg123/LAME convention: the decoder's own delay on top of the encoder delay
# stored in the LAME tag (pedalboard's decoder shows exactly this offset).
_MP3_DECODER_DELAY = 529
# fd 2 is process-wide: one redirection at a time.
_STDERR_LOCK = threading.Lock()
# Most decoder chatter kept for the debug log (bytes).
_CHATTER_BYTES = 4096


@contextlib.contextmanager
def _native_stderr_to_log(path: str, *, enabled: bool = True) -> Iterator[None]:
    """Send what native code writes to fd 2 in the block to the debug log instead.

    While the block runs, other threads' writes to fd 2 land in the log too
    (at debug level), so callers keep the block to the decoder calls.
    """
    if not enabled:
        yield
        return
    with _STDERR_LOCK:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError, AttributeError):  # no fd 2 (closed, or an embedding host)
            yield
            return
        with tempfile.TemporaryFile() as caught:
            os.dup2(caught.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
                os.close(saved)
                caught.seek(0)
                text = caught.read(_CHATTER_BYTES).decode("utf-8", "replace").strip()
                if text:
                    log.debug("%s: the decoder wrote: %s", path, " | ".join(text.splitlines()))


@dataclass
class Audio:
    """Decoded audio at its original rate.

    Attributes
    ----------
    samples : np.ndarray
        ``(n_channels, n_samples)`` float32, nominal range [-1, 1].
    sample_rate : int
        Samples per second per channel (Hz).
    path : str or None
        The file it came from, or None for generated audio.
    """

    samples: np.ndarray
    sample_rate: int
    path: str | None = None

    @property
    def n_channels(self) -> int:
        return int(self.samples.shape[0])

    @property
    def n_samples(self) -> int:
        return int(self.samples.shape[1])

    @property
    def duration_s(self) -> float:
        """Length in seconds."""
        return self.n_samples / float(self.sample_rate)


# --------------------------------------------------------------------------
# Loading


def load_audio(path: str | os.PathLike, *, max_duration_s: float = DEFAULT_MAX_DURATION_S) -> Audio:
    """Decode an audio file and validate it as DESIGN section 11 asks.

    Parameters
    ----------
    path : str or os.PathLike
        A wav, flac, ogg, mp3 or aiff file (the format is read from the
        content, not the extension).
    max_duration_s : float
        Longest accepted file in seconds (default 30 min); checked from the
        header before decoding.

    Returns
    -------
    Audio
        Float32 ``(n_channels, n_samples)`` samples at the file's own rate.

    Raises
    ------
    BadInput
        Missing, directory, unreadable, empty, truncated, not audio, outside
        1-8 channels or 8-192 kHz, shorter than 1 s, longer than
        ``max_duration_s``, NaN/inf samples, or silent (peak below -90 dBFS).

    Examples
    --------
    >>> audio = load_audio("song.flac")  # doctest: +SKIP
    >>> audio.samples.shape, audio.sample_rate  # doctest: +SKIP
    ((2, 10584000), 44100)
    """
    path = os.fspath(path)
    size = _check_regular_file(path)
    head = _read_head(path)
    fmt = sniff_format(head)
    log.debug("%s: %d bytes, sniffed format %s", path, size, fmt)

    if fmt in ("wav", "aiff"):
        problem = _riff_aiff_truncation(path, fmt, size)
        if problem:
            raise BadInput(path, problem)
    mp3_info = _mp3_header_info(path, size) if fmt == "mp3" else None
    if mp3_info is not None and mp3_info.truncated:
        raise BadInput(path, mp3_info.truncated)

    decoders = (_decode_soundfile, _decode_pedalboard) if fmt == "flac" else (_decode_pedalboard, _decode_soundfile)
    open_errors: list[str] = []
    for decode in decoders:
        try:
            samples, sample_rate, decoder = decode(path, max_duration_s, mp3_info)
        except _CannotOpen as err:
            open_errors.append(str(err))
            continue
        break
    else:
        log.debug("%s: no decoder opened it: %s", path, "; ".join(open_errors))
        raise BadInput(path, _not_audio_problem(head, fmt))

    log.debug("%s: decoded by %s: %s", path, decoder, samples.shape)
    _check_samples(path, samples, sample_rate)
    return Audio(samples=samples, sample_rate=sample_rate, path=path)


def sniff_format(head: bytes) -> str | None:
    """Container format from a file's first bytes: wav, aiff, flac, ogg, mp3 or None."""
    if len(head) >= 12 and head[:4] in (b"RIFF", b"RF64", b"BW64") and head[8:12] == b"WAVE":
        return "wav"
    if len(head) >= 12 and head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:3] == b"ID3":
        body = head[_id3v2_size(head) :]
        if body[:4] == b"fLaC":
            return "flac"
        return "mp3"
    if len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0:
        return "mp3"
    return None


class _CannotOpen(Exception):
    """A decoder does not recognise the file (the next one may)."""


def _check_regular_file(path: str) -> int:
    """Size in bytes of ``path``; BadInput unless it is a readable, non-empty file."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise BadInput(path, "no such file") from None
    except OSError as err:
        raise BadInput(path, f"cannot read: {err.strerror or err}") from None
    if stat.S_ISDIR(st.st_mode):
        raise BadInput(path, "is a directory, not an audio file")
    if not stat.S_ISREG(st.st_mode):
        raise BadInput(path, "is not a regular file")
    if st.st_size == 0:
        raise BadInput(path, "empty file (0 bytes)")
    if not os.access(path, os.R_OK):
        raise BadInput(path, "cannot read: permission denied")
    return int(st.st_size)


def _read_head(path: str, n_bytes: int = 4096) -> bytes:
    """The first bytes of the file, or of the audio after a leading ID3v2 tag."""
    try:
        with open(path, "rb") as f:
            head = f.read(n_bytes)
            if head[:3] == b"ID3":
                f.seek(_id3v2_size(head))
                after = f.read(n_bytes)
                # Keep an ID3 marker so the sniffer knows a tag was skipped.
                return b"ID3" + bytes(7) + after
            return head
    except OSError as err:
        raise BadInput(path, f"cannot read: {err.strerror or err}") from None


def _not_audio_problem(head: bytes, fmt: str | None) -> str:
    if fmt is not None:
        return f"not a readable {fmt} file: the decoders reject its contents"
    sample = head[:512]
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and all(c.isprintable() or c in "\r\n\t" for c in text):
        return "not an audio file (it looks like text)"
    return "not an audio file (unrecognised format)"


def _check_header(path: str, sample_rate: float, n_channels: int, n_frames: int, max_duration_s: float) -> None:
    """Channel, rate and length limits, checked before decoding a single sample."""
    if n_channels < 1 or n_channels > MAX_CHANNELS:
        raise BadInput(path, f"{n_channels} channels; 1 to {MAX_CHANNELS} are supported")
    if not (MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE):
        raise BadInput(
            path, f"sample rate {sample_rate:g} Hz; {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz are supported"
        )
    if n_frames <= 0:
        raise BadInput(path, "contains no audio samples")
    duration_s = n_frames / sample_rate
    if duration_s > max_duration_s:
        raise BadInput(path, f"too long: {duration_s:.1f} s; the limit is {max_duration_s:g} s")


def _check_samples(path: str, samples: np.ndarray, sample_rate: int) -> None:
    """Length, NaN/inf and silence checks on decoded ``(n_channels, n_samples)`` audio."""
    duration_s = samples.shape[1] / sample_rate
    if duration_s < MIN_DURATION_S:
        raise BadInput(path, f"too short: {duration_s:.2f} s; at least {MIN_DURATION_S:g} s is needed")
    peak = 0.0
    for start in range(0, samples.shape[1], _CHUNK_FRAMES):
        block = samples[:, start : start + _CHUNK_FRAMES]
        if not np.isfinite(block).all():
            bad = start + int(np.argmax(~np.isfinite(block).all(axis=0)))
            raise BadInput(path, f"contains NaN or infinite samples (first at {bad / sample_rate:.3f} s)")
        peak = max(peak, float(np.abs(block).max()))
    if peak < 10.0 ** (SILENCE_DBFS / 20.0):
        level = "-inf" if peak == 0.0 else f"{20.0 * np.log10(peak):.1f}"
        raise BadInput(path, f"silent: peak level {level} dBFS is below {SILENCE_DBFS:g} dBFS")


def _decode_pedalboard(path: str, max_duration_s: float, mp3_info: _Mp3Info | None) -> tuple[np.ndarray, int, str]:
    from pedalboard.io import AudioFile

    try:
        f = AudioFile(path)
    except Exception as err:  # noqa: BLE001 - any open failure means "try the next decoder"
        raise _CannotOpen(f"pedalboard: {err}") from None
    with f:
        sample_rate, n_channels, n_frames = f.samplerate, int(f.num_channels), int(f.frames)
        trim = mp3_info.gapless_trim(n_frames) if mp3_info is not None else None
        _check_header(path, sample_rate, n_channels, trim[1] if trim else n_frames, max_duration_s)
        try:
            samples = f.read(n_frames)
        except Exception as err:  # noqa: BLE001 - a decoder failure mid-stream is bad data
            raise BadInput(path, f"truncated or corrupt audio data ({err})") from None
    if samples.shape[1] < n_frames:
        raise BadInput(path, f"truncated: the header declares {n_frames} samples, {samples.shape[1]} decoded")
    if trim is not None:
        # JUCE's MP3 reader keeps encoder delay and padding; cut to the length
        # the LAME tag declares so mp3 and wav of one song line up.
        start, length = trim
        samples = samples[:, start : start + length]
    return _as_float32_2d(samples), _int_rate(path, sample_rate), "pedalboard"


def _decode_soundfile(path: str, max_duration_s: float, mp3_info: _Mp3Info | None) -> tuple[np.ndarray, int, str]:
    import soundfile as sf

    try:
        with _native_stderr_to_log(path):
            f = sf.SoundFile(path)
    except Exception as err:  # noqa: BLE001 - any open failure means "try the next decoder"
        raise _CannotOpen(f"soundfile: {err}") from None
    with f:
        sample_rate, n_channels, n_frames = f.samplerate, int(f.channels), int(f.frames)
        _check_header(path, sample_rate, n_channels, n_frames, max_duration_s)
        try:
            # only mpg123 talks while decoding; a long FLAC read keeps the terminal
            with _native_stderr_to_log(path, enabled=f.format in ("MPEG", "MP3")):
                data = f.read(n_frames, dtype="float32", always_2d=True)
        except Exception as err:  # noqa: BLE001 - a decoder failure mid-stream is bad data
            raise BadInput(path, f"truncated or corrupt audio data ({err})") from None
    if data.shape[0] < n_frames:
        raise BadInput(path, f"truncated: the header declares {n_frames} samples, {data.shape[0]} decoded")
    # mpg123 (soundfile's mp3 decoder) already trims delay and padding itself.
    return _as_float32_2d(data.T), _int_rate(path, sample_rate), "soundfile"


def _as_float32_2d(samples: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(samples, dtype=np.float32)


def _int_rate(path: str, sample_rate: float) -> int:
    if abs(sample_rate - round(sample_rate)) > 1e-6:
        raise BadInput(path, f"non-integer sample rate {sample_rate} Hz")
    return int(round(sample_rate))


# --------------------------------------------------------------------------
# Container checks that decoders skip (they pad a cut-off file with zeros)


def _riff_aiff_truncation(path: str, fmt: str, file_size: int) -> str | None:
    """A problem line if the WAV/AIFF audio chunk runs past the end of the file."""
    little = fmt == "wav"
    audio_id = b"data" if little else b"SSND"
    u32 = "<I" if little else ">I"
    try:
        with open(path, "rb") as f:
            riff = f.read(12)
            ds64_data_size = None
            pos = 12
            while pos + 8 <= file_size:
                f.seek(pos)
                header = f.read(8)
                chunk_id, size = header[:4], struct.unpack(u32, header[4:8])[0]
                if chunk_id == b"ds64" and riff[:4] in (b"RF64", b"BW64"):
                    ds64 = f.read(16)
                    if len(ds64) == 16:
                        ds64_data_size = struct.unpack("<Q", ds64[8:16])[0]
                if chunk_id == audio_id:
                    if size == 0xFFFFFFFF and ds64_data_size is not None:
                        size = ds64_data_size
                    available = file_size - (pos + 8)
                    if size > available:
                        return f"truncated: the header declares {size} bytes of audio, the file holds {available}"
                    return None
                pos += 8 + size + (size & 1)  # chunks are padded to even sizes
    except OSError as err:
        return f"cannot read: {err.strerror or err}"
    if pos > file_size:
        return "truncated: a chunk runs past the end of the file before any audio data"
    return None  # no audio chunk: the decoders will say what is wrong


def _id3v2_size(head: bytes) -> int:
    """Bytes taken by an ID3v2 tag at the start of ``head`` (0 if none)."""
    if len(head) < 10 or head[:3] != b"ID3":
        return 0
    size = 0
    for b in head[6:10]:
        size = (size << 7) | (b & 0x7F)  # "syncsafe": 7 bits per byte
    footer = 10 if head[5] & 0x10 else 0
    return 10 + size + footer


@dataclass
class _Mp3Info:
    """What an MP3's Xing/Info + LAME header says about its length."""

    n_frames: int | None  # MPEG frames declared by the Xing header
    samples_per_frame: int
    delay: int | None  # encoder delay (samples) from the LAME tag
    padding: int | None  # encoder padding (samples) from the LAME tag
    truncated: str | None

    def gapless_trim(self, n_decoded: int) -> tuple[int, int] | None:
        """``(start, length)`` in samples of the real audio in a raw decode, or None if unknown."""
        if self.n_frames is None or self.delay is None or self.padding is None:
            return None
        length = self.n_frames * self.samples_per_frame - self.delay - self.padding
        start = self.delay + _MP3_DECODER_DELAY
        if length <= 0 or start >= n_decoded:
            return None
        return start, min(length, n_decoded - start)


def _mp3_header_info(path: str, file_size: int) -> _Mp3Info | None:
    """Parse the Xing/Info and LAME headers in the first MPEG frame (None if absent)."""
    try:
        with open(path, "rb") as f:
            head = f.read(10)
            audio_start = _id3v2_size(head)
            f.seek(audio_start)
            frame = f.read(512)
            f.seek(max(0, file_size - 128))
            has_id3v1 = f.read(3) == b"TAG"
    except OSError:
        return None
    if len(frame) < 4 or frame[0] != 0xFF or (frame[1] & 0xE0) != 0xE0:
        return None
    version_bits = (frame[1] >> 3) & 0x3  # 3: MPEG-1, 2: MPEG-2, 0: MPEG-2.5
    layer_bits = (frame[1] >> 1) & 0x3  # 1: layer III
    if layer_bits != 1:
        return None
    samples_per_frame = 1152 if version_bits == 3 else 576
    tag_at = max(frame.find(b"Xing", 4, 64), frame.find(b"Info", 4, 64))
    if tag_at < 0:
        return None
    flags = struct.unpack(">I", frame[tag_at + 4 : tag_at + 8])[0]
    pos = tag_at + 8
    n_frames = n_bytes = None
    if flags & 0x1:
        n_frames = struct.unpack(">I", frame[pos : pos + 4])[0]
        pos += 4
    if flags & 0x2:
        n_bytes = struct.unpack(">I", frame[pos : pos + 4])[0]
        pos += 4
    if flags & 0x4:
        pos += 100  # seek table
    if flags & 0x8:
        pos += 4  # quality
    delay = padding = None
    lame = frame[pos : pos + 24]
    # The LAME extension starts with a 4-letter encoder name (LAME, Lavc, ...);
    # encoder delay and padding are 12 bits each at bytes 21-23.
    if len(lame) == 24 and lame[:4].isalpha():
        delay = (lame[21] << 4) | (lame[22] >> 4)
        padding = ((lame[22] & 0x0F) << 8) | lame[23]
    truncated = None
    if n_bytes:
        # Counting the ID3v2 tag too, so that an encoder that includes it in
        # the byte count is never mistaken for a cut-off file.
        available = file_size - (128 if has_id3v1 else 0)
        if available < n_bytes:
            truncated = f"truncated: the MP3 header declares {n_bytes} bytes of audio, the file holds {available}"
    return _Mp3Info(n_frames, samples_per_frame, delay, padding, truncated)


# --------------------------------------------------------------------------
# Analysis copy


def analysis_mono(audio: Audio, sr: int = ANALYSIS_SR) -> np.ndarray:
    """Mono mix of ``audio`` resampled to ``sr`` Hz.

    Returns
    -------
    np.ndarray
        ``(n,)`` float32 with ``n = round(audio.n_samples * sr / audio.sample_rate)``.
    """
    import soxr

    mono = audio.samples.mean(axis=0, dtype=np.float32)
    if audio.sample_rate != sr:
        mono = soxr.resample(mono, audio.sample_rate, sr, quality="HQ")
    return np.ascontiguousarray(mono, dtype=np.float32)


# --------------------------------------------------------------------------
# Writing

# extension -> (soundfile format, default subtype). WAV is float so renders
# that peak above 0 dBFS are not clipped; FLAC/AIFF have no float, so 24-bit.
_WRITE_FORMATS: dict[str, tuple[str, str | None]] = {
    ".wav": ("WAV", "FLOAT"),
    ".flac": ("FLAC", "PCM_24"),
    ".aif": ("AIFF", "PCM_24"),
    ".aiff": ("AIFF", "PCM_24"),
    ".ogg": ("OGG", "VORBIS"),
    ".mp3": ("MP3", None),
}
_SUBTYPES = {"wav": {16: "PCM_16", 24: "PCM_24", 32: "FLOAT"}, "flac": {16: "PCM_16", 24: "PCM_24"}}
#: Sample formats ``write_audio(subtype=)`` takes, per container (libsndfile names).
SUBTYPES: dict[str, tuple[str, ...]] = {
    "WAV": ("PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"),
    "FLAC": ("PCM_16", "PCM_24"),
    "AIFF": ("PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"),
}
#: Integer sample formats written with TPDF dither, by bits.
_DITHERED_BITS = {"PCM_16": 16, "PCM_24": 24}


def source_subtype(path: str | os.PathLike) -> str | None:
    """The sample format of an uncompressed or lossless file (``"PCM_16"``, ``"FLOAT"``, ...).

    None for lossy files (ogg, mp3), whose decoded samples have no stored
    format, and for files libsndfile cannot read.
    """
    try:
        import soundfile as sf

        subtype = sf.info(os.fspath(path)).subtype
    except (RuntimeError, OSError, TypeError):  # libsndfile's own errors are RuntimeErrors: no format to keep then
        return None
    return subtype if subtype in SUBTYPES["WAV"] else None


def output_subtype(path: str | os.PathLike, wanted: str | None) -> str | None:
    """``wanted`` (e.g. the source's format) as ``path``'s container can store it.

    None (the container's default) for lossy containers or no wish; FLAC,
    which has no float format, stores float sources as ``PCM_24``.
    """
    fmt = _WRITE_FORMATS.get(os.path.splitext(os.fspath(path))[1].lower(), ("", None))[0]
    if wanted is None or fmt not in SUBTYPES:
        return None
    if wanted in SUBTYPES[fmt]:
        return wanted
    return "PCM_24"


def tpdf_dither(data: np.ndarray, bits: int, *, seed: int = 0) -> np.ndarray:
    """Add triangular (TPDF) dither of +-1 LSB at ``bits`` bits to ``(n_channels, n_samples)`` float audio.

    Exact zeros stay zero (digital silence is kept silent). The noise is
    seeded, so a write is reproducible.
    """
    lsb = 2.0 ** (1 - bits)
    rng = np.random.default_rng(seed)
    noise = (rng.random(data.shape, dtype=np.float32) - rng.random(data.shape, dtype=np.float32)) * np.float32(lsb)
    return np.where(data == 0.0, data, data + noise).astype(np.float32)


def _quantize(data: np.ndarray, bits: int) -> np.ndarray:
    """Round float audio to ``bits``-bit steps as the integers soundfile writes exactly:
    int16 for 16 bits, int32 with the low bits zero for 24 (rounding here, not in
    libsndfile, keeps the dither's error centred)."""
    full = 16 if bits <= 16 else 32
    steps = np.round(data.astype(np.float64) * 2.0 ** (bits - 1))
    steps = np.clip(steps, -(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    return (steps * 2 ** (full - bits)).astype(np.int16 if full == 16 else np.int32)


def write_audio(
    path: str | os.PathLike,
    samples: np.ndarray | Audio,
    sample_rate: int | None = None,
    *,
    protect: Iterable[str | os.PathLike | None] = (),
    bit_depth: int | None = None,
    subtype: str | None = None,
) -> str:
    """Write audio atomically (temp file in the same directory, then ``os.replace``).

    Parameters
    ----------
    path : str or os.PathLike
        Output file; its extension picks the format (wav, flac, aiff, ogg, mp3).
    samples : np.ndarray or Audio
        ``(n_channels, n_samples)`` or ``(n_samples,)`` float audio, or an
        ``Audio`` (its rate is used and its source path is protected).
    sample_rate : int or None
        Hz; required unless ``samples`` is an ``Audio``.
    protect : iterable of paths
        Paths that must never be overwritten (the inputs).
    bit_depth : int or None
        16 or 24 for PCM (32 = float, wav only); default float wav, 24-bit
        flac/aiff.
    subtype : str or None
        Sample format by libsndfile name (``SUBTYPES``; wins over
        ``bit_depth``; ignored for ogg and mp3). 16- and 24-bit PCM are
        written with TPDF dither (``tpdf_dither``).

    Returns
    -------
    str
        The path written.

    Raises
    ------
    BadInput
        ``path`` is a protected file, a directory, has an unknown extension,
        or its directory does not exist.
    """
    path = os.fspath(path)
    protected = list(protect)
    if isinstance(samples, Audio):
        protected.append(samples.path)
        sample_rate = samples.sample_rate if sample_rate is None else sample_rate
        samples = samples.samples
    if sample_rate is None:
        raise ValueError("sample_rate is required when samples is an array")
    check_destination(path, protected)

    ext = os.path.splitext(path)[1].lower()
    if ext not in _WRITE_FORMATS:
        raise BadInput(path, f"unknown audio extension {ext or '(none)'}; use one of {', '.join(_WRITE_FORMATS)}")

    data = np.asarray(samples, dtype=np.float32)
    if data.ndim == 1:
        data = data[None, :]
    if data.ndim != 2 or data.shape[0] > data.shape[1]:
        # (n_samples, n_channels) passed by mistake would write a file with
        # thousands of channels; refuse rather than guess.
        raise ValueError(f"samples must be (n_channels, n_samples), got {data.shape}")
    if not np.isfinite(data).all():
        raise ValueError("refusing to write NaN or infinite samples")

    sf_format, default_subtype = _WRITE_FORMATS[ext]
    if subtype is not None and sf_format in SUBTYPES:
        if subtype not in SUBTYPES[sf_format]:
            raise BadInput(path, f"{ext} cannot store {subtype} samples (one of {', '.join(SUBTYPES[sf_format])})")
    else:
        subtype = default_subtype
        if bit_depth is not None:
            table = _SUBTYPES.get(sf_format.lower(), {16: "PCM_16", 24: "PCM_24"})
            if bit_depth not in table:
                raise ValueError(f"bit_depth {bit_depth} not available for {ext}")
            subtype = table[bit_depth]
    if subtype in _DITHERED_BITS:
        data = _quantize(tpdf_dither(data, _DITHERED_BITS[subtype]), _DITHERED_BITS[subtype])

    with atomic_path(path) as tmp:
        if sf_format == "MP3":
            from pedalboard.io import AudioFile

            with AudioFile(tmp, "w", samplerate=int(sample_rate), num_channels=data.shape[0]) as f:
                f.write(data)
        elif sf_format == "WAV" and subtype == "FLOAT":
            # libsndfile adds a PEAK chunk stamped with the wall-clock second to
            # float WAVs, so the same audio would give different bytes; scipy
            # writes the plain IEEE-float WAV and keeps writes reproducible.
            from scipy.io import wavfile

            wavfile.write(tmp, int(sample_rate), np.ascontiguousarray(data.T))
        else:
            import soundfile as sf

            sf.write(tmp, data.T, int(sample_rate), format=sf_format, subtype=subtype)
    log.debug("wrote %s: %s at %d Hz", path, data.shape, sample_rate)
    return path


def sha256_file(path: str | os.PathLike, *, block_size: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in ``block_size`` blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(block_size):
            digest.update(block)
    return digest.hexdigest()
