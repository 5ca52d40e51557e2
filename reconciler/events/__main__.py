"""``python -m reconciler.events``: the outbox worker the daemon starts (see :mod:`reconciler.events.worker`)."""

import sys

from reconciler.events.worker import main

sys.exit(main())
