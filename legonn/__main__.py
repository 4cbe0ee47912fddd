"""Allow ``python -m legonn``."""

import sys

from legonn.cli import main

if __name__ == "__main__":
    sys.exit(main())
