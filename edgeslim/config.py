"""Shared base for every typed config: unknown keys and non-finite floats are errors."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Config(BaseModel):
    # allow_inf_nan=False: `lr: .inf` or `mean: [.nan]` is a typo or an attack, never a setting;
    # every float of every typed config (recipe, stages, search space) must be finite.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=(),
                              allow_inf_nan=False)
