"""``python -m spoolscp`` is the ``spoolscp`` command."""

import sys

from spoolscp.cli import main

sys.exit(main())
