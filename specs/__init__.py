"""deqfam.specs: the built-in family catalogue (one YAML file per family)."""
