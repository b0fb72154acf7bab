"""deqfam.derive subpackage."""
