"""_napari."""
