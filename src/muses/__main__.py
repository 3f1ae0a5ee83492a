import sys

from muses.cli import main

sys.exit(main())
