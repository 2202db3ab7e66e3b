"""``python -m testledger`` runs the command line."""

import sys

from testledger.cli import main

sys.exit(main())
