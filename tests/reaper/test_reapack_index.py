"""``make reapack BASE=...`` (reaper_scripts/make_index.py) writes a valid ReaPack
index of reaper_scripts/editorbot/: structure, every source URL made from the
BASE given, each listed file present, the version equal to the scripts'
@version headers, JS effects typed as effects, and every script carrying a
ReaPack header; a bad BASE is refused with one line and exit 2."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

SCRIPTS_ROOT = Path(__file__).resolve().parents[2] / "reaper_scripts"
MAKE_INDEX = SCRIPTS_ROOT / "make_index.py"
VERSION = re.compile(r"^\d+(\.\d+)*$")


def _load_make_index():  # reaper_scripts/ is not a package: load the script as a module
    spec = importlib.util.spec_from_file_location("make_index", MAKE_INDEX)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


header = _load_make_index().header


def make_index(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(MAKE_INDEX), *args], capture_output=True, text=True, cwd=tmp_path, timeout=60)


@pytest.mark.parametrize(
    "base", ["https://example.org/mirror/editorbot/raw/v2/reaper_scripts/", "file:///home/me/editorbot/reaper_scripts/"]
)
def test_index_uses_the_base_given(tmp_path: Path, base: str) -> None:
    out = tmp_path / "index.xml"
    r = make_index(tmp_path, "--base", base, "--out", str(out))
    assert r.returncode == 0, r.stderr
    text = out.read_text(encoding="utf-8")
    root = ET.fromstring(text.encode())
    assert re.search(r"^\s*BASE = (\S+)$", text, re.M).group(1) == base
    assert root.tag == "index" and root.get("version") == "1" and re.fullmatch(r"[\w.-]+", root.get("name", ""))
    categories = root.findall("category")
    assert [c.get("name") for c in categories] == ["editorbot"]
    (package,) = categories[0].findall("reapack")
    assert package.get("type") == "script" and package.get("desc")
    assert package.find("metadata") is None  # no website link unless one is given
    main_file = SCRIPTS_ROOT / "editorbot" / package.get("name")
    tags = header(main_file)
    (version,) = package.findall("version")
    assert VERSION.match(version.get("name", "")) and version.get("name") == tags["version"]
    assert version.find("changelog").text.strip() == tags["changelog"].strip()
    listed: dict[str, tuple[str | None, str | None]] = {}
    for src in version.findall("source"):
        url = (src.text or "").strip()
        assert url.startswith(base), url
        rel = url[len(base):]
        file_name = src.get("file") or package.get("name")
        assert rel == f"editorbot/{file_name}" and (SCRIPTS_ROOT / rel).is_file(), rel
        listed[file_name] = (src.get("main"), src.get("type"))
    assert listed[package.get("name")] == ("main", None)
    want = {f: ("main" if o == "main" else None, "effect" if o == "effect" else None)
            for o, f in (re.fullmatch(r"\s*\[(\w+)\]\s+(\S+)\s*", line).groups() for line in tags["provides"].strip().splitlines())}  # fmt: skip
    assert {f: v for f, v in listed.items() if f != package.get("name")} == want
    on_disk = sorted(p.name for p in (SCRIPTS_ROOT / "editorbot").iterdir() if p.suffix in (".lua", ".jsfx"))
    assert sorted(listed) == on_disk
    assert all(t == "effect" for f, (_, t) in listed.items() if f.endswith(".jsfx"))


def test_website_link_and_bad_bases(tmp_path: Path) -> None:
    out = tmp_path / "index.xml"
    r = make_index(tmp_path, "--base", "https://a.example/s/", "--website", "https://a.example/", "--out", str(out))
    assert r.returncode == 0, r.stderr
    link = ET.fromstring(out.read_bytes()).find("category/reapack/metadata/link")
    assert link.get("rel") == "website" and link.get("href") == "https://a.example/"
    before = out.read_bytes()
    for bad in ("https://a.example/no-slash", "ftp://a.example/s/", "reaper_scripts/", "https://a.example/s p/"):
        r = make_index(tmp_path, "--base", bad, "--out", str(out))
        assert r.returncode == 2 and r.stdout == ""
        assert len(r.stderr.strip().splitlines()) == 1 and "--base" in r.stderr and bad in r.stderr
        assert out.read_bytes() == before  # nothing written over the earlier index


def test_every_script_has_a_reapack_header() -> None:
    scripts = sorted((SCRIPTS_ROOT / "editorbot").glob("*.lua"))
    assert len(scripts) == 4
    versions = set()
    for path in scripts:
        tags = header(path)
        for tag in ("description", "author", "version", "about"):
            assert tags.get(tag, "").strip(), (path.name, tag)
        assert VERSION.match(tags["version"])
        versions.add(tags["version"])
    assert len(versions) == 1  # released together, one package
    for path in sorted((SCRIPTS_ROOT / "editorbot").glob("*.jsfx")):
        text = path.read_text(encoding="utf-8")
        assert text.startswith("desc:editorbot ") and "//@noindex" in text
