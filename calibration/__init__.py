"""Calibration sets: choose, store with a content hash, read for onnxruntime/TensorRT."""
