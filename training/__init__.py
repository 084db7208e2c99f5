"""Turning a folder of labelled music into the ONNX genre model the daemon loads (``genrecast train``/``evaluate``)."""
