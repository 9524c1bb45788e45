"""Stem chains: a chain file -> one pedalboard board per stem, plus mix gains.

A chain file (JSON, or YAML when pyyaml is installed) names the plugins of
each stem in order and a gain per stem::

    {
      "stems": {
        "drums":  [{"plugin": "Compressor", "params": {"threshold_db": -18, "ratio": 4}},
                   {"plugin": "HighpassFilter", "params": {"cutoff_frequency_hz": 40}}],
        "vocals": [{"plugin": "Reverb", "params": {"room_size": 0.4, "wet_level": 0.2}},
                   {"plugin": "plugins/Echo.vst3", "params": {"mix": 0.3}}]
      },
      "gains_db": {"bass": -2.0, "vocals": 1.5}
    }

- ``plugin`` is a pedalboard built-in by class name (``BUILTIN_PLUGINS``:
  Compressor, Reverb, Delay, LadderFilter, ...) or the path of a VST3 / AU
  plugin (``.vst3``, ``.component``, or anything with a path separator),
  relative to the chain file, loaded by ``pedalboard.load_plugin``
  (``plugin_name`` picks one plugin out of a shell). ``params`` are the
  plugin's parameter names (a built-in's attributes, an external plugin's
  ``parameters`` keys); enum parameters (LadderFilter ``mode``) take the
  member name as a string. Convolution takes ``impulse_response_filename``
  (relative to the chain file) and ``mix``.
- ``gains_db`` scales each processed stem before the stems are summed into
  the mix; stems not named anywhere pass through unchanged.

External plugins are native code that runs when loaded, so they load only
from the plugin folders named when editorbot starts (``plugin_dirs``;
``--plugin-dir``; default ``default_plugin_dirs()``, the platform's standard
VST3 and AU folders): a plugin path that resolves (links followed) anywhere
else is refused before anything is opened. An impulse response must lie in
the plugin folders or in ``file_roots`` (the server's ``--allow`` folders;
``None``, the command line's default, accepts any file).

``load_chain(path)`` parses and builds everything up front, so a bad file
fails before any audio is processed, with one line naming the entry:
``chain.json: stems.drums[1]: unknown plugin "Reverbb" (did you mean Reverb?)``.
A ``StemChain`` is callable like a pedalboard board: ``chain(stems,
sample_rate) -> (processed stems, mix)``.
"""

from __future__ import annotations

import difflib
import inspect
import json
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import pedalboard

from editorbot.engine.errors import BadInput
from editorbot.engine.features import STEM_NAMES

EXTERNAL_SUFFIXES = (".vst3", ".component", ".vst", ".dll", ".so")
_READ_ONLY = {"is_effect", "is_instrument"}
# Built-ins that are not single effects: containers, bases, and hosts of external plugins.
_NOT_EFFECTS = {"Plugin", "PluginContainer", "Chain", "Mix", "Pedalboard", "IIRFilter", "ExternalPlugin"}


def default_plugin_dirs() -> list[str]:
    """The platform's standard VST3 and AU folders (system-wide and the user's)."""
    home = os.path.expanduser("~")
    if sys.platform == "darwin":
        return [
            "/Library/Audio/Plug-Ins/VST3", f"{home}/Library/Audio/Plug-Ins/VST3",
            "/Library/Audio/Plug-Ins/Components", f"{home}/Library/Audio/Plug-Ins/Components",
        ]
    if sys.platform == "win32":
        common = os.environ.get("COMMONPROGRAMFILES", r"C:\Program Files\Common Files")
        local = os.environ.get("LOCALAPPDATA", os.path.join(home, "AppData", "Local"))
        return [os.path.join(common, "VST3"), os.path.join(local, "Programs", "Common", "VST3")]
    return [f"{home}/.vst3", "/usr/lib/vst3", "/usr/local/lib/vst3"]


@dataclass(frozen=True)
class _Places:
    """Where a chain's files may come from (resolved folders; ``file_roots`` None: anywhere)."""

    plugin_dirs: tuple[str, ...]
    file_roots: tuple[str, ...] | None

    @staticmethod
    def make(plugin_dirs: Sequence[str | os.PathLike] | None, file_roots: Sequence[str | os.PathLike] | None) -> _Places:
        dirs = default_plugin_dirs() if plugin_dirs is None else plugin_dirs
        return _Places(
            tuple(os.path.realpath(d) for d in dirs),
            None if file_roots is None else tuple(os.path.realpath(r) for r in file_roots),
        )


def _within(path: str, folders: Sequence[str]) -> bool:
    real = os.path.realpath(path)
    return any(real == f or real.startswith(f.rstrip(os.sep) + os.sep) for f in folders)


