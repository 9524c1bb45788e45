"""Names of the file formats and separators every front end offers, defined once.

Light on purpose (no imports beyond the standard library): the CLI builds
its flags' choices from here at start-up.
"""

from __future__ import annotations

#: Plan export format -> the usual file extension (``engine.exporters``).
EXPORT_EXTENSIONS: dict[str, str] = {"rpp": ".rpp", "midi": ".mid", "audacity": ".txt", "tsv": ".tsv"}
#: Plan export formats, in the order they are listed to users.
EXPORT_FORMATS: tuple[str, ...] = tuple(EXPORT_EXTENSIONS)
#: Audio formats an edit, a render or a stem split may write.
AUDIO_OUTPUT_FORMATS: tuple[str, ...] = ("wav", "flac", "aiff")
#: Audio formats a server job may write (a DAW imports both without a plug-in).
JOB_AUDIO_FORMATS: tuple[str, ...] = ("wav", "flac")
#: Sample formats an output may be written in (libsndfile names; 16/24-bit are dithered).
SAMPLE_FORMATS: tuple[str, ...] = ("PCM_16", "PCM_24", "PCM_32", "FLOAT")
#: Stem separators: ``auto`` is demucs when its weights are installed, else the built-in one.
SEPARATOR_NAMES: tuple[str, ...] = ("auto", "demucs", "builtin")
#: Beat trackers (``engine.grid.beat_grid``); the first is the default.
TRACKERS: tuple[str, ...] = ("learned", "onset")
#: Environment variable naming the tracker of every analysis in the process
#: (``editorbot --tracker`` sets it, so worker processes follow).
TRACKER_ENV = "EDITORBOT_TRACKER"
