"""Malformed measured-expression inputs (the fixes behind ``bench fuzz --only measured``):
every one is a ``MeasuredDataError`` naming the file and the field, and spots dropped
because one table lacks them come with a warning. Inputs are written from the real
HER2ST cut (section C5) in the published layouts."""

from __future__ import annotations

import gzip
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from omicslens.bench.fuzz.measured_h5 import write_h5ad, write_visium
from omicslens.core.measured import MeasuredDataError, MeasuredDataWarning, load_measured

CUT = Path(__file__).resolve().parents[1] / "data" / "her2st-cut"


@pytest.fixture(scope="module")
def c5():
    return load_measured(CUT, section="C5")


@pytest.fixture
def her2st(tmp_path: Path) -> Path:
    for part, name in (("counts", "C5.tsv.gz"), ("spots", "C5_selection.tsv")):
        (tmp_path / part).mkdir()
        shutil.copy(CUT / part / name, tmp_path / part / name)
    return tmp_path


def _edit_table(path: Path, change: Callable[[list[list[str]]], object]) -> None:
    gz = path.name.endswith(".gz")
    text = gzip.decompress(path.read_bytes()).decode() if gz else path.read_text()
    rows = [line.split("\t") for line in text.rstrip("\n").split("\n")]
    change(rows)
    data = ("\n".join("\t".join(r) for r in rows) + "\n").encode()
    path.write_bytes(gzip.compress(data) if gz else data)


def _refused(path: Path, *words: str, section: str | None = None) -> str:
    """Loading ``path`` is refused with a message naming it and holding ``words``."""
    with pytest.raises(MeasuredDataError) as caught:
        load_measured(path, section)
    message = str(caught.value)
    assert str(path) in message
    for word in words:
        assert word in message, message
    return message


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("NaN", ["negative, NaN"]),
        ("-inf", ["negative, NaN"]),
        ("-5", ["negative, NaN"]),
        ("1e39", ["beyond float32"]),
        ("abc", ["row 3", "is not a count"]),
    ],
)
def test_her2st_bad_count_names_row_and_gene(her2st: Path, value: str, words: list[str]) -> None:
    counts = her2st / "counts" / "C5.tsv.gz"
    _edit_table(counts, lambda rows: rows[2].__setitem__(3, value))
    _refused(her2st, str(counts), *words, section="C5")


def test_her2st_duplicate_spot_and_no_gene_columns(her2st: Path) -> None:
    counts = her2st / "counts" / "C5.tsv.gz"
    _edit_table(counts, lambda rows: rows.insert(2, list(rows[1])))
    _refused(her2st, "appears twice", section="C5")
    _edit_table(counts, lambda rows: rows.__setitem__(slice(None), [r[:1] for r in rows]))
    _refused(her2st, "no gene columns", section="C5")


def test_her2st_crlf_and_trailing_blank_line_still_read(her2st: Path, c5) -> None:
    counts = her2st / "counts" / "C5.tsv.gz"
    data = gzip.decompress(counts.read_bytes()).replace(b"\n", b"\r\n") + b"\r\n"
    counts.write_bytes(gzip.compress(data))
    measured = load_measured(her2st, "C5")
    assert measured.genes == c5.genes  # no "\r" left on the last gene name
    np.testing.assert_array_equal(measured.counts, c5.counts)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda rows: rows[2].__setitem__(0, "NaN"), ["row 3 x", "whole number"]),
        (lambda rows: rows[2].__setitem__(4, "inf"), ["row 3 pixel_x", "finite"]),
        (lambda rows: rows[3].pop(), ["row 4", "one field per column"]),
        (lambda rows: rows[0].__setitem__(4, "px"), ["no column pixel_x"]),
        (lambda rows: rows[2].__setitem__(6, "maybe"), ["selected"]),
        (lambda rows: rows.insert(2, list(rows[1])), ["listed twice"]),
        (lambda rows: [r.__setitem__(6, "0") for r in rows[1:]], ["no selected spot"]),
    ],
)
def test_her2st_bad_spot_table_is_named(her2st: Path, change: Callable, words: list[str]) -> None:
    spots = her2st / "spots" / "C5_selection.tsv"
    _edit_table(spots, change)
    _refused(her2st, str(spots), *words, section="C5")


def test_her2st_spot_table_not_utf8(her2st: Path) -> None:
    spots = her2st / "spots" / "C5_selection.tsv"
    spots.write_bytes(spots.read_bytes().replace(b"\n", b"\xe9\xff\n", 2))
    _refused(her2st, str(spots), "cannot read spot table", section="C5")


def test_her2st_spots_missing_from_table_are_warned(her2st: Path) -> None:
    spots = her2st / "spots" / "C5_selection.tsv"
    _edit_table(spots, lambda rows: rows.__delitem__(slice(1, 4)))
    with pytest.warns(MeasuredDataWarning, match="3 spot"):
        measured = load_measured(her2st, "C5")
    assert measured.n_spots == 22


@pytest.fixture
def visium(tmp_path: Path, c5) -> Path:
    return write_visium(tmp_path, c5)


