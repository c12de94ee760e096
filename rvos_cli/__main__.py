"""`python -m rvos_cli` runs the `rvos` command line."""

from rvos_cli.cli.app import main

main()
