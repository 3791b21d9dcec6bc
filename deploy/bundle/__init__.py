"""The edge bundle: build it (``build.py``), guard its ``--out`` (``outpath.py``), run it on the
device (``runner.py`` + ``edgeslim_portable.py`` + ``images.py``, the runtime section of
``runtimes.py``)."""
