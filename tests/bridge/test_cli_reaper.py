"""``editorbot reaper install``: the packaged scripts and effects land where REAPER reads them,
byte for byte; a differing file is replaced only with --force; links are refused, never followed;
a refusal writes nothing; ``--print`` lists the packaged files."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

from editorbot.bridge.cli import main
from editorbot.bridge.commands.reaper import default_resource_dir

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
PACKAGED = REPO / "reaper_scripts" / "editorbot"
SCRIPTS = sorted(p.name for p in PACKAGED.iterdir() if p.suffix == ".lua")
EFFECTS = sorted(p.name for p in PACKAGED.iterdir() if p.suffix == ".jsfx")


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()}


def test_the_package_holds_four_scripts_and_two_effects() -> None:
    assert SCRIPTS == ["editorbot_auto_edit.lua", "editorbot_import_markers.lua", "editorbot_lib.lua", "editorbot_settings.lua"]
    assert EFFECTS == ["editorbot_distortion.jsfx", "editorbot_width.jsfx"]


def test_install_into_a_resource_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Scripts under Scripts/editorbot, effects under Effects/editorbot (where editorbot_lib.lua
    asks for ``JS: editorbot/<file>``), identical to the packaged files; a second run changes nothing."""
    res = tmp_path / "REAPER"
    res.mkdir()
    assert main(["reaper", "install", "--resource-dir", str(res)]) == 0
    printed = capsys.readouterr().out
    assert sorted(p.name for p in (res / "Scripts" / "editorbot").iterdir()) == SCRIPTS
    assert sorted(p.name for p in (res / "Effects" / "editorbot").iterdir()) == EFFECTS
    for name in SCRIPTS:
        assert (res / "Scripts" / "editorbot" / name).read_bytes() == (PACKAGED / name).read_bytes()
    for name in EFFECTS:
        assert (res / "Effects" / "editorbot" / name).read_bytes() == (PACKAGED / name).read_bytes()
    assert printed.count("installed") == 6 and "Load ReaScript" in printed
    before = {p: p.stat().st_mtime_ns for p in res.rglob("*") if p.is_file()}
    assert main(["reaper", "install", "--resource-dir", str(res)]) == 0
    assert capsys.readouterr().out.count("unchanged") == 6
    assert {p: p.stat().st_mtime_ns for p in res.rglob("*") if p.is_file()} == before
    assert not [p for p in res.rglob("*partial*")]  # no temp files left


def test_scripts_dir_alone_takes_the_effects_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "a" / "b"
    assert main(["reaper", "install", "--scripts-dir", str(dest), "-q"]) == 0
    assert sorted(p.name for p in dest.iterdir()) == sorted(SCRIPTS + EFFECTS)
    assert "Effects/editorbot" in capsys.readouterr().out  # says where REAPER reads effects from
    effects = tmp_path / "fx"
    assert main(["reaper", "install", "--scripts-dir", str(dest), "--effects-dir", str(effects)]) == 0
    assert sorted(p.name for p in effects.iterdir()) == EFFECTS


def test_a_differing_file_needs_force_and_nothing_is_written_before(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "scripts"
    dest.mkdir()
    mine = dest / "editorbot_lib.lua"
    mine.write_text("-- my own changes\n")
    assert main(["reaper", "install", "--scripts-dir", str(dest)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"editorbot: {mine}: exists and differs from the packaged file; --force replaces it"
    assert _snapshot(dest) == {"editorbot_lib.lua": b"-- my own changes\n"}  # the others were not written either
    assert main(["reaper", "install", "--scripts-dir", str(dest), "--force"]) == 0
    assert "replaced" in capsys.readouterr().out
    assert mine.read_bytes() == (PACKAGED / "editorbot_lib.lua").read_bytes()


@pytest.mark.parametrize("force", [False, True])
def test_a_link_is_never_followed(tmp_path: Path, capsys: pytest.CaptureFixture[str], force: bool) -> None:
    """A destination file that is a link, or a link as the install folder: refused even with --force;
    the file the link points to is untouched."""
    target = tmp_path / "elsewhere.lua"
    target.write_text("keep me\n")
    dest = tmp_path / "scripts"
    dest.mkdir()
    (dest / "editorbot_settings.lua").symlink_to(target)
    flags = ["--force"] if force else []
    assert main(["reaper", "install", "--scripts-dir", str(dest), *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "editorbot_settings.lua: is a symbolic link" in err[0]
    assert target.read_text() == "keep me\n" and (dest / "editorbot_settings.lua").is_symlink()
    assert [p.name for p in dest.iterdir()] == ["editorbot_settings.lua"]

    real = tmp_path / "real"
    real.mkdir()
    linked = tmp_path / "linked"
    linked.symlink_to(real, target_is_directory=True)
    assert main(["reaper", "install", "--scripts-dir", str(linked), *flags]) == 2
    assert f"{linked}: is a symbolic link" in capsys.readouterr().err
    assert list(real.iterdir()) == []


def test_missing_resource_dir_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "no-reaper"
    assert main(["reaper", "install", "--resource-dir", str(missing)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"editorbot: {missing}: --resource-dir: no such folder")
    assert not missing.exists()


def test_a_file_where_the_folder_belongs_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "scripts"
    blocker.write_text("x")
    assert main(["reaper", "install", "--scripts-dir", str(blocker)]) == 2
    assert capsys.readouterr().err.strip() == f"editorbot: {blocker}: exists and is not a folder"


def test_print_lists_the_packaged_files_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert main(["reaper", "install", "--print"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [Path(line).name for line in lines] == sorted(SCRIPTS + EFFECTS) + ["make_index.py"]
    for line in lines:
        assert Path(line).is_file() and Path(line).is_absolute()
    assert (Path(lines[0]).read_bytes()) == (PACKAGED / Path(lines[0]).name).read_bytes()
    assert list(tmp_path.iterdir()) == []


def test_default_resource_dirs() -> None:
    home = Path("/home/me")
    assert default_resource_dir("linux", {}, home) == home / ".config" / "REAPER"
    assert default_resource_dir("darwin", {}, home) == home / "Library" / "Application Support" / "REAPER"
    assert default_resource_dir("win32", {"APPDATA": r"C:\Users\me\AppData\Roaming"}, home) == Path(r"C:\Users\me\AppData\Roaming") / "REAPER"
    from editorbot.engine.errors import BadInput

    with pytest.raises(BadInput, match="APPDATA"):
        default_resource_dir("win32", {}, home)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the default resource path of Linux")
def test_install_without_flags_uses_the_platform_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".config" / "REAPER").mkdir(parents=True)
    assert main(["reaper", "install", "-q"]) == 0
    assert sorted(p.name for p in (tmp_path / ".config" / "REAPER" / "Scripts" / "editorbot").iterdir()) == SCRIPTS
    assert sorted(p.name for p in (tmp_path / ".config" / "REAPER" / "Effects" / "editorbot").iterdir()) == EFFECTS
