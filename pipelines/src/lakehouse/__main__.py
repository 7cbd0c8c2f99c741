"""`python -m lakehouse` runs the command line, as the `lakehouse` script does."""

from lakehouse.app.cli import main

main()
