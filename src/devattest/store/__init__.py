"""The devattest store: SQLAlchemy 2 repositories over SQLite (default) or PostgreSQL, with
Alembic migrations run programmatically (``upgrade head``) at start-up.

Routes never see SQL: services open a transaction with :meth:`Store.write` or
:meth:`Store.read` and call the repositories in this package.
"""

from devattest.store._engine import (
    Store,
    create_store_engine,
    current_revision,
    head_revision,
    migrate,
    normalise_url,
    open_store,
    sqlite_url_for,
)
from devattest.store.attestations import AttestationRepository, HistoryFilter
from devattest.store.challenges import (
    ALLOWED_NONCE_SIZES,
    ChallengeRepository,
    ConsumeOutcome,
    Consumption,
)
from devattest.store.dashboard_repo import DashboardRepository, DeviceRow
from devattest.store.devices import LIFECYCLE_STATES, DeviceFilter, DeviceRepository
from devattest.store.lifecycle_repo import LifecycleRepository, receipt_key
from devattest.store.provisioned import (
    KINDS,
    ProvisionedRepository,
    content_hash,
    current_generation,
)
from devattest.store.retention import PruneReport, RetentionPolicy, prune
from devattest.store.tokens import ROLES, TokenRepository, hash_token
from devattest.store.webhooks import WebhookRepository

__all__ = [
    "ALLOWED_NONCE_SIZES",
    "KINDS",
    "LIFECYCLE_STATES",
    "ROLES",
    "AttestationRepository",
    "ChallengeRepository",
    "ConsumeOutcome",
    "Consumption",
    "DashboardRepository",
    "DeviceFilter",
    "DeviceRepository",
    "DeviceRow",
    "HistoryFilter",
    "LifecycleRepository",
    "ProvisionedRepository",
    "PruneReport",
    "RetentionPolicy",
    "Store",
    "TokenRepository",
    "WebhookRepository",
    "content_hash",
    "create_store_engine",
    "current_generation",
    "current_revision",
    "hash_token",
    "head_revision",
    "migrate",
    "normalise_url",
    "open_store",
    "prune",
    "receipt_key",
    "sqlite_url_for",
]
