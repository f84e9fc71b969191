"""`python -m maskctl` runs the command line."""
import sys

from maskctl.cli.main import main

sys.exit(main())
