"""Getting a model onto a device, and keeping it fast: one subpackage per concept.

* ``export/``: the parity gates (``parity.py``) and the export stage (``stage.py``); the ONNX
  export itself is ``edgeslim.onnxio.export``, below the model sources that also use it.
* ``bundle/``: the edge bundle (``build.py``), what ``--out`` may replace (``outpath.py``), the
  standalone device runner (``runner.py``, shipped with ``edgeslim_portable.py`` and
  ``images.py`` as ``edgeslim_images.py``), the runtime section of its manifest
  (``runtimes.py``) and the deploy stage (``stage.py``).
* ``gate/``: ``edgeslim bench`` (``bench.py``, ``artifact.py``), the CI latency gate
  (``check.py``, ``stats.py``, ``budget.py``), ``--remote`` over SSH (``remote.py``,
  ``ssh.py``) and the bench stage (``stage.py``).
* ``tensorrt.py``: TensorRT engine builds; ``profiles.py``/``compat.py``: the target devices and
  what their runtimes accept.

Everything that runs a model goes through ``edgeslim.runtime`` (backends, provider table,
timing core); nothing below deploy imports it (import-linter contracts in pyproject.toml).
"""
