"""deqfam.runtime subpackage."""
