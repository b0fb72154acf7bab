"""deqfam.examples: user-style specs shipped for the demo and README."""
