"""``python -m deqfam`` runs the command-line interface."""

from deqfam.cli import main

raise SystemExit(main())
