"""The `breakglass` command: the portal's REST API from the terminal."""

__version__ = "0.1.0"
