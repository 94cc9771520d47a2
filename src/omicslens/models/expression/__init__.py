"""Predicted spatial gene expression: encoders, the bundled network, and its training.

``fit`` turns paired H&E + spatial transcriptomics into a model bundle; ``net`` is the
network that bundle runs (registered as the ``omicslens-expression`` architecture).
"""
