"""``python -m cdp`` is the ``cdp`` command."""

from cdp.cli.main import main

main()
