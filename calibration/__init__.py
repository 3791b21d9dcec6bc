"""Calibration sets: choose, store (with a content hash) and read them for onnxruntime and TensorRT."""