@lru_cache(maxsize=1)
def builtin_plugins() -> dict[str, type]:
    """Class name -> class of every pedalboard built-in usable in a chain (Convolution included)."""
    found: dict[str, type] = {}
    for name in dir(pedalboard):
        cls = getattr(pedalboard, name)
        if (
            name.startswith("_")
            or name in _NOT_EFFECTS
            or not inspect.isclass(cls)
            or not issubclass(cls, pedalboard.Plugin)
            or issubclass(cls, (pedalboard.PluginContainer, pedalboard.ExternalPlugin))
        ):
            continue
        if name != "Convolution":
            try:
                cls()
            except Exception:  # noqa: BLE001 - a class that needs constructor arguments is not offered
                continue
        found[name] = cls
    return dict(sorted(found.items()))


def plugin_parameters(cls: type) -> list[str]:
    """Settable parameter names of a built-in plugin class."""
    if cls is pedalboard.Convolution:
        return ["impulse_response_filename", "mix"]
    names = []
    for key in dir(cls):
        attr = getattr(cls, key, None)
        if isinstance(attr, property) and attr.fset is not None and not key.startswith("_") and key not in _READ_ONLY:
            names.append(key)
    return sorted(names)


# --------------------------------------------------------------------------- the chain


@dataclass
class StemChain:
    """Per-stem boards and gains; ``chain(stems, sample_rate) -> (processed, mix)``.

    Attributes
    ----------
    boards : dict[str, pedalboard.Pedalboard]
        stem -> ``pedalboard.Pedalboard`` (stems without one pass through).
    gains_db : dict[str, float]
        stem -> gain applied after the board (default 0 dB).
    source : str | None
        the chain file it came from (for messages), if any.
    """

    boards: dict[str, pedalboard.Pedalboard] = field(default_factory=dict)
    gains_db: dict[str, float] = field(default_factory=dict)
    source: str | None = None

    def process(self, stems: dict[str, np.ndarray], sample_rate: int) -> dict[str, np.ndarray]:
        """Each stem through its board (from a reset state), then its gain; shapes are kept."""
        out = {}
        for name, audio in stems.items():
            x = np.ascontiguousarray(audio, dtype=np.float32)
            board = self.boards.get(name)
            if board is not None and len(board):
                y = board(x, float(sample_rate), reset=True)
                if y.shape != x.shape:
                    raise BadInput(
                        self.source,
                        f"stems.{name}: the chain turned {x.shape} audio into {y.shape}; it must keep the shape",
                    )
                x = np.asarray(y, dtype=np.float32)
            gain_db = self.gains_db.get(name, 0.0)
            if gain_db:
                x = x * np.float32(10.0 ** (gain_db / 20.0))
            out[name] = x
        return out

    @staticmethod
    def mix(stems: dict[str, np.ndarray]) -> np.ndarray:
        """Sum of the stems, ``(n_channels, n_samples)`` float32."""
        total = None
        for audio in stems.values():
            total = audio.astype(np.float32, copy=True) if total is None else total + audio
        if total is None:
            raise ValueError("no stems to mix")
        return total

    def __call__(self, stems: dict[str, np.ndarray], sample_rate: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
        processed = self.process(stems, sample_rate)
        return processed, self.mix(processed)

    def describe(self) -> list[str]:
        """One line per stem: its plugins and gain."""
        lines = []
        for name in STEM_NAMES:
            board = self.boards.get(name)
            plugins = ", ".join(_plugin_label(p) for p in board) if board else ""
            gain = self.gains_db.get(name, 0.0)
            if plugins or gain:
                lines.append(f"{name}: {plugins or '(no plugins)'}{f', {gain:+.1f} dB' if gain else ''}")
        return lines


def _plugin_label(plugin: pedalboard.Plugin) -> str:
    """A built-in's class name, an external plugin's own name."""
    return plugin.name if isinstance(plugin, pedalboard.ExternalPlugin) else type(plugin).__name__


# --------------------------------------------------------------------------- parsing


def load_chain(
    path: str | os.PathLike,
    *,
    plugin_dirs: Sequence[str | os.PathLike] | None = None,
    file_roots: Sequence[str | os.PathLike] | None = None,
) -> StemChain:
    """Read and build a chain file (``.json``; ``.yaml`` / ``.yml`` with pyyaml).

    ``plugin_dirs`` (default ``default_plugin_dirs()``) are the only folders
    external plugins load from; impulse responses come from those or from
    ``file_roots`` (None: anywhere).

    Raises
    ------
    BadInput
        unreadable or malformed file, unknown stem, plugin or
        parameter, a value a plugin refuses, an external plugin or impulse
        response outside its folders, or one that does not exist or does
        not load; one line naming the entry.
    """
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise BadInput(path, "no such chain file") from None
    except IsADirectoryError:
        raise BadInput(path, "is a directory, not a chain file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise BadInput(path, f"cannot read: {err}") from None
    if os.path.splitext(path)[1].lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            problem = "YAML chain files need pyyaml (pip install pyyaml); or write the chain as JSON"
            raise BadInput(path, problem) from None
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise BadInput(path, f"not valid YAML: {' '.join(str(err).split())}") from None
    else:
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as err:
            raise BadInput(path, f"not valid JSON: {err.msg} at line {err.lineno} column {err.colno}") from None
    return parse_chain(
        doc, source=path, base_dir=os.path.dirname(os.path.abspath(path)), plugin_dirs=plugin_dirs, file_roots=file_roots
    )


def parse_chain(
    doc: Any,
    *,
    source: str | None = None,
    base_dir: str | None = None,
    plugin_dirs: Sequence[str | os.PathLike] | None = None,
    file_roots: Sequence[str | os.PathLike] | None = None,
) -> StemChain:
    """Build a ``StemChain`` from a parsed chain document (see the module docstring).

    ``base_dir`` resolves relative plugin and impulse-response paths (default:
    the current directory); ``plugin_dirs`` and ``file_roots`` as in
    ``load_chain``. Errors are ``BadInput(source, "<entry>: problem")``.
    """
    base_dir = base_dir or os.getcwd()
    places = _Places.make(plugin_dirs, file_roots)

    def bad(where: str, problem: str) -> BadInput:
        return BadInput(source, f"{where}: {problem}" if where else problem)

    if not isinstance(doc, dict):
        raise bad("", f"a chain file holds an object with 'stems' and 'gains_db', not {type(doc).__name__}")
    unknown = sorted(set(doc) - {"stems", "gains_db", "schema"})
    if unknown:
        raise bad(unknown[0], "unknown key (a chain has 'stems' and 'gains_db')")
    stems_doc = doc.get("stems", {}) or {}
    gains_doc = doc.get("gains_db", {}) or {}
    if not isinstance(stems_doc, dict):
        raise bad("stems", "must map stem names to lists of plugins")
    if not isinstance(gains_doc, dict):
        raise bad("gains_db", "must map stem names to gains in dB")

    chain = StemChain(source=source)
    for stem, entries in stems_doc.items():
        where = f"stems.{stem}"
        _check_stem(stem, where, bad)
        if entries is None:
            entries = []
        if not isinstance(entries, list):
            raise bad(where, "must be a list of plugins")
        plugins = [_build_plugin(entry, f"{where}[{i}]", base_dir, places, bad) for i, entry in enumerate(entries)]
        chain.boards[stem] = pedalboard.Pedalboard(plugins)
    for stem, gain in gains_doc.items():
        where = f"gains_db.{stem}"
        _check_stem(stem, where, bad)
        if isinstance(gain, bool) or not isinstance(gain, (int, float)) or not math.isfinite(gain):
            raise bad(where, f"not a finite number: {gain!r}")
        if not -120.0 <= gain <= 48.0:
            raise bad(where, f"{gain} dB is outside [-120, 48]")
        chain.gains_db[stem] = float(gain)
    return chain


def _check_stem(stem: Any, where: str, bad) -> None:
    if stem not in STEM_NAMES:
        raise bad(where, f"unknown stem (stems are {', '.join(STEM_NAMES)})")


def _is_external(name: str) -> bool:
    return name.lower().endswith(EXTERNAL_SUFFIXES) or "/" in name or os.sep in name


def _build_plugin(entry: Any, where: str, base_dir: str, places: _Places, bad) -> pedalboard.Plugin:
    if isinstance(entry, str):
        entry = {"plugin": entry}
    if not isinstance(entry, dict):
        example = '{"plugin": "Reverb", "params": {}}'
        raise bad(where, f"a plugin entry is an object like {example}, not {entry!r}")
    unknown = sorted(set(entry) - {"plugin", "params", "plugin_name"})
    if unknown:
        keys = "'plugin', 'params' and, for a plugin shell, 'plugin_name'"
        raise bad(where, f"unknown key {unknown[0]!r} (an entry has {keys})")
    name = entry.get("plugin")
    if not isinstance(name, str) or not name:
        raise bad(where, "missing 'plugin' (a built-in name such as \"Reverb\", or a .vst3 / .component path)")
    params = entry.get("params", {}) or {}
    if not isinstance(params, dict):
        raise bad(where, "'params' must map parameter names to values")
    if _is_external(name):
        return _build_external(name, entry.get("plugin_name"), params, where, base_dir, places, bad)
    if "plugin_name" in entry:
        raise bad(where, "'plugin_name' is only for external plugins")
    cls = builtin_plugins().get(name)
    if cls is None:
        close = difflib.get_close_matches(name, list(builtin_plugins()), n=1)
        hint = f" (did you mean {close[0]}?)" if close else f" (built-ins: {', '.join(builtin_plugins())})"
        raise bad(where, f'unknown plugin "{name}"{hint}')
    if cls is pedalboard.Convolution:
        return _build_convolution(params, where, base_dir, places, bad)
    plugin = cls()
    known = plugin_parameters(cls)
    for key, value in params.items():
        if key not in known:
            raise bad(f"{where}.{key}", f"{name} has no parameter {key!r} (it has {', '.join(known) or 'none'})")
        _set_parameter(plugin, key, value, f"{where}.{key}", bad)
    return plugin


def _set_parameter(plugin: pedalboard.Plugin, key: str, value: Any, where: str, bad) -> None:
    current = getattr(plugin, key)
    members = getattr(type(current), "__members__", None)
    if members is not None:  # a pybind11 enum: take the member's name
        if not isinstance(value, str) or value not in members:
            raise bad(where, f"{value!r} is not one of {', '.join(members)}")
        value = members[value]
    elif isinstance(current, bool):
        if not isinstance(value, bool):
            raise bad(where, f"must be true or false, not {value!r}")
    elif isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise bad(where, f"not a finite number: {value!r}")
    try:
        setattr(plugin, key, value)
    except (ValueError, TypeError, RuntimeError) as err:
        raise bad(where, f"{value!r} refused: {' '.join(str(err).split())[:200]}") from None


def _build_convolution(params: dict, where: str, base_dir: str, places: _Places, bad) -> pedalboard.Plugin:
    unknown = sorted(set(params) - {"impulse_response_filename", "mix"})
    if unknown:
        raise bad(f"{where}.{unknown[0]}", "Convolution has no such parameter (it has impulse_response_filename, mix)")
    ir = params.get("impulse_response_filename")
    if not isinstance(ir, str) or not ir:
        raise bad(where, "Convolution needs impulse_response_filename (an audio file, relative to the chain file)")
    ir_path = ir if os.path.isabs(ir) else os.path.join(base_dir, ir)
    if places.file_roots is not None and not _within(ir_path, places.plugin_dirs + places.file_roots):
        folders = ", ".join(places.plugin_dirs + places.file_roots)
        raise bad(f"{where}.impulse_response_filename", f"impulse response {ir_path} is outside the allowed folders ({folders})")
    if not os.path.isfile(ir_path):
        raise bad(f"{where}.impulse_response_filename", f"impulse response {ir_path} does not exist")
    mix = params.get("mix", 1.0)
    if isinstance(mix, bool) or not isinstance(mix, (int, float)) or not 0.0 <= mix <= 1.0:
        raise bad(f"{where}.mix", f"must be a number in [0, 1], not {mix!r}")
    try:
        return pedalboard.Convolution(ir_path, mix=float(mix))
    except Exception as err:  # noqa: BLE001 - any load failure is a bad impulse response
        detail = " ".join(str(err).split())[:200]
        raise bad(f"{where}.impulse_response_filename", f"cannot load {ir_path}: {detail}") from None


def _build_external(
    name: str, plugin_name: Any, params: dict, where: str, base_dir: str, places: _Places, bad
) -> pedalboard.Plugin:
    path = os.path.expanduser(name)
    if not os.path.isabs(path):
        path = os.path.join(base_dir, path)
    if not _within(path, places.plugin_dirs):  # before anything opens it: loading runs its code
        folders = ", ".join(places.plugin_dirs) or "none"
        raise bad(where, f"plugin {path} is outside the plugin folders ({folders}); name its folder with --plugin-dir")
    if not os.path.exists(path):
        raise bad(where, f"plugin {path} does not exist")
    if plugin_name is not None and not isinstance(plugin_name, str):
        raise bad(where, "'plugin_name' must be a string")
    try:
        plugin = pedalboard.load_plugin(path, plugin_name=plugin_name)
    except (ImportError, ValueError, RuntimeError, OSError) as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        detail = lines[-1] if lines else type(err).__name__
        raise bad(where, f"cannot load plugin {path}: {detail}") from None
    known = list(plugin.parameters)
    for key, value in params.items():
        if key not in known:
            shown = ", ".join(known[:12]) + (", ..." if len(known) > 12 else "")
            raise bad(f"{where}.{key}", f"plugin {plugin.name} has no parameter {key!r} (it has {shown or 'none'})")
        try:
            setattr(plugin, key, value)
        except (ValueError, TypeError, RuntimeError, AttributeError) as err:
            raise bad(f"{where}.{key}", f"{value!r} refused: {' '.join(str(err).split())[:200]}") from None
    return plugin
