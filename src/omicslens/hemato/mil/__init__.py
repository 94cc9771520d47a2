"""The pieces behind :mod:`omicslens.hemato.aggregators` (patient-level MIL aggregators).

One module per idea, so none grows past a few hundred lines:

- :mod:`~omicslens.hemato.mil.networks`: the aggregator networks (gated attention, the
  GenBloom-style transformer) and their registry;
- :mod:`~omicslens.hemato.mil.checkpoints`: reading weights files safely (safetensors or
  ``weights_only`` torch checkpoints), GenBloom checkpoint key mapping, strict loading;
- :mod:`~omicslens.hemato.mil.config`: the validated ``config.json`` of a bundle;
- :mod:`~omicslens.hemato.mil.bundle`: a loaded bundle and its patient scores;
- :mod:`~omicslens.hemato.mil.reference_bank`: the reference-patient bank for retrieval.

Callers may keep importing everything from :mod:`omicslens.hemato.aggregators`, which
re-exports these names.
"""
