"""Region (QuPath GeoJSON) inputs and mutations, and the region import check.

Sources are the GeoJSON files QuPath itself wrote (``tests/data/qupath``): a
FeatureCollection and the same objects as a bare array. Each case runs the region import
that ``omicslens predict --regions`` and the viewer's Regions dock both use
(:func:`omicslens.core.regions.read_regions`); a subset also runs ``omicslens predict
--regions`` on the small slide with the small bundle. A malformed feature must be refused
with a typed error naming the file and ``feature N``; a feature that is dropped must be
reported with a warning; a file with no usable region must be an error.
"""

from __future__ import annotations

import copy
import gzip
import json
import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omicslens.bench.fuzz.outputs import classify_predict
from omicslens.bench.fuzz.runner import (
    Case,
    Context,
    Outcome,
    outcome_of_exception,
    register_check,
)
from omicslens.bench.fuzz.slides import Source

REGION_RUNS = ("import", "predict")
#: every this-many-th case also runs ``predict --regions`` (plus every document-level one)
PREDICT_EVERY = 4


def region_sources(data_dir: Path, slide: Path | None, bundle: Path | None) -> list[Source]:
    found = []
    for key, name in (("regions-qupath-fc", "fc"), ("regions-qupath-array", "array")):
        path = data_dir / "qupath" / f"qupath-written-{name}.geojson"
        if path.is_file():
            found.append(Source(key, path, family="regions", slide=slide, bundle=bundle))
    return found


def _case(
    source: Source,
    kind: str,
    detail: str,
    make: Callable[[Any], Any] | None = None,
    raw: Callable[[bytes], bytes] | None = None,
    feature: int | None = None,
    hang: bool = False,
) -> Case:
    def build(folder: Path) -> Path:
        data = source.path.read_bytes()
        if make is not None:
            document = make(copy.deepcopy(json.loads(data)))
            data = document if isinstance(document, bytes) else json.dumps(document).encode()
        if raw is not None:
            data = raw(data)
        target = folder / f"{kind}-{detail}.geojson"[:90].replace("/", "_")
        target.write_bytes(data)
        return target

    options: dict[str, Any] = {"feature": feature}
    if source.slide is not None and source.bundle is not None:
        options.update(slide=str(source.slide), bundle=str(source.bundle))
    return Case(
        source.key,
        kind,
        detail,
        build,
        hang_prone=hang,
        check="regions",
        options=options,
        runs=REGION_RUNS,
    )


def _features(document: Any) -> list[Any]:
    return document if isinstance(document, list) else document["features"]


def _edit_feature(index: int, change: Callable[[dict[str, Any]], object]) -> Callable:
    def make(document: Any) -> Any:
        change(_features(document)[index])
        return document

    return make


def _raw_token(index: int, path: list[Any], token: str) -> Callable[[Any], bytes]:
    """Set a value inside feature ``index`` to raw JSON text (``NaN``, ``1e999``...)."""

    def make(document: Any) -> bytes:
        node: Any = _features(document)[index]
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = "@@RAW@@"
        return json.dumps(document).replace('"@@RAW@@"', token).encode("utf-8", "surrogatepass")

    return make


def _at(keys: list[Any], value: Any) -> Callable[[dict[str, Any]], None]:
    def change(node: Any) -> None:
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value

    return change


def _drop(keys: list[Any]) -> Callable[[dict[str, Any]], None]:
    def change(node: Any) -> None:
        for key in keys[:-1]:
            node = node[key]
        node.pop(keys[-1], None)

    return change


