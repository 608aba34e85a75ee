"""`python -m modelyard`: the `modelyard` command."""

import sys

from modelyard.cli.main import main

sys.exit(main())
