"""Development and operations tools that services never import: the local infrastructure
(``infra``: Kafka, the MongoDB-wire store, Prometheus as processes), the launcher
(``launcher``: ``hotline run`` and the test/bench service processes) and the city simulator
(``simulator``). They stay behind the ``hotline`` command (cli/main.py loads their CLI when
this package is installed); a service image carries only ``hotline/`` and ``services/``.
"""
