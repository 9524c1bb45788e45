"""reaper_scripts/index.xml is a valid ReaPack index of the scripts in
reaper_scripts/editorbot/: structure, one BASE for every source URL, each
listed file present, versions equal to the scripts' @version headers, and
every script carrying a ReaPack header."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

SCRIPTS_ROOT = Path(__file__).resolve().parents[2] / "reaper_scripts"
INDEX = SCRIPTS_ROOT / "index.xml"
VERSION = re.compile(r"^\d+(\.\d+)*$")


def header(path: Path) -> dict[str, str]:
    """The ``-- @tag value`` lines at the top of a script (multi-line tags joined)."""
    tags: dict[str, str] = {}
    last = None
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("--"):
            break
        m = re.match(r"^-- @(\w+)\s*(.*)$", line)
        if m:
            last = m.group(1)
            tags[last] = m.group(2)
        elif last and line.startswith("--   "):
            tags[last] += "\n" + line[5:]
    return tags


def base_url(text: str) -> str:
    m = re.search(r"^\s*BASE = (\S+)$", text, re.M)
    assert m, "index.xml must state its BASE"
    return m.group(1)


def test_index_structure_and_sources() -> None:
    text = INDEX.read_text(encoding="utf-8")
    root = ET.fromstring(text.encode())
    base = base_url(text)
    assert base.startswith("https://") and base.endswith("/reaper_scripts/")
    assert root.tag == "index" and root.get("version") == "1" and re.fullmatch(r"[\w.-]+", root.get("name", ""))
    categories = root.findall("category")
    assert [c.get("name") for c in categories] == ["editorbot"]
    listed: list[str] = []
    for package in categories[0].findall("reapack"):
        assert package.get("type") == "script" and package.get("desc")
        main_file = SCRIPTS_ROOT / "editorbot" / package.get("name")
        assert main_file.is_file()
        versions = package.findall("version")
        assert versions and all(VERSION.match(v.get("name", "")) for v in versions)
        latest = versions[-1]
        assert latest.get("name") == header(main_file)["version"]
        provided = {}
        for src in latest.findall("source"):
            url = (src.text or "").strip()
            assert url.startswith(base), url
            rel = url[len(base):]
            assert (SCRIPTS_ROOT / rel).is_file(), rel
            file_name = src.get("file") or package.get("name")
            assert rel == f"editorbot/{file_name}"
            provided[file_name] = src.get("main")
            listed.append(file_name)
        assert provided[package.get("name")] == "main"
        # the package header's @provides matches the index
        provides = header(main_file)["provides"].strip().splitlines()
        want = {f"[{'main' if m == 'main' else 'nomain'}] {f}" for f, m in provided.items() if f != package.get("name")}
        assert {p.strip() for p in provides} == want
    on_disk = sorted(p.name for p in (SCRIPTS_ROOT / "editorbot").glob("*.lua"))
    assert sorted(listed) == on_disk


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
