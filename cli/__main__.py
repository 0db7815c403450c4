"""``python -m cli`` is the ``offsetstream`` command."""

import sys

from cli.main import main

sys.exit(main())
