"""matplotlib style isolation for every chart edgeslim draws.

optuna's matplotlib plots call ``plt.style.use("ggplot")``, which changes the process-wide
rcParams; a notebook or another library may have done the same. A chart drawn after that would
look different from one drawn before (and a regenerated report would not be byte-identical).
Each chart is drawn on matplotlib's defaults, and whatever it changes is undone afterwards, so
the caller's own style is left as it was.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def default_style() -> Iterator[None]:
    """matplotlib's default rcParams inside the block; the caller's restored after it."""
    import matplotlib

    with matplotlib.rc_context():
        backend = matplotlib.get_backend()
        matplotlib.rcdefaults()
        matplotlib.rcParams["backend"] = backend  # keep the backend the process chose
        yield
