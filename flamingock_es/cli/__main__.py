"""``python -m flamingock_es.cli``: the same as the ``flamingock-es`` command."""

import sys

from . import main

sys.exit(main())
