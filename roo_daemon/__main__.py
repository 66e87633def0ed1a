"""``python -m roo_daemon``: the same entry point as the ``roo-daemon`` script."""

import sys

from roo_daemon.cli import main

sys.exit(main())
