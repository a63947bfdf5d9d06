"""`python -m bench`: see bench/__init__.py."""

import sys

from bench.run import main

if __name__ == "__main__":
    sys.exit(main())
