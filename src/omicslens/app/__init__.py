"""User-level jobs: what a user asks for, as Qt-free generators with typed reports.

Every job here takes plain inputs (paths, a loaded predictor, options), **yields**
:class:`~omicslens.app.progress.Progress` while it works and **returns** a typed report
(a dataclass). The three front ends run the same jobs:

- the command line iterates them plainly (:func:`~omicslens.app.progress.run_job`) and
  prints the progress;
- the napari docks hand them to napari's ``thread_worker``, whose ``yielded`` signal
  drives a progress bar in the activity panel and whose ``returned`` signal delivers the
  report to the main thread; quitting the worker closes the generator, which stops the
  job's threads (every job cleans up in ``finally``);
- the benchmarks time them.

So "predict a slide", "summarise regions", "compare with measured spots" and "analyse a
smear" are decided in one place, and the CLI and the viewer write the same numbers.
Layering: above ``hemato`` and ``models``, below ``cli``, ``bench`` and ``_napari``
(import-linter enforces it).
"""

from omicslens.app.progress import Progress, run_job

__all__ = ["Progress", "run_job"]
