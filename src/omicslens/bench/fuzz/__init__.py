"""``omicslens bench fuzz``: mutate real inputs and check every refusal is typed.

Five families of inputs, each with deterministic mutations (fixed by ``--seed``):

``slides``   the real slide files the project ships (SVS, OME-TIFF, TIFF, JPEG) and a
             small OME-Zarr of real pixels (:mod:`.slides`, :mod:`.tiff`, :mod:`.ome_zarr`);
``bundles``  a small model bundle's ``config.json`` and weights (:mod:`.bundles`);
``regions``  GeoJSON that QuPath itself wrote (:mod:`.regions`);
``measured`` HER2ST tables, a Visium folder and an ``.h5ad`` of the real HER2ST cut
             (:mod:`.measured`);
``references`` the bundled models' ``domain.json``, ``robustness.json`` and
             ``cell_reference.json`` (:mod:`.references`).

Every case runs in a child process with a wall-time and an address-space limit
(:mod:`.runner`) and is classified:

``ok``              a valid result (for a prediction: valid outputs, :mod:`.outputs`);
``typed``           a refusal by an ``OmicsLensError`` whose message names the file;
``unnamed``         a typed refusal that does not name the file (or the feature);
``invalid-output``  a "success" whose result or written files are not valid;
``traceback``       any other exception (or a traceback on stderr);
``hang``            the wall-time limit ran out;
``memory``          ``MemoryError``, or killed by SIGKILL (the kernel's OOM killer);
``crash``           killed by any other signal;
``unsafe``          a pickle in the weights was executed.

Isolation: ``forkserver`` (default) forks each case from a server that imported
everything once; the CLI entry point is handed in by ``omicslens bench fuzz`` (this
package sits below the CLI layer and does not import it). ``exec`` runs each case in
fresh processes (``python -m omicslens.cli.main`` for every command; slow).
"""

from __future__ import annotations

from omicslens.bench.fuzz import (  # noqa: F401  (registers their checks)
    bundles,
    measured,
    references,
    regions,
)
from omicslens.bench.fuzz.cli import (
    FAMILIES,
    build_all_sources,
    build_sources,
    generate_cases,
    main,
)
from omicslens.bench.fuzz.ome_zarr import write_small_ome_zarr, zarr_cases
from omicslens.bench.fuzz.report import format_examples, format_table, summarise
from omicslens.bench.fuzz.runner import (
    DEFAULT_MEMORY_GIB,
    DEFAULT_TIMEOUT_S,
    FAILURES,
    OUTCOMES,
    SLIDE_FAILURES,
    Case,
    Context,
    ExecRunner,
    ForkRunner,
    InfoEntry,
    Result,
    run_fuzz,
    spread,
)
from omicslens.bench.fuzz.slides import (
    Source,
    classify_cli,
    cli_in_process,
    python_read,
    real_sources,
)
from omicslens.bench.fuzz.tiff import jpeg_cases, tiff_cases

__all__ = [
    "DEFAULT_MEMORY_GIB",
    "DEFAULT_TIMEOUT_S",
    "FAILURES",
    "FAMILIES",
    "OUTCOMES",
    "SLIDE_FAILURES",
    "Case",
    "Context",
    "ExecRunner",
    "ForkRunner",
    "InfoEntry",
    "Result",
    "Source",
    "build_all_sources",
    "build_sources",
    "classify_cli",
    "cli_in_process",
    "format_examples",
    "format_table",
    "generate_cases",
    "jpeg_cases",
    "main",
    "python_read",
    "real_sources",
    "run_fuzz",
    "spread",
    "summarise",
    "tiff_cases",
    "write_small_ome_zarr",
    "zarr_cases",
]
