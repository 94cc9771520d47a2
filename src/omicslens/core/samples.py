"""Bundled sample images (real data, see assets/samples/README.md for provenance).

In a source checkout or editable install the files live in ``assets/samples`` at the
repository root; a wheel carries them as ``omicslens/_samples``. Both are searched.
"""

from __future__ import annotations

from pathlib import Path

#: Sample key (as in napari.yaml) -> file name.
SAMPLES: dict[str, str] = {
    "cmu1": "CMU-1-Small-Region.svs",
    "her2st-c6": "her2st-C6-half.ome.tif",
    "bccd-smear": "bccd-BloodImage_00001.tif",
    "bccd-fields": "bccd-six-fields.tif",
}


def _candidate_dirs() -> list[Path]:
    package = Path(__file__).resolve().parents[1]
    return [package / "_samples", package.parents[1] / "assets" / "samples"]


def sample_path(key: str) -> Path:
    """Path of a bundled sample.

    ``KeyError`` lists the valid keys; ``FileNotFoundError`` says where we looked.
    """
    try:
        name = SAMPLES[key]
    except KeyError:
        raise KeyError(f"unknown sample {key!r}; choose one of {', '.join(SAMPLES)}") from None
    for folder in _candidate_dirs():
        if (folder / name).exists():
            return folder / name
    searched = ", ".join(str(d) for d in _candidate_dirs())
    raise FileNotFoundError(f"sample {name} not found (looked in {searched})")


def _model_dirs() -> list[Path]:
    package = Path(__file__).resolve().parents[1]
    return [package / "_models", package.parents[1] / "assets" / "models"]


def bundled_models() -> dict[str, Path]:
    """Model bundles shipped with OmicsLens: folder name -> folder (with a config.json)."""
    found: dict[str, Path] = {}
    for folder in _model_dirs():
        if folder.is_dir():
            for child in sorted(folder.iterdir()):
                if (child / "config.json").is_file():
                    found.setdefault(child.name, child)
    return found


def bundled_tile_models() -> dict[str, Path]:
    """Bundled models that predict slide tiles (cell models, with ``cell_patch``, excluded)."""
    import json

    found = {}
    for name, folder in bundled_models().items():
        try:
            config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if "cell_patch" not in config:
            found[name] = folder
    return found


def resolve_model(name_or_path: str) -> str:
    """A bundled model's folder for its name; anything else (a path, a HF id) unchanged."""
    folder = bundled_models().get(name_or_path)
    return str(folder) if folder is not None and not Path(name_or_path).exists() else name_or_path
