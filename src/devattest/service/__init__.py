"""The devattest Verifier service: a FastAPI ``create_app(settings)`` factory over the store
and the pure appraisal core. Run it with ``devattest serve``.

The FastAPI app and the store are imported on first use, so that the command line (which
mounts ``devattest.service.cli``) starts quickly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from devattest.service.app import create_app, create_app_from_env
    from devattest.service.settings import Settings

__all__ = ["Settings", "create_app", "create_app_from_env"]


def __getattr__(name: str) -> Any:
    if name in ("create_app", "create_app_from_env"):
        from devattest.service import app

        return getattr(app, name)
    if name == "Settings":
        from devattest.service.settings import Settings

        return Settings
    raise AttributeError(name)
