"""The config schema (a package; its modules are split out in the next commit)."""
from abm.config.loading import *  # noqa: F401,F403
