"""tme-abm: agent-based simulator of the tumor microenvironment (model layer)."""

__version__ = "0.1.0"
