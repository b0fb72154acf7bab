"""deqfam.generated subpackage."""
