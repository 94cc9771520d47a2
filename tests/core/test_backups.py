"""Autosave backups: rotation order, no rotation for identical content, names."""

from __future__ import annotations

from pathlib import Path

import pytest

from omicslens.core.backups import (
    KEEP_BACKUPS,
    backup_path,
    backup_paths,
    write_text_keeping_backups,
)


def test_backup_path_names() -> None:
    assert backup_path(Path("/d/abc.geojson"), 1) == Path("/d/abc.backup-1.geojson")
    assert backup_path(Path("/d/abc.geojson"), 5) == Path("/d/abc.backup-5.geojson")
    assert backup_path(Path("/d/x.omicslens.json"), 2) == Path("/d/x.omicslens.backup-2.json")
    assert backup_path(Path("/d/noext"), 1) == Path("/d/noext.backup-1")
    with pytest.raises(ValueError):
        backup_path(Path("/d/abc.geojson"), 0)


def test_first_write_creates_no_backup_and_makes_folders(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "r.geojson"
    assert write_text_keeping_backups(target, "one") == target
    assert target.read_text(encoding="utf-8") == "one"
    assert backup_paths(target) == []
    assert sorted(p.name for p in target.parent.iterdir()) == ["r.geojson"]


def test_identical_write_does_not_rotate(tmp_path: Path) -> None:
    target = tmp_path / "r.geojson"
    write_text_keeping_backups(target, "one")
    write_text_keeping_backups(target, "two")
    before = target.stat().st_mtime_ns
    write_text_keeping_backups(target, "two")
    write_text_keeping_backups(target, "two")
    assert backup_paths(target) == [tmp_path / "r.backup-1.geojson"]
    assert (tmp_path / "r.backup-1.geojson").read_text(encoding="utf-8") == "one"
    assert target.stat().st_mtime_ns == before  # not even rewritten


def test_seven_writes_keep_five_newest_first(tmp_path: Path) -> None:
    target = tmp_path / "slide.svs.omicslens-regions.geojson"
    texts = [f"version {i}" for i in range(7)]
    for text in texts:
        write_text_keeping_backups(target, text, keep=5)
    assert target.read_text(encoding="utf-8") == "version 6"
    found = backup_paths(target)
    assert found == [
        tmp_path / f"slide.svs.omicslens-regions.backup-{n}.geojson" for n in range(1, 6)
    ]
    # backup 1 holds the text written just before the current one, backup 5 the oldest kept
    assert [p.read_text(encoding="utf-8") for p in found] == [
        "version 5",
        "version 4",
        "version 3",
        "version 2",
        "version 1",
    ]
    assert len(list(tmp_path.iterdir())) == 6  # no temporaries or extra backups left


def test_deleting_everything_keeps_earlier_work(tmp_path: Path) -> None:
    target = tmp_path / "r.geojson"
    work = '{"type": "FeatureCollection", "features": [{"id": 1}]}'
    write_text_keeping_backups(target, work)
    write_text_keeping_backups(target, '{"type": "FeatureCollection", "features": []}')
    assert backup_path(target, 1).read_text(encoding="utf-8") == work


def test_default_keep_and_multi_suffix(tmp_path: Path) -> None:
    target = tmp_path / "x.omicslens.json"
    for i in range(KEEP_BACKUPS + 3):
        write_text_keeping_backups(target, str(i))
    assert len(backup_paths(target)) == KEEP_BACKUPS
    assert backup_paths(target)[0].name == "x.omicslens.backup-1.json"
    assert backup_paths(target)[0].read_text(encoding="utf-8") == str(KEEP_BACKUPS + 1)


def test_backup_paths_ignores_other_files(tmp_path: Path) -> None:
    target = tmp_path / "r.geojson"
    (tmp_path / "r.backup-x.geojson").write_text("no")
    (tmp_path / "other.backup-1.geojson").write_text("no")
    (tmp_path / "r.backup-1.json").write_text("no")
    (tmp_path / "r.backup-2.geojson").write_text("yes")
    (tmp_path / "r.backup-10.geojson").write_text("yes")
    assert backup_paths(target) == [
        tmp_path / "r.backup-2.geojson",
        tmp_path / "r.backup-10.geojson",
    ]


def test_keep_zero_writes_without_backups(tmp_path: Path) -> None:
    target = tmp_path / "r.geojson"
    write_text_keeping_backups(target, "one", keep=0)
    write_text_keeping_backups(target, "two", keep=0)
    assert target.read_text(encoding="utf-8") == "two"
    assert backup_paths(target) == []
