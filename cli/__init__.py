"""The program's entry: the ``hotline`` command (cli/main.py). It sits outside the kit (hotline/)
because it starts the services: the kit imports nothing from ``services``, the entry imports both."""
