"""``python -m birdsong.cli``: the ``birdsong`` command."""

import sys

from .main import main

sys.exit(main())
