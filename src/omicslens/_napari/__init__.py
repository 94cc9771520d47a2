"""napari glue: reader, sample data and dock widgets. Thin: all work happens in ``core``."""
