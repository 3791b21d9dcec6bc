"""``python -m edgeslim`` is the ``edgeslim`` command."""

import sys

from edgeslim.cli import main

sys.exit(main())
