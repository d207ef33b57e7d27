"""Dashboard settings: environment variables ``DEVATTEST_DASHBOARD_*`` (the service's own
Settings ignore them)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class DashboardSettings(BaseSettings):
    """What the dashboard reads at start-up."""

    model_config = SettingsConfigDict(env_prefix="DEVATTEST_DASHBOARD_", extra="ignore")

    #: How long a login lasts, in seconds (absolute, not sliding).
    session_seconds: int = Field(default=8 * 3600, ge=60, le=7 * 24 * 3600)
    #: How often the posture-over-time chart gets a sample, in seconds (0: no sampler).
    sample_seconds: float = Field(default=60.0, ge=0)
    #: How long the fleet aggregates are reused between page loads, in seconds (0: never).
    cache_seconds: float = Field(default=5.0, ge=0, le=300)
    #: How often the live view polls, in seconds.
    live_poll_seconds: float = Field(default=2.0, ge=0.5, le=60)
