"""Review sessions: round trip of every field, typed errors naming the file, slide lookup
after the folder moved, a changed slide refused, no silent overwrite."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
from shapely.geometry import Polygon

from omicslens.core.fingerprint import slide_fingerprint
from omicslens.core.regions import Region
from omicslens.core.session import (
    SESSION_FORMAT,
    SESSION_SUFFIX,
    SESSION_VERSION,
    Camera,
    CellCorrection,
    ReviewSession,
    SessionFileError,
    SessionSlideError,
    ShownOutput,
    load_session,
    locate_slide,
    save_session,
)


def _slide(path: Path, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.random.default_rng(seed).integers(0, 255, (16, 16, 3), dtype=np.uint8)
    tifffile.imwrite(path, image, photometric="rgb")
    return path


def _session(slide: Path) -> ReviewSession:
    square = Region("square", np.array([[10, 10], [60, 10], [60, 50], [10, 50]]))
    holed = Region(
        "with hole",
        np.zeros((0, 2)),
        classification="Tumor: Positive",
        geometry=Polygon(
            [(100, 100), (200, 100), (200, 200), (100, 200)],
            [[(130, 130), (160, 130), (160, 160), (130, 160)]],
        ),
        measurements={"score": 0.25},
        locked=True,
        color=(1, 2, 3),
    )
    ellipse = Region(
        "ellipse", np.array([[0, 0], [40, 0], [40, 20], [0, 20]]), shape_type="ellipse"
    )
    return ReviewSession(
        slide_path=str(slide),
        slide_fingerprint=slide_fingerprint(slide),
        mpp=0.25,
        model="/models/hovernet-bundle",
        output=ShownOutput("tumour", contrast_limits=(0.1, 0.9), colormap="magma", opacity=0.6),
        regions=[square, holed, ellipse],
        corrections=[
            CellCorrection(7, 12.5, 30.0, "lymphocyte"),
            CellCorrection(9, 1, 2, "tumour"),
        ],
        camera=Camera(center=(0.0, 512.5, 1024.0), zoom=0.125),
        saved_by="1.2.3",
        saved_at="2025-01-02T03:04:05+00:00",
    )


def test_round_trip_every_field(tmp_path: Path) -> None:
    slide = _slide(tmp_path / "slides" / "s1.tif")
    original = _session(slide)
    target = tmp_path / "reviews" / f"s1{SESSION_SUFFIX}"
    assert save_session(original, target) == target
    loaded = load_session(target)

    assert loaded.slide_path == str(slide.absolute())
    assert loaded.slide_path_relative == os.path.join("..", "slides", "s1.tif")
    assert loaded.slide_fingerprint == original.slide_fingerprint
    assert loaded.mpp == 0.25
    assert loaded.model == "/models/hovernet-bundle"
    assert loaded.output == ShownOutput("tumour", (0.1, 0.9), "magma", 0.6)
    assert loaded.corrections == [
        CellCorrection(7, 12.5, 30.0, "lymphocyte"),
        CellCorrection(9, 1.0, 2.0, "tumour"),
    ]
    assert loaded.camera == Camera((0.0, 512.5, 1024.0), 0.125)
    assert loaded.saved_by == "1.2.3"
    assert loaded.saved_at == "2025-01-02T03:04:05+00:00"

    assert [r.name for r in loaded.regions] == ["square", "with hole", "ellipse"]
    assert [r.id for r in loaded.regions] == [r.id for r in original.regions]
    np.testing.assert_array_equal(
        loaded.regions[0].vertices, [[10, 10], [60, 10], [60, 50], [10, 50]]
    )
    holed = loaded.regions[1]
    assert holed.classification == "Tumor: Positive"
    assert holed.measurements == {"score": 0.25}
    assert holed.locked and holed.color == (1, 2, 3)
    assert holed.area_px() == 100 * 100 - 30 * 30  # the hole survived
    ellipse = loaded.regions[2]
    assert ellipse.shape_type == "ellipse"
    np.testing.assert_allclose(ellipse.vertices, [[0, 0], [40, 0], [40, 20], [0, 20]], atol=1e-9)


def test_file_layout(tmp_path: Path) -> None:
    slide = _slide(tmp_path / "s.tif")
    target = save_session(_session(slide), tmp_path / f"s{SESSION_SUFFIX}")
    text = target.read_text(encoding="utf-8")
    assert text.startswith('{\n "format"')  # indent 1
    data = json.loads(text)
    assert data["format"] == SESSION_FORMAT and data["version"] == SESSION_VERSION
    assert data["slide_path_relative"] == "s.tif"
    assert data["regions"]["type"] == "FeatureCollection"
    assert len(data["regions"]["features"]) == 3
    assert data["regions"]["features"][0]["geometry"]["type"] == "Polygon"


def test_minimal_session_and_stamps(tmp_path: Path) -> None:
    slide = _slide(tmp_path / "s.tif")
    target = save_session(ReviewSession(str(slide), slide_fingerprint(slide)), tmp_path / "m.json")
    loaded = load_session(target)
    assert loaded.regions == [] and loaded.corrections == []
    assert loaded.output is None and loaded.camera is None and loaded.mpp is None
    assert loaded.saved_by  # filled with the installed version
    assert loaded.saved_at.endswith("+00:00")


def test_overwrite_refused(tmp_path: Path) -> None:
    slide = _slide(tmp_path / "s.tif")
    target = tmp_path / "r.omicslens.json"
    target.write_text("keep me")
    with pytest.raises(FileExistsError, match=re.escape(str(target))):
        save_session(_session(slide), target)
    assert target.read_text() == "keep me"
    save_session(_session(slide), target, overwrite=True)
    assert load_session(target).mpp == 0.25


def _valid(tmp_path: Path) -> dict[str, Any]:
    slide = _slide(tmp_path / "s.tif")
    target = save_session(_session(slide), tmp_path / "valid.omicslens.json")
    data: dict[str, Any] = json.loads(target.read_text())
    return data


def _broken(data: dict[str, Any], path: list[str], value: Any) -> dict[str, Any]:
    broken = json.loads(json.dumps(data))
    node = broken
    for key in path[:-1]:
        node = node[key]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return broken


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (["format"], "something-else", "not an OmicsLens session"),
        (["format"], _DELETE, "not an OmicsLens session"),
        (["version"], SESSION_VERSION + 1, "saved by a newer OmicsLens"),
        (["version"], "1", "field 'version'"),
        (["slide_path"], _DELETE, "field 'slide_path' is missing"),
        (["slide_path"], 3, "field 'slide_path'"),
        (["slide_fingerprint"], None, "field 'slide_fingerprint'"),
        (["mpp"], "0.25", "field 'mpp'"),
        (["mpp"], -1, "field 'mpp'"),
        (["model"], 5, "field 'model'"),
        (["output"], [], "field 'output'"),
        (["output", "label"], _DELETE, "field 'output.label' is missing"),
        (["output", "contrast_limits"], [1], "field 'output.contrast_limits'"),
        (["output", "opacity"], True, "field 'output.opacity'"),
        (["camera", "center"], "middle", "field 'camera.center'"),
        (["camera", "zoom"], 0, "field 'camera.zoom'"),
        (["corrections"], {}, "field 'corrections'"),
        (["corrections", "0", "cell_id"], 1.5, "field 'corrections[0].cell_id'"),
        (["corrections", "1", "label"], _DELETE, "field 'corrections[1].label' is missing"),
        (["regions"], "none", "field 'regions'"),
        (["regions", "features", "0", "geometry"], None, "field 'regions', feature 0"),
    ],
)
def test_bad_fields_name_file_and_field(
    tmp_path: Path, path: list[str], value: Any, expected: str
) -> None:
    data = _valid(tmp_path)
    keys: list[Any] = [int(k) if k.isdigit() else k for k in path]
    broken = _broken(data, keys, value)
    target = tmp_path / "broken.omicslens.json"
    target.write_text(json.dumps(broken))
    with pytest.raises(SessionFileError, match=re.escape(f"{target}: ")) as caught:
        load_session(target)
    assert expected in str(caught.value)
    assert caught.value.path == target
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"{not json", "not a JSON session file"),
        (b"\xff\xfe\x00", "not a JSON session file"),
        (b"[1, 2]", "not an OmicsLens session"),
        (b'"text"', "not an OmicsLens session"),
    ],
)
def test_unreadable_files(tmp_path: Path, content: bytes, expected: str) -> None:
    target = tmp_path / "bad.omicslens.json"
    target.write_bytes(content)
    with pytest.raises(SessionFileError, match=re.escape(f"{target}: ")) as caught:
        load_session(target)
    assert expected in str(caught.value)


def test_missing_file(tmp_path: Path) -> None:
    target = tmp_path / "gone.omicslens.json"
    with pytest.raises(SessionFileError, match=re.escape(f"{target}: no such session file")):
        load_session(target)


def test_locate_slide_at_absolute_path(tmp_path: Path) -> None:
    slide = _slide(tmp_path / "slides" / "s.tif")
    target = save_session(_session(slide), tmp_path / "reviews" / "s.omicslens.json")
    assert locate_slide(load_session(target), target) == slide


def test_moved_folder_found_through_relative_path(tmp_path: Path) -> None:
    project = tmp_path / "project"
    slide = _slide(project / "slides" / "s.tif")
    save_session(_session(slide), project / "reviews" / "s.omicslens.json")
    moved = tmp_path / "elsewhere" / "copy"
    shutil.copytree(project, moved)
    shutil.rmtree(project)  # the absolute path no longer exists

    session_file = moved / "reviews" / "s.omicslens.json"
    session = load_session(session_file)
    assert not Path(session.slide_path).exists()
    assert locate_slide(session, session_file) == moved / "slides" / "s.tif"


def test_copied_folder_with_original_changed_opens_its_copy(tmp_path: Path) -> None:
    project = tmp_path / "project"
    slide = _slide(project / "s.tif")
    save_session(_session(slide), project / "s.omicslens.json")
    copy = tmp_path / "copy"
    shutil.copytree(project, copy)
    _slide(slide, seed=1)  # the original is rescanned
    session_file = copy / "s.omicslens.json"
    assert locate_slide(load_session(session_file), session_file) == copy / "s.tif"


def test_changed_slide_refused(tmp_path: Path) -> None:
    slide = _slide(tmp_path / "s.tif")
    target = save_session(_session(slide), tmp_path / "s.omicslens.json")
    _slide(slide, seed=1)  # same name, different content
    with pytest.raises(SessionSlideError) as caught:
        locate_slide(load_session(target), target)
    message = str(caught.value)
    assert message.startswith(f"{target}:")
    assert f"the file at {slide} has changed since the session was saved" in message
    assert isinstance(caught.value, SessionFileError)


def test_missing_slide_names_both_paths(tmp_path: Path) -> None:
    slide = _slide(tmp_path / "slides" / "s.tif")
    target = save_session(_session(slide), tmp_path / "reviews" / "s.omicslens.json")
    moved = tmp_path / "a" / "b"
    moved.mkdir(parents=True)
    shutil.move(target, moved / target.name)
    slide.unlink()
    session_file = moved / target.name
    with pytest.raises(SessionSlideError) as caught:
        locate_slide(load_session(session_file), session_file)
    message = str(caught.value)
    assert "not found" in message
    assert str(slide) in message
    assert str(tmp_path / "a" / "slides" / "s.tif") in message  # the relative one, resolved
