"""The export step of deploy: parity gates (an artifact is still its model) and the export stage.

``export_onnx``/``finalize_onnx`` live in ``edgeslim.onnxio.export``: frozen model sources and
the quantize/QAT stages export too, and they sit below deploy.
"""
