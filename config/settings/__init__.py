"""Preflab settings, one module per concern, every value from the environment with a working default."""

from .api import *  # noqa: F403
from .auth import *  # noqa: F403
from .cache import *  # noqa: F403
from .celery import *  # noqa: F403
from .database import *  # noqa: F403
from .datasets import *  # noqa: F403
from .django import *  # noqa: F403
from .preflab import *  # noqa: F403
from .sampling import *  # noqa: F403
from .security import *  # noqa: F403
from .training import *  # noqa: F403
