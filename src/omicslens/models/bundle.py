"""A model bundle: a folder with ``config.json`` and one weights file (WSInfer's layout).

``load_bundle`` finds the folder (local path, or a Hugging Face repo already in the local
cache), validates the config, and locates the weights; it reads no tensors and imports
no torch, so listing and inspecting models stays cheap. :func:`omicslens.models.load_model`
turns a bundle into a module.
"""

from __future__ import annotations

import hashlib
import zipfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from omicslens.core.domain import DOMAIN_FILE, DOMAIN_OUTPUT_META, DomainReference, load_reference
from omicslens.core.robustness import RobustnessReport, load_bundle_robustness
from omicslens.models.config import BundleConfig, TransformStep, invert_output_transform
from omicslens.models.errors import BundleNotFoundError, WeightsError, WeightsNotFoundError
from omicslens.models.hub import find_cached_snapshot, hf_hub_cache, looks_like_repo_id

__all__ = [
    "WEIGHTS_CANDIDATES",
    "BundleConfig",
    "ModelBundle",
    "TransformStep",
    "WeightsFormat",
    "invert_output_transform",
    "load_bundle",
    "sniff_weights_format",
]

WeightsFormat = Literal["torchscript", "safetensors", "state_dict"]

CONFIG_NAME = "config.json"
# Discovery order when config.json names no weights file: WSInfer's TorchScript name
# first (WSInfer-zoo bundles run as is), then safetensors (safe, no pickle), then plain
# state dicts (loaded with weights_only=True).
WEIGHTS_CANDIDATES = ("torchscript_model.pt", "model.safetensors", "model.pt", "weights.pt")

_HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class ModelBundle:
    """A located, validated bundle. ``source`` is what the user asked for (path or repo id)."""

    path: Path
    config: BundleConfig
    weights_path: Path
    weights_format: WeightsFormat
    source: str
    #: the training distribution (``domain.json``), when the bundle carries one: the
    #: predictor then adds a ``domain_distance`` output (see ``core.domain``)
    domain: DomainReference | None = None
    #: the stored robustness report (``robustness.json``), when the bundle carries one;
    #: informational, so not part of the bundle hash
    robustness: RobustnessReport | None = None

    @property
    def robustness_grades(self) -> dict[str, str]:
        """Gene -> robustness grade (A-D) from the stored report; empty without one."""
        return self.robustness.grades if self.robustness is not None else {}

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_NAME

    @property
    def name(self) -> str:
        """The config's ``name``, else the folder name (a HF snapshot: the repo id)."""
        if self.config.name:
            return self.config.name
        return self.source if looks_like_repo_id(self.source) else self.path.name

    @property
    def output_names(self) -> tuple[str, ...]:
        """The model's outputs, then ``domain_distance`` when the bundle has a reference."""
        if self.domain is None:
            return self.config.class_names
        return (*self.config.class_names, DOMAIN_OUTPUT_META["name"])

    @property
    def output_meta(self) -> list[dict[str, Any]]:
        """One metadata dict per output name (``kind``, ``pearson``, ...; may be empty)."""
        meta = [dict(m) for m in self.config.outputs] if self.config.outputs else []
        if len(meta) != len(self.config.class_names):
            meta = [{} for _ in self.config.class_names]
        if self.domain is not None:
            meta.append(dict(DOMAIN_OUTPUT_META))
        return meta

    @property
    def model_outputs(self) -> int:
        """Columns the network itself returns (``num_classes``)."""
        return self.config.num_classes

    @property
    def weights_size(self) -> int:
        return self.weights_path.stat().st_size

    @cached_property
    def bundle_hash(self) -> str:
        """sha256 of ``config.json`` bytes, weights bytes, then ``domain.json`` if used.

        Prediction caches are keyed by it, so editing either file (new weights, a changed
        normalisation) gives a new key and never shows stale values. Computed once per
        ``ModelBundle``; call :func:`load_bundle` again after changing files.
        """
        digest = hashlib.sha256(self.config_path.read_bytes())
        with self.weights_path.open("rb") as stream:
            while chunk := stream.read(_HASH_CHUNK):
                digest.update(chunk)
        if self.domain is not None:
            digest.update((self.path / DOMAIN_FILE).read_bytes())
        cell_reference = self.path / CELL_REFERENCE_FILE
        if cell_reference.is_file():  # typing bundles: it decides which cells say "Review"
            digest.update(cell_reference.read_bytes())
        return digest.hexdigest()[:16]