_SQUARE = [[0, 0], [100, 0], [100, 100], [0, 100], [0, 0]]
_GEOMETRY_EDITS: list[tuple[str, list[Any], Any]] = [
    ("geometry-null", ["geometry"], None),
    ("geometry-str", ["geometry"], "x"),
    ("type-unknown", ["geometry", "type"], "Hexagon"),
    ("type-null", ["geometry", "type"], None),
    ("coordinates-empty", ["geometry", "coordinates"], []),
    ("coordinates-empty-ring", ["geometry", "coordinates"], [[]]),
    ("coordinates-str", ["geometry", "coordinates"], "0,0,1,1"),
    ("coordinates-dict", ["geometry", "coordinates"], {"x": 1}),
    ("not-numbers", ["geometry", "coordinates"], [[["a", "b"], ["c", "d"], ["e", "f"]]]),
    ("nan-strings", ["geometry", "coordinates"], [[["NaN", 0], [1, 1], [0, 1], ["NaN", 0]]]),
    ("nulls", ["geometry", "coordinates"], [[[None, None]] * 4]),
    ("booleans", ["geometry", "coordinates"], [[[True, False], [True, True], [False, True]]]),
    ("unclosed", ["geometry", "coordinates"], [[[0, 0], [100, 0], [100, 100], [0, 100]]]),
    ("one-point", ["geometry", "coordinates"], [[[5, 5]]]),
    ("two-points", ["geometry", "coordinates"], [[[5, 5], [9, 9]]]),
    ("collinear", ["geometry", "coordinates"], [[[0, 0], [5, 5], [9, 9], [0, 0]]]),
    ("bowtie", ["geometry", "coordinates"], [[[0, 0], [100, 100], [100, 0], [0, 100], [0, 0]]]),
    ("ragged", ["geometry", "coordinates"], [[[0, 0], [100], [100, 100, 5, 6], [0, 0]]]),
    ("three-d", ["geometry", "coordinates"], [[[0, 0, 1], [100, 0, 1], [100, 100, 1], [0, 0, 1]]]),
    ("huge-1e300", ["geometry", "coordinates"], [[[0, 0], [1e300, 0], [1e300, 1e300], [0, 0]]]),
    ("huge-1e15", ["geometry", "coordinates"], [[[0, 0], [1e15, 0], [1e15, 1e15], [0, 0]]]),
    (
        "negative",
        ["geometry", "coordinates"],
        [[[-5e6, -5e6], [-4e6, -5e6], [-4e6, -4e6], [-5e6, -5e6]]],
    ),
    (
        "hole-outside",
        ["geometry", "coordinates"],
        [_SQUARE, [[500, 500], [600, 500], [600, 600], [500, 500]]],
    ),
    ("point", ["geometry"], {"type": "Point", "coordinates": [5, 5]}),
    ("line", ["geometry"], {"type": "LineString", "coordinates": [[5, 5], [9, 9]]}),
    ("collection-empty", ["geometry"], {"type": "GeometryCollection", "geometries": []}),
    (
        "collection-point",
        ["geometry"],
        {"type": "GeometryCollection", "geometries": [{"type": "Point", "coordinates": [1, 1]}]},
    ),
    ("multipolygon-empty", ["geometry"], {"type": "MultiPolygon", "coordinates": []}),
    ("multipolygon-flat", ["geometry"], {"type": "MultiPolygon", "coordinates": _SQUARE}),
    ("plane-str", ["geometry", "plane"], "z"),
    ("ellipse-yes", ["geometry", "isEllipse"], "yes"),
]
_PROPERTY_EDITS: list[tuple[str, list[Any], Any]] = [
    ("properties-null", ["properties"], None),
    ("properties-list", ["properties"], [1, 2]),
    ("properties-str", ["properties"], "x"),
    ("name-int", ["properties", "name"], 5),
    ("name-nul", ["properties", "name"], "a\x00b"),
    ("name-newline", ["properties", "name"], "a\nb"),
    ("name-tab", ["properties", "name"], "a\tb"),
    ("name-semicolon", ["properties", "name"], "a;b"),
    ("name-comma-quote", ["properties", "name"], 'a,"b"'),
    ("name-empty", ["properties", "name"], ""),
    ("name-long", ["properties", "name"], "n" * 100_000),
    ("class-int", ["properties", "classification"], 5),
    ("class-list", ["properties", "classification"], ["Tumor"]),
    ("class-name-int", ["properties", "classification"], {"name": 5, "color": [1, 2, 3]}),
    ("class-names-str", ["properties", "classification"], {"names": "Tumor"}),
    ("class-name-empty", ["properties", "classification"], {"name": "", "color": [1, 2, 3]}),
    ("class-empty", ["properties", "classification"], {}),
    ("class-nul", ["properties", "classification"], {"name": "T\x00", "color": [1, 2, 3]}),
    ("class-colour-str", ["properties", "classification"], {"name": "T", "color": "red"}),
    ("class-colour-huge", ["properties", "classification"], {"name": "T", "color": [1e308, -5, 3]}),
    ("class-parent-loop", ["properties", "classification"], {"name": "T", "parentClass": "x"}),
    ("measurements-str", ["properties", "measurements"], "x"),
    ("measurements-text", ["properties", "measurements"], {"a": "abc"}),
    ("measurements-bool", ["properties", "measurements"], {"a": True}),
    ("measurements-list-junk", ["properties", "measurements"], [1, {"name": "a"}]),
    ("measurements-nested", ["properties", "measurements"], {"a": {"b": 1}}),
    ("locked-str", ["properties", "isLocked"], "yes"),
    ("object-type-int", ["properties", "objectType"], 5),
    ("object-type-null", ["properties", "objectType"], None),
    ("object-type-list", ["properties", "objectType"], ["annotation"]),
    ("colour-str", ["properties", "color"], "red"),
    ("colour-short", ["properties", "color"], [1, 2]),
    ("colour-bool", ["properties", "color"], True),
    ("id-int", ["id"], 7),
    ("id-object", ["id"], {"a": 1}),
    ("nucleus-junk", ["nucleusGeometry"], {"type": "Polygon"}),
    ("feature-type", ["type"], "Foo"),
]


