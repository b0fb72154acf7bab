"""deqfam.templates subpackage."""
