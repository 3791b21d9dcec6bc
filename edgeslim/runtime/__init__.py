"""The runtime layer: every place that runs a model goes through it.

* ``base``: the ``Backend`` protocol, ``RuntimeOptions``, ``BackendInfo``.
* ``registry``: backends by name (``open_backend``, ``get_backend``, ``available_backends``).
* ``providers``: the one provider/precision table and the backend x precision candidates.
* ONNX facts (inputs, outputs, opset, params, MACs, precision) come from ``edgeslim.onnxio.info``,
  one layer lower: the model sources need them too, and they sit below the runtime.
* ``timing``: the timing core shared with the bundle's runner (``portable``).
* backends: ``ort`` (onnxruntime), ``openvino``, ``torch_backend``, ``tensorrt``.

Importing this package imports no inference library: backends load on first use. It sits
below export, bundle, bench, the CI gate, the compression stages and training, and imports none
of them (import-linter contracts in pyproject.toml, ``make lint``).

>>> from edgeslim.runtime import open_backend                  # doctest: +SKIP
>>> be = open_backend("model.onnx", "openvino", threads=2)      # doctest: +SKIP
>>> be.describe()["name"]                                       # doctest: +SKIP
'openvino'
"""

from edgeslim.runtime.base import Backend, BackendInfo, Capabilities, RuntimeOptions
from edgeslim.runtime.registry import (
    available_backends,
    backend_names,
    get_backend,
    open_backend,
    register_backend,
)

__all__ = [
    "Backend", "BackendInfo", "Capabilities", "RuntimeOptions", "available_backends", "backend_names",
    "get_backend", "open_backend", "register_backend",
]