def region_cases(source: Source) -> list[Case]:
    cases: list[Case] = []
    is_array = source.key.endswith("array")

    def add(kind: str, detail: str, **kwargs: Any) -> None:
        cases.append(_case(source, kind, detail, **kwargs))

    for index in (0, 1, 3):  # a simple polygon, one with a hole, the ellipse
        for detail, keys, value in _GEOMETRY_EDITS:
            add(
                "geometry",
                f"{index}-{detail}",
                make=_edit_feature(index, _at(keys, value)),
                feature=index,
            )
        for token in ("NaN", "Infinity", "-Infinity", "1e999"):
            coordinate = ["geometry", "coordinates", 0, 1, 0]
            add(
                "geometry",
                f"{index}-{token}",
                make=_raw_token(index, coordinate, token),
                feature=index,
            )
        for detail in ("geometry", "properties", "type"):
            add(
                "feature",
                f"{index}-no-{detail}",
                make=_edit_feature(index, _drop([detail])),
                feature=index,
            )
        add(
            "geometry",
            f"{index}-no-coordinates",
            make=_edit_feature(index, _drop(["geometry", "coordinates"])),
            feature=index,
        )
        nested = "[" * 1000 + "1.0, 2.0" + "]" * 1000
        add(
            "geometry",
            f"{index}-nested-1000",
            make=_raw_token(index, ["geometry", "coordinates"], nested),
            feature=index,
        )
    for index in (0, 2):
        for detail, keys, value in _PROPERTY_EDITS:
            add(
                "properties",
                f"{index}-{detail}",
                make=_edit_feature(index, _at(keys, value)),
                feature=index,
            )
        add(
            "properties",
            f"{index}-name-surrogate",
            make=_raw_token(index, ["properties", "name"], '"a\\ud800"'),
            feature=index,
        )
    for index, value in ((0, None), (1, 5), (2, "Feature")):
        add(
            "feature",
            f"{index}-is-{value}",
            make=lambda d, i=index, v=value: _replace(d, i, v),
            feature=index,
        )
    # document level
    if not is_array:
        for detail, value in (("null", None), ("str", "x"), ("object", {}), ("int", 1)):
            add("document", f"features-{detail}", make=lambda d, v=value: {**d, "features": v})
        add("document", "features-missing", make=lambda d: {"type": "FeatureCollection"})
        add("document", "type-unknown", make=lambda d: {**d, "type": "Foo"})
        add("document", "bare-feature", make=lambda d: d["features"][0])
        add("document", "bare-geometry", make=lambda d: d["features"][0]["geometry"])
    add("document", "empty", make=lambda d: [] if isinstance(d, list) else {**d, "features": []})
    add(
        "document",
        "only-detections",
        make=lambda d: _all(d, _at(["properties", "objectType"], "detection")),
    )
    add(
        "document",
        "only-points",
        make=lambda d: _all(d, _at(["geometry"], {"type": "Point", "coordinates": [1, 2]})),
    )
    add("document", "only-null-geometry", make=lambda d: _all(d, _at(["geometry"], None)))
    size = source.path.stat().st_size
    for cut in sorted({0, 1, 10, size // 3, size // 2, size - 2}):
        add("file", f"truncate-{cut}", raw=lambda b, c=cut: b[:c])
    add("file", "not-utf8", raw=lambda b: b.replace(b"Tumour", b"Tum\xff\xfeur", 1))
    add("file", "bom", raw=lambda b: b"\xef\xbb\xbf" + b)
    add("file", "utf16", raw=lambda b: b.decode().encode("utf-16"))
    add("file", "nul", raw=lambda b: b"\x00" * 64)
    add("file", "gzip", raw=lambda b: gzip.compress(b, mtime=0))
    add("file", "gzip-truncated", raw=lambda b: gzip.compress(b, mtime=0)[:40])
    add("file", "nested-100k", raw=lambda b: b"[" * 100_000 + b"]" * 100_000, hang=True)
    add(
        "file",
        "nested-100k-in-geometry",
        make=_raw_token(0, ["geometry", "coordinates"], "[" * 100_000 + "]" * 100_000),
        feature=0,
        hang=True,
    )
    add("file", "padded-50mb", raw=lambda b: b + b" " * 50_000_000, hang=True)
    add("file", "2k-features", make=lambda d: _many(d, 2_000), hang=True)
    return cases


def _replace(document: Any, index: int, value: Any) -> Any:
    _features(document)[index] = value
    return document


def _all(document: Any, change: Callable[[dict[str, Any]], object]) -> Any:
    for feature in _features(document):
        change(feature)
    return document


def _many(document: Any, count: int) -> Any:
    first = _features(document)[0]
    features = [copy.deepcopy(first) for _ in range(count)]
    for number, feature in enumerate(features):
        feature["id"] = f"00000000-0000-4000-8000-{number:012d}"
    return features if isinstance(document, list) else {**document, "features": features}


# -- the check ------------------------------------------------------------------------
def _annotation_count(path: Path) -> int | None:
    """Annotation features in a file that parses as JSON (what an import should return)."""
    try:
        document = json.loads(path.read_bytes())
        features = _features(document)
        return sum(
            1
            for f in features
            if isinstance(f, dict)
            and isinstance(f.get("properties") or {}, dict)
            and (f.get("properties") or {}).get("objectType", "annotation") == "annotation"
        )
    except Exception:
        return None


def import_regions(path: Path, feature: int | None) -> Outcome:
    """The import ``predict --regions`` and the Regions dock use; what it must do."""
    from omicslens.core.regions import RegionFileError, read_regions

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            regions = read_regions(path)
        except BaseException as error:
            if isinstance(error, KeyboardInterrupt):
                raise
            outcome = outcome_of_exception(error, path)
            text = str(error)
            if (
                isinstance(error, RegionFileError)
                and outcome[0] == "typed"
                and feature is not None
                and f"feature {feature}" not in text
                and "no usable region" not in text
                and "not readable GeoJSON" not in text  # the parser gave up: no feature yet
            ):
                return "unnamed", f"does not name feature {feature}: {outcome[1]}"
            return outcome
    if not regions:
        return "invalid-output", "no regions imported and no error"
    for region in regions:
        bounds = region.bounds
        if not all(math.isfinite(v) for v in bounds) or not region.area_px() > 0:
            return "invalid-output", f"region {region.name!r}: bounds {bounds}"
        # the importer's rule: printable text, newlines and tabs allowed (QuPath has them)
        text = region.name.replace("\n", " ").replace("\t", " ")
        if not isinstance(region.name, str) or not text.isprintable():
            return "invalid-output", f"region name {region.name!r} is not printable text"
    expected = _annotation_count(path)
    told = [w for w in caught if str(path) in str(w.message)]
    if expected is not None and len(regions) < expected and not told:
        return "invalid-output", f"{expected - len(regions)} annotation(s) dropped silently"
    return "ok", f"{len(regions)} regions"


@register_check(
    "regions",
    preload=(
        "omicslens.core.regions",
        "omicslens.app.predict",
        "omicslens.models.loading",
        "torch",
    ),
)
def check_regions(ctx: Context, path: Path, options: dict[str, Any]) -> dict[str, Outcome]:
    runs = {"import": import_regions(path, options.get("feature"))}
    if options.get("predict") and options.get("slide"):
        import torch

        torch.set_num_threads(1)
        slide = Path(options["slide"])
        out_dir = path.parent / "out"
        argv = ["predict", str(slide), "--model", options["bundle"], "--out", str(out_dir)]
        argv += ["--regions", str(path), "--format", "csv", "--device", "cpu"]
        runs["predict"] = ctx.run_cli(
            argv,
            path,
            lambda rc, out, err: classify_predict(rc, out, err, path, out_dir / slide.name),
        )
    return runs


def with_predict(cases: list[Case]) -> list[Case]:
    """Mark every PREDICT_EVERY-th case, and every document/file case, to run predict too."""
    for number, case in enumerate(cases):
        if "slide" in case.options and (
            number % PREDICT_EVERY == 0 or case.kind in ("document", "file")
        ):
            case.options["predict"] = True
    return cases
