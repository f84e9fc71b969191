"""`python -m maskctl` runs the command line."""
from maskctl.cli import app

app(prog_name="maskctl")
