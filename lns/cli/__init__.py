"""The command-line shell around the library: what exists only for ``run_train.py``, ``run_segment.py``,
``python -m data_gen`` and ``python -m lns.report`` (value checks, refusals, renamed keys, console set-up, folder
mode, the shared entry behaviour). The library imports nothing from here.

Importing this package imports nothing heavy: the entry points import its modules before torch is loaded.
"""
