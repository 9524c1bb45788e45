"""Write the ReaPack index of the editorbot Reaper scripts for one base URL.

Usage: ``python reaper_scripts/make_index.py --base BASE [--out PATH]``
(``make reapack BASE=...``). Every ``<source>`` URL is ``BASE`` followed by
the file's path below ``reaper_scripts/`` (ReaPack downloads source URLs as
written and resolves no relative ones), so ``BASE`` is where this folder is
served from, ending in ``/``: ``https://.../raw/<branch>/reaper_scripts/`` or
``file:///home/me/editorbot/reaper_scripts/``.

The package, its version, changelog and files come from the ReaPack header of
the one script with ``@provides`` (``editorbot/editorbot_auto_edit.lua``):
``[main]`` files become actions, ``[nomain]`` files are installed beside the
scripts, ``[effect]`` files are installed as JS effects under
``Effects/editorbot/``. Bad input: one line on stderr, exit 2.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from urllib.parse import urlparse
from xml.sax.saxutils import escape, quoteattr

HERE = Path(__file__).resolve().parent
PACKAGE_DIR = HERE / "editorbot"
CATEGORY = "editorbot"


class BadIndex(ValueError):
    """A header or argument the index cannot be made from."""


def header(path: Path) -> dict[str, str]:
    """The ``-- @tag value`` lines at the top of a script (continuation lines ``--   x`` joined)."""
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


def check_base(base: str) -> str:
    url = urlparse(base)
    if url.scheme not in ("https", "http", "file") or not base.endswith("/") or (url.scheme != "file" and not url.netloc):
        raise BadIndex(f"--base {base!r}: must be an http(s):// or file:// URL ending in '/'")
    if any(c in base for c in " \"'<>"):
        raise BadIndex(f"--base {base!r}: contains a space, quote or angle bracket")
    return base


def provides(tags: dict[str, str]) -> list[tuple[str, str]]:
    """``(option, file)`` for each line of ``@provides`` (option ``main``, ``nomain`` or ``effect``)."""
    out = []
    for line in tags.get("provides", "").splitlines():
        if not line.strip():
            continue
        m = re.fullmatch(r"\s*\[(main|nomain|effect)\]\s+(\S+)\s*", line)
        if not m:
            raise BadIndex(f"@provides line {line.strip()!r}: expected '[main|nomain|effect] file'")
        out.append((m.group(1), m.group(2)))
    return out


def format_index(base: str, website: str | None = None) -> str:
    """The index XML for ``base`` (checked), with a link to ``website`` when given."""
    base = check_base(base)
    if website is not None and urlparse(website).scheme not in ("https", "http"):
        raise BadIndex(f"--website {website!r}: must be an http(s):// URL")
    mains = [p for p in sorted(PACKAGE_DIR.glob("*.lua")) if "provides" in header(p)]
    if len(mains) != 1:
        raise BadIndex(f"{PACKAGE_DIR}: expected one script with @provides, found {len(mains)}")
    main = mains[0]
    tags = header(main)
    for tag in ("description", "author", "version", "changelog"):
        if not tags.get(tag, "").strip():
            raise BadIndex(f"{main}: no @{tag}")
    version = tags["version"].strip()
    if not re.fullmatch(r"\d+(\.\d+)*", version):
        raise BadIndex(f"{main}: @version {version!r} is not numbers joined by dots")
    files = [("main", main.name)] + provides(tags)
    for _, name in files:
        path = PACKAGE_DIR / name
        if not path.is_file():
            raise BadIndex(f"{main}: @provides names {name}, which is not in {PACKAGE_DIR}")
        if path.suffix == ".lua" and header(path).get("version", "").strip() != version:
            raise BadIndex(f"{path}: @version differs from {main.name}'s {version} (released together)")
    sources = []
    for option, name in files:
        attrs = ""
        if name != main.name:
            attrs += f" file={quoteattr(name)}"
        if option == "main":
            attrs = ' main="main"' + attrs
        elif option == "effect":
            attrs += ' type="effect"'
        sources.append(f"        <source{attrs}>{escape(base + 'editorbot/' + name)}</source>")
    desc = tags["description"].strip()
    changelog = tags["changelog"].strip().replace("]]>", "]]]]><![CDATA[>")
    lines = [
        '<?xml version="1.0" encoding="utf-8"?>',
        "<!--",
        "  ReaPack index of the editorbot Reaper scripts, written by reaper_scripts/make_index.py",
        "  (make reapack BASE=...). Every source URL is BASE followed by the file's path below",
        "  reaper_scripts/, where",
        f"  BASE = {base}",
        "-->",
        f'<index version="1" name="{CATEGORY}">',
        f"  <category name={quoteattr(CATEGORY)}>",
        f"    <reapack name={quoteattr(main.name)} type=\"script\" desc={quoteattr(desc)}>",
        *(
            ["      <metadata>", f'        <link rel="website" href={quoteattr(website)}>Repository</link>', "      </metadata>"]
            if website
            else []
        ),
        f"      <version name={quoteattr(version)} author={quoteattr(tags['author'].strip())}>",
        f"        <changelog><![CDATA[{changelog}]]></changelog>",
        *sources,
        "      </version>",
        "    </reapack>",
        "  </category>",
        "</index>",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="URL this folder is served from, ending in '/'")
    parser.add_argument("--website", default=None, help="the repository's web page, linked from ReaPack")
    parser.add_argument("--out", default=str(HERE / "index.xml"), help="where to write the index")
    args = parser.parse_args(argv)
    try:
        text = format_index(args.base, args.website)
    except BadIndex as err:
        print(f"make_index: {err}", file=sys.stderr)
        return 2
    out = Path(args.out)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(out)  # atomic: a reader sees the old index or the new one
    except OSError as err:
        print(f"make_index: {out}: cannot write: {err.strerror}", file=sys.stderr)
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
