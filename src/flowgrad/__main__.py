import sys

from flowgrad.cli import main

sys.exit(main())
