"""The ``cdp`` command line: one module per subcommand, a tiny dispatcher in main.py."""
