"""``python -m localcloud``: the same as the ``localcloud`` console script."""

import sys

from localcloud.cli import main

sys.exit(main())
