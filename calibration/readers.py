"""Feed a calibration set to onnxruntime's quantizer and to TensorRT's INT8 calibrator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def ort_reader(batch: np.ndarray, input_name: str, batch_size: int = 1) -> Any:
    """An ``onnxruntime.quantization.CalibrationDataReader`` over ``batch`` (N,C,H,W float32).

    ``input_name`` is the graph's input (``edgeslim.onnxio.info.input_name``)."""
    from onnxruntime.quantization import CalibrationDataReader

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._i = 0

        def get_next(self) -> dict[str, np.ndarray] | None:
            if self._i >= len(batch):
                return None
            chunk = batch[self._i : self._i + batch_size]
            self._i += batch_size
            return {input_name: np.ascontiguousarray(chunk, dtype=np.float32)}

        def rewind(self) -> None:
            self._i = 0

    return _Reader()


def tensorrt_calibrator(batch: np.ndarray, cache_file: str | Path, batch_size: int = 8) -> Any:
    """A TensorRT ``IInt8EntropyCalibrator2`` over the same stored set (imports tensorrt lazily).

    Device memory comes from torch's CUDA allocator, which is present wherever TensorRT runs.
    The calibration cache is reused when present so rebuilding an engine calibrates identically.
    """
    from edgeslim.errors import require

    trt = require("tensorrt", "tensorrt")
    import torch

    cache = Path(cache_file)

    class _Calibrator(trt.IInt8EntropyCalibrator2):  # type: ignore[name-defined,misc]
        def __init__(self) -> None:
            super().__init__()
            self._i = 0
            self._dev = torch.empty(
                (batch_size, *batch.shape[1:]), dtype=torch.float32, device="cuda"
            )

        def get_batch_size(self) -> int:
            return batch_size

        def get_batch(self, names: list[str]) -> list[int] | None:
            if self._i + batch_size > len(batch):
                return None
            self._dev.copy_(torch.from_numpy(batch[self._i : self._i + batch_size]))
            self._i += batch_size
            return [int(self._dev.data_ptr())]

        def read_calibration_cache(self) -> bytes | None:
            return cache.read_bytes() if cache.is_file() else None

        def write_calibration_cache(self, data: bytes) -> None:
            from edgeslim.fsutil import atomic_write_bytes

            atomic_write_bytes(cache, bytes(data))

    return _Calibrator()
