"""`python -m maskctl` runs the command line."""
import sys

from maskctl.cli import main

sys.exit(main())
