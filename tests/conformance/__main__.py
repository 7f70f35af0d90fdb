"""``python -m tests.conformance``: run the suite and print the summary table."""

import sys

from .summary import main

sys.exit(main())
