"""`python -m maxsim`: the command line."""

import sys

from maxsim.cli import main

sys.exit(main())
