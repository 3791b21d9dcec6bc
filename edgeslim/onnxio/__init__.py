"""ONNX files in and out: what a file is (``info``) and writing one from a torch model (``export``).

This package sits at the bottom of edgeslim's layers, beside ``errors``: the model sources
(``models/frozen.py`` opens and converts ONNX/TorchScript/.pt2 files), the runtime layer, the
compression stages and deploy all read ONNX facts and export through it, and it imports none
of them. ``onnx``/``torch``/``onnxslim`` are imported inside functions only.

* ``info``: inputs (initializers excluded), outputs, opset, parameters, MACs, precision,
  metadata -- the one place edgeslim looks up a graph's input.
* ``export``: ``export_onnx`` (dynamo exporter, TorchScript fallback), ``finalize_onnx``
  (onnxslim, shape inference, checker, metadata, one atomic save), ``move_onnx``/``staging_dir``.
"""
