"""``edgeslim zoo``: batch export of a model zoo -- one isolated worker process per model.

Per model, each step recorded with its status, error class and duration: build -> FP32 ONNX
export -> ``onnx.checker`` -> FP32 parity -> INT8 -> INT8 agreement -> latency -> sizes.
Rows go to an append-only ``results.jsonl`` (one fsync'd line per finished model), keyed by
(model, settings, tool versions), so a rerun skips what is done; ``matrix.csv/.md/.html``
are written from it.

============  ====================================================================
module        role
============  ====================================================================
``config``    the zoo file (``models:`` + defaults), typed settings, family shortcuts
``task``      the per-model steps (runs inside the worker process)
``worker``    ``python -m edgeslim.zoo.worker``: memory cap, parent-death signal, one task
``isolate``   spawn a worker with a timeout; hang / crash / OOM -> a failed row
``results``   the results file: keys, fsync'd appends, torn-line-tolerant reads, merge
``matrix``    matrix.csv / matrix.md / matrix.html
``sweep``     planning, shards, local workers or Ray, progress
============  ====================================================================
"""
