"""edgeslim: turn a pretrained PyTorch model into a small, fast, verified edge artifact.

Importing this package stays light: no torch, onnxruntime or tensorrt is imported here.
``edgeslim.run`` and ``edgeslim.api`` load on first use (module ``__getattr__``).
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "api", "run"]


def __getattr__(name: str) -> Any:
    # Lazy: `import edgeslim` must not import torch; the API does, when it is first touched.
    if name in ("api", "run"):
        import importlib

        api = importlib.import_module("edgeslim.api")
        return api if name == "api" else api.run
    raise AttributeError(f"module 'edgeslim' has no attribute '{name}'")
