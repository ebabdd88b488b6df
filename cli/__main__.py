"""``python -m cli ...``: the ``hotline`` command (cli/main.py)."""

from cli.main import main

main()
