"""``python -m tracemark`` runs the CLI."""

import sys

from tracemark.cli import main

sys.exit(main())
