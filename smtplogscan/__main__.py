"""Run the command line as ``python -m smtplogscan``."""

from smtplogscan.cli import main

main()
