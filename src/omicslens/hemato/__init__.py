"""Blood smears: white-cell detection, typing, per-cell features and patient-level scores."""