def _h5(path: Path, key: str, value: object) -> None:
    import h5py

    with h5py.File(path, "r+") as h5:
        del h5[key]
        if value is not None:
            h5[key] = value


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("matrix/shape", np.array([2**31 - 1, 2**31 - 1]), ["/matrix/shape"]),
        ("matrix/indptr", np.array([0, 5]), ["/matrix/indptr"]),
        ("matrix/indices", np.full(4322, 10**6), ["/matrix/indices"]),
        ("matrix/data", np.full(4322, -4, np.int32), ["/matrix/data", "negative"]),
        ("matrix/data", np.array([b"x"] * 4322), ["/matrix/data", "not"]),
        ("matrix/barcodes", np.array([b"\xe9\xff-1"] * 25), ["barcode 0", "UTF-8"]),
        ("matrix/barcodes", np.array([b"14x12-1"] * 25), ["appears twice"]),
        ("matrix/features/name", np.arange(205), ["/matrix/features/name"]),
        ("matrix/barcodes", None, ["barcodes is missing"]),
    ],
)
def test_visium_bad_matrix_is_named(visium: Path, key: str, value, words: list[str]) -> None:
    matrix = visium / "filtered_feature_bc_matrix.h5"
    _h5(matrix, key, value)
    _refused(visium, str(matrix), *words)


def test_visium_damaged_matrix_file(visium: Path) -> None:
    matrix = visium / "filtered_feature_bc_matrix.h5"
    matrix.write_bytes(matrix.read_bytes()[:512])
    _refused(visium, str(matrix), "not a readable HDF5")


@pytest.mark.parametrize(
    ("row", "column", "value", "words"),
    [
        (2, 2, "inf", ["row 3 array_row"]),
        (2, 4, "NaN", ["row 3 pxl_row_in_fullres"]),
        (2, 5, "abc", ["row 3 pxl_col_in_fullres", "not a number"]),
    ],
)
def test_visium_bad_positions_are_named(
    visium: Path, row: int, column: int, value: str, words: list[str]
) -> None:
    positions = visium / "spatial" / "tissue_positions.csv"
    rows = [line.split(",") for line in positions.read_text().splitlines()]
    rows[row][column] = value
    positions.write_text("\n".join(",".join(r) for r in rows) + "\n")
    _refused(visium, str(positions), *words)


def test_visium_short_or_empty_positions(visium: Path) -> None:
    positions = visium / "spatial" / "tissue_positions.csv"
    positions.write_text("barcode,in_tissue\n14x12-1,1\n")
    _refused(visium, str(positions), "fields")
    positions.write_text("")
    _refused(visium, str(positions), "no spot positions")


@pytest.mark.parametrize("text", ['{"spot_diameter_fullres": 0}', "[1, 2]", "", '{"a": 1'])
def test_visium_bad_scalefactors(visium: Path, text: str) -> None:
    factors = visium / "spatial" / "scalefactors_json.json"
    factors.write_text(text)
    _refused(visium, str(factors))


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("obsm/spatial", np.zeros(25), ["obsm['spatial']"]),
        ("obsm/spatial", np.full((25, 2), np.nan), ["obsm['spatial']", "NaN"]),
        ("layers/counts", np.full((25, 205), -3, np.float32), ["layers['counts']"]),
        ("layers/counts", np.full((25, 205), np.inf, np.float32), ["layers['counts']"]),
        ("layers/counts", np.zeros((25, 3), np.float32), []),
        ("obs/_index", np.array([b"s"] * 25), ["appears twice"]),
        ("var/_index", np.array([b"G\xe9\xff"] * 205), []),
    ],
)
def test_h5ad_bad_fields_are_named(tmp_path: Path, c5, key: str, value, words: list[str]) -> None:
    path = write_h5ad(tmp_path / "s.h5ad", c5)
    _h5(path, key, value)
    _refused(path, *words)


@pytest.mark.parametrize("cut", [0, 8, 1024])
def test_h5ad_truncated_or_not_a_file(tmp_path: Path, c5, cut: int) -> None:
    path = write_h5ad(tmp_path / "s.h5ad", c5)
    path.write_bytes(path.read_bytes()[:cut])
    _refused(path, "not a readable .h5ad")


def test_h5ad_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "s.h5ad").mkdir()
    _refused(tmp_path / "s.h5ad", "not a file")


def test_pitch_of_one_array_row_is_none(c5) -> None:
    from dataclasses import replace

    flat = replace(c5, array_xy=np.zeros_like(c5.array_xy))
    assert flat.pitch_mpp() is None


def test_her2st_missing_header_and_huge_array_coordinate(her2st: Path) -> None:
    counts = her2st / "counts" / "C5.tsv.gz"
    spots = her2st / "spots" / "C5_selection.tsv"
    original = spots.read_bytes()
    _edit_table(spots, lambda rows: rows[2].__setitem__(0, "1e39"))
    _refused(her2st, str(spots), "row 3 x", section="C5")
    spots.write_bytes(original)
    _edit_table(counts, lambda rows: rows.pop(0))
    _refused(her2st, str(counts), "no header", section="C5")


def test_spots_off_the_image_are_skipped_or_refused(c5) -> None:
    width, height = int(c5.x.max()) + 1, int(c5.y.max()) + 1
    assert c5.inside(width, height, "slide.tif") is c5
    x = c5.x.copy()
    x[0] = 1e9
    from dataclasses import replace

    moved = replace(c5, x=x)
    with pytest.warns(MeasuredDataWarning, match=r"1 spot\(s\) lie outside the image slide\.tif"):
        kept = moved.inside(width, height, "slide.tif")
    assert kept.n_spots == c5.n_spots - 1 and kept.array_xy is not None
    assert len(kept.array_xy) == kept.n_spots
    with pytest.raises(MeasuredDataError, match=r"no spot lies on slide\.tif"):
        replace(c5, x=c5.x + 1e9).inside(width, height, "slide.tif")


def test_pitch_refuses_a_spot_off_its_array_position(c5) -> None:
    from dataclasses import replace

    assert c5.pitch_mpp() == pytest.approx(0.688, abs=0.01)
    x = c5.x.copy()
    x[3] = 1e9
    with pytest.raises(MeasuredDataError, match="do not follow the array"):
        replace(c5, x=x, path=CUT).pitch_mpp()
