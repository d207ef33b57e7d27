"""The devattest Verifier service: a FastAPI ``create_app(settings)`` factory over the store
and the pure appraisal core. Run it with ``devattest service serve``."""

from devattest.service.app import create_app, create_app_from_env
from devattest.service.settings import Settings

__all__ = ["Settings", "create_app", "create_app_from_env"]
