"""``edgeslim search``: a multi-objective study over a recipe's searchable compression settings.

Objectives: validation top-1 of the final artifact (the ONNX in the runtime that runs it) and that
artifact's latency measured on the target (here, or on a device over SSH). Modules:

* ``space``: the recipe's ``search:`` block (tune's syntax) -> parameters mapped to stage keys;
* ``pick``: the ``--pick`` grammar (field, operator, number; no eval) and the choice;
* ``pareto``: the non-dominated front and the 2-D hypervolume;
* ``measure``: val accuracy and latency of an artifact, cached by its sha256;
* ``study``: the Optuna study (RDB storage, heartbeats, shared prefix) and the trial runner;
* ``outputs``/``plot``: pareto.json, trials.csv, summary.json, pareto.png;
* ``picked``: the picked recipe, run to a bundle-ready run.
"""
