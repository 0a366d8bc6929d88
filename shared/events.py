"""The event contract, as the project's modules import it: everything in `shared.contract`
(split by area there), under one name."""

from shared.contract import *  # noqa: F403
from shared.contract import __all__  # noqa: F401
