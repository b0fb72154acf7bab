"""Independent references that only the tests use (never imported by the library): the numpy
KLR Newton (``klr``), the SymPy check of the deep stack's assembly rule (``deep_assembly``) and
mpmath derivatives of ``A`` (``high_precision``). Tests import them as ``oracles.<module>``
(pytest puts ``tests/`` on ``sys.path``)."""
