"""The implementations of the ``deqfam`` verbs, one module per group; ``deqfam.cli`` wires
them into the parser."""
