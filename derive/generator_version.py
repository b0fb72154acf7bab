"""The code generator's version, without SymPy (the per-user module cache keys on it)."""

#: Bumped when generated output changes for the same spec (golden files then change too).
GENERATOR_VERSION = "2"
