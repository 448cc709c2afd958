"""``python -m v2h`` is the ``v2h`` command."""

import sys

from v2h.cli import main

sys.exit(main())
