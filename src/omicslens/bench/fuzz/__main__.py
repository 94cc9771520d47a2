"""``python -m omicslens.bench.fuzz``: the exec-mode worker (and the fuzz itself)."""

import sys

from omicslens.bench.fuzz.cli import main

sys.exit(main())
