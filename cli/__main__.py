"""`python -m cli`: the `journeys` command."""

import sys

from cli.main import main

sys.exit(main())
