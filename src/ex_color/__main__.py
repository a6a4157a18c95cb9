"""`python -m ex_color` is the `ex-color` command."""

import sys

from ex_color.cli import main

sys.exit(main())