#: A typing bundle's reference of its training cells (omicslens.hemato.cell_reference).
CELL_REFERENCE_FILE = "cell_reference.json"


def load_bundle(path_or_repo_id: str | Path, *, with_domain: bool = True) -> ModelBundle:
    """Locate and validate a bundle; raises a typed, file-naming error on any problem.

    Accepts a bundle folder, the ``config.json`` inside one, or a Hugging Face repo id
    ``org/name`` that is already in the local cache (never downloaded). A local path
    that exists always wins over a repo id of the same spelling. ``with_domain=False``
    ignores the bundle's ``domain.json`` (to fit a new one).
    """
    source = str(path_or_repo_id)
    folder = _resolve_folder(path_or_repo_id)
    config = BundleConfig.from_file(folder / CONFIG_NAME)
    weights = find_weights(folder, config)
    return ModelBundle(
        path=folder,
        config=config,
        weights_path=weights,
        weights_format=sniff_weights_format(weights),
        source=source,
        domain=_checked_domain(folder, config) if with_domain else None,
        robustness=load_bundle_robustness(folder),
    )


def _checked_domain(folder: Path, config: BundleConfig) -> DomainReference | None:
    from omicslens.core.domain import DomainReferenceError

    domain = load_reference(folder)
    if domain is not None and domain.n_outputs != config.num_classes:
        raise DomainReferenceError(
            folder / DOMAIN_FILE,
            f"made for a model with {domain.n_outputs} outputs, but config.json declares "
            f"num_classes={config.num_classes}; refit it with `omicslens model add-domain`",
        )
    return domain


def _resolve_folder(path_or_repo_id: str | Path) -> Path:
    path = Path(path_or_repo_id).expanduser()
    if path.is_file() and path.name == CONFIG_NAME:
        return path.parent.resolve()
    if path.is_dir():
        if not (path / CONFIG_NAME).is_file():
            raise BundleNotFoundError(path, f"not a model bundle: no {CONFIG_NAME} in this folder")
        return path.resolve()
    if path.exists():
        raise BundleNotFoundError(path, f"not a model bundle: expected a folder with {CONFIG_NAME}")
    text = str(path_or_repo_id)
    if isinstance(path_or_repo_id, str) and looks_like_repo_id(text):
        snapshot = find_cached_snapshot(text)
        if snapshot is None:
            raise BundleNotFoundError(
                text,
                f"no such folder, and not in the local Hugging Face cache ({hf_hub_cache()}). "
                f"OmicsLens never downloads: run `huggingface-cli download {text}` first, "
                "or pass the bundle folder",
            )
        if not (snapshot / CONFIG_NAME).is_file():
            raise BundleNotFoundError(
                snapshot, f"cached Hugging Face repo {text} has no {CONFIG_NAME}"
            )
        return snapshot
    from omicslens.core.samples import bundled_models

    names = ", ".join(bundled_models()) or "none installed"
    raise BundleNotFoundError(
        path, f"no such bundle folder (bundled models: {names}; or a cached Hugging Face id)"
    )


def find_weights(folder: Path, config: BundleConfig) -> Path:
    """The weights file: config's ``weights`` key, else the first of WEIGHTS_CANDIDATES."""
    if config.weights is not None:
        named = folder / config.weights
        if not named.is_file():
            raise WeightsNotFoundError(
                named, f"weights file named in {CONFIG_NAME} ('weights') does not exist"
            )
        return named
    for candidate in WEIGHTS_CANDIDATES:
        if (folder / candidate).is_file():
            return folder / candidate
    raise WeightsNotFoundError(
        folder,
        f"no weights file: looked for {', '.join(WEIGHTS_CANDIDATES)} "
        f"(or name one with the 'weights' key of {CONFIG_NAME})",
    )


def sniff_weights_format(path: Path) -> WeightsFormat:
    """Decide the format from the file's content, not its name.

    safetensors by extension (its header is plain JSON, no magic number); TorchScript
    archives are zip files holding compiled ``code/``; anything else (a ``torch.save``
    zip or legacy pickle) is treated as a state dict and loaded with ``weights_only``.
    """
    if path.suffix == ".safetensors":
        return "safetensors"
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                for name in archive.namelist():
                    parts = name.split("/")
                    if (len(parts) > 2 and parts[1] == "code") or parts[-1] == "constants.pkl":
                        return "torchscript"
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as error:
        # a zip signature at the end but a broken directory (a truncated or bit-flipped
        # archive): name the file instead of failing in zipfile
        raise WeightsError(path, f"not a readable weights archive: {error}") from error
    return "state_dict"
