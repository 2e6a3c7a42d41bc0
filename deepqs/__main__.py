"""``python -m deepqs`` is the same as the ``deepqs`` command."""

import sys

from deepqs.cli import main

if __name__ == "__main__":
    sys.exit(main())
