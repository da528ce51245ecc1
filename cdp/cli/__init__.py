"""The ``cdp`` command line: one module per subcommand, a tiny dispatcher in main.py.

Modules: ``main`` (the entry point and dispatcher), ``common`` (sizes, output, exit
codes, reaching a target), ``target`` (``cdp target serve``), ``scrub`` (``cdp target
scrub``), ``sim`` (``cdp sim run``), ``status``, ``points``, ``timeline``, ``image``
(``cdp image export``), ``failover`` and ``verify`` (``cdp failover ...``) with
``failover_common`` (what both share), ``certs`` (``cdp certs init``), ``demo``.
Each parses, calls the library, and renders; no logic of the data path lives here.
"""
