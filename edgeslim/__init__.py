"""edgeslim: turn a pretrained PyTorch model into a small, fast, verified edge artifact.

Importing this package stays light: no torch, onnxruntime or tensorrt is imported here.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
