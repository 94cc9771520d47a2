"""Smear corrections autosaved per image (issue 16, item 3): where, what, and when a
stored correction may be applied again; and the red-cell resolution hint (item 7)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import tifffile

from omicslens.core.backups import backup_path
from omicslens.core.errors import OmicsLensError
from omicslens.hemato.resolution_hint import red_cell_estimate_for
from omicslens.hemato.review_store import (
    ReviewStoreError,
    apply_corrections,
    corrections_path,
    load_corrections,
    save_corrections,
)
from tests.conftest import CMU1, SAMPLES

SIX_FIELDS = SAMPLES / "bccd-six-fields.tif"


def fake_analysis(image: Path, model: str = "typing", hash_: str = "h1", shift: float = 0.0):
    """The attributes the store reads from a SmearAnalysis: path, cells, types, corrections."""
    cells = [
        SimpleNamespace(id=1, centre_x=100.0 + shift, centre_y=50.0),
        SimpleNamespace(id=2, centre_x=300.0, centre_y=80.0 + shift),
        SimpleNamespace(id=3, centre_x=500.0, centre_y=90.0),
    ]
    types = SimpleNamespace(model_name=model, model_hash=hash_)
    return SimpleNamespace(path=image, cells=cells, types=types, corrections={})


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "smear.tif"
    path.write_bytes(b"pixels of one smear" * 100)
    return path


def test_corrections_are_saved_under_the_config_folder_and_read_back(
    image: Path, _isolated_config: Path
) -> None:
    analysis = fake_analysis(image)
    analysis.corrections = {2: "Monocyte", 1: "Basophil"}
    file = save_corrections(analysis)
    assert file == corrections_path(image)
    assert file.parent == _isolated_config / "smear-corrections"
    assert file.name.startswith("smear.tif.") and file.name.endswith(".omicslens-corrections.json")
    document = json.loads(file.read_text())
    assert document["typing_model"] == {"name": "typing", "hash": "h1"}
    assert document["image"] == str(image.resolve())
    stored = load_corrections(image)
    assert stored is not None and stored.file == file
    assert [(c.cell_id, c.centre_x, c.centre_y, c.new_class) for c in stored.corrections] == [
        (1, 100.0, 50.0, "Basophil"),
        (2, 300.0, 80.0, "Monocyte"),
    ]
    # each change keeps the previous version as a backup
    analysis.corrections[3] = "Lymphocyte"
    save_corrections(analysis)
    assert backup_path(file, 1).exists()
    assert len(load_corrections(image).corrections) == 3


def test_no_file_means_nothing_stored(image: Path) -> None:
    assert load_corrections(image) is None


def test_only_cells_with_the_same_id_and_centre_get_their_correction(image: Path) -> None:
    first = fake_analysis(image)
    first.corrections = {1: "Basophil", 2: "Monocyte"}
    stored = load_corrections(image, save_corrections(first))
    again = fake_analysis(image, shift=1.5)  # within 2 px: the same cells
    result = apply_corrections(again, stored)
    assert (result.applied, result.skipped) == (2, 0)
    assert again.corrections == {1: "Basophil", 2: "Monocyte"}
    moved = fake_analysis(image)
    moved.cells[1].centre_y += 3.0  # cell 2 is now elsewhere: another cell with its id
    result = apply_corrections(moved, stored)
    assert (result.applied, result.skipped) == (1, 1)
    assert moved.corrections == {1: "Basophil"}
    assert "not found again" in result.reason


def test_another_model_or_a_changed_image_applies_nothing(image: Path) -> None:
    first = fake_analysis(image)
    first.corrections = {1: "Basophil"}
    stored = load_corrections(image, save_corrections(first))
    other_model = fake_analysis(image, hash_="h2")
    result = apply_corrections(other_model, stored)
    assert result.applied == 0 and other_model.corrections == {}
    assert "another model" in result.reason
    image.write_bytes(b"another smear saved over it" * 100)
    changed = fake_analysis(image)
    result = apply_corrections(changed, stored)
    assert result.applied == 0 and changed.corrections == {}
    assert "image changed" in result.reason


@pytest.mark.parametrize("content", ["{not json", '{"kind": "something else"}', '{"kind": 1}'])
def test_an_unreadable_store_is_a_typed_error_naming_the_file(image: Path, content: str) -> None:
    file = corrections_path(image)
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(content)
    with pytest.raises(ReviewStoreError) as caught:
        load_corrections(image)
    assert isinstance(caught.value, OmicsLensError)
    assert str(file) in str(caught.value)


def test_a_malformed_row_is_a_typed_error(image: Path) -> None:
    analysis = fake_analysis(image)
    analysis.corrections = {1: "Basophil"}
    file = save_corrections(analysis)
    document = json.loads(file.read_text())
    del document["corrections"][0]["centre_x"]
    file.write_text(json.dumps(document))
    with pytest.raises(ReviewStoreError, match="malformed"):
        load_corrections(image)


# -- the red-cell resolution hint -------------------------------------------------------
def test_the_red_cell_estimate_of_a_smear() -> None:
    found = red_cell_estimate_for(SIX_FIELDS)
    assert found is not None
    mpp, reason = found
    assert mpp == pytest.approx(0.0721, rel=0.1)  # the estimate the sample states
    assert reason.startswith("median red cell ") and "px = 7.5 um" in reason


def test_no_estimate_for_what_is_not_an_rgb_image(tmp_path: Path) -> None:
    assert red_cell_estimate_for(tmp_path / "missing.tif") is None
    text = tmp_path / "notes.tif"
    text.write_text("not an image")
    assert red_cell_estimate_for(text) is None
    grey = tmp_path / "fluorescence.tif"
    rng = np.random.default_rng(0)
    tifffile.imwrite(grey, rng.integers(0, 4000, (2, 256, 256), dtype=np.uint16))
    assert red_cell_estimate_for(grey) is None


def test_the_estimate_never_raises_on_histology() -> None:
    # not a smear: a value may come back (H&E has red cells too), but never an exception
    found = red_cell_estimate_for(CMU1)
    assert found is None or found[0] > 0


def test_a_correction_whose_cell_is_not_found_again_is_never_dropped(image: Path) -> None:
    first = fake_analysis(image)
    first.corrections = {1: "Basophil", 2: "Monocyte"}
    save_corrections(first)
    moved = fake_analysis(image, shift=10.0)  # cells 1 and 2 no longer where they were
    apply_corrections(moved, load_corrections(image))
    moved.corrections[3] = "Lymphocyte"  # a new decision, then the autosave
    save_corrections(moved)
    kept = {(c.cell_id, c.new_class) for c in load_corrections(image).corrections}
    assert kept == {(1, "Basophil"), (2, "Monocyte"), (3, "Lymphocyte")}


def test_a_store_for_another_model_is_moved_aside_not_overwritten(image: Path) -> None:
    first = fake_analysis(image, model="typing", hash_="h1")
    first.corrections = {1: "Basophil"}
    file = save_corrections(first)
    other = fake_analysis(image, model="typing-v2", hash_="h2")
    other.corrections = {2: "Monocyte"}
    save_corrections(other)
    stored = load_corrections(image)
    assert stored.model_hash == "h2" and [c.cell_id for c in stored.corrections] == [2]
    (aside,) = file.parent.glob("*.superseded-*.json")
    old = load_corrections(image, aside)
    assert old.model_hash == "h1" and [c.new_class for c in old.corrections] == ["Basophil"]
