"""deqfam's benchmark scripts, one module per experiment, run as ``python -m benchmarks.NAME``.

Every script prints its figures and appends a record of them (the exact command line, the
date, the machine and the figures) to ``benchmarks/results/NAME.json`` through
:mod:`benchmarks.common`; ``python -m benchmarks.render`` renders the tables of
``BENCHMARKS.md`` from those files (:mod:`benchmarks.tables` holds one renderer per table).
Figures are printed and recorded, never asserted.
"""
