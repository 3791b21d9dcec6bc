"""Measuring and gating: ``edgeslim bench``, the CI latency gate ``edgeslim check`` (statistics,
budgets) and ``--remote`` on a device over SSH, all timing with ``edgeslim.runtime.timing``."""
