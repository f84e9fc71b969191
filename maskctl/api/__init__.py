"""The Python API: every command as a function a notebook can call."""
