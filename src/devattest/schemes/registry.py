"""Registry of evidence schemes keyed by media type."""

from __future__ import annotations

from collections.abc import Iterable

from devattest.errors import RegistryConflict, UnsupportedMediaType
from devattest.schemes._base import EvidenceScheme


def normalise_media_type(media_type: str) -> str:
    """Lower-case the type, strip spaces around ``;`` and ``=``, keep parameter quoting."""
    parts = [p.strip() for p in media_type.split(";")]
    head = parts[0].lower()
    params = []
    for p in parts[1:]:
        if not p:
            continue
        k, _, v = p.partition("=")
        params.append(f"{k.strip().lower()}={v.strip()}")
    return "; ".join([head, *params])


class SchemeRegistry:
    """Maps media types to schemes, and profiles to the schemes that appraise them.
    Overlapping media-type registrations are refused; a profile may have several schemes
    (the generic EAT scheme and the constrained-profile one share ``urn:ietf:rfc:rfc9711``)."""

    def __init__(self, schemes: Iterable[EvidenceScheme] = ()) -> None:
        self._by_media_type: dict[str, EvidenceScheme] = {}
        self._by_name: dict[str, EvidenceScheme] = {}
        self._by_profile: dict[str, tuple[str, ...]] = {}
        for s in schemes:
            self.register(s)

    def register(self, scheme: EvidenceScheme) -> None:
        """Add a scheme.

        Raises:
            RegistryConflict: the name or one of the media types is already registered.
        """
        if scheme.name in self._by_name:
            raise RegistryConflict(f"scheme name {scheme.name!r} is already registered")
        mts = [normalise_media_type(m) for m in scheme.media_types]
        for mt in mts:
            if mt in self._by_media_type:
                other = self._by_media_type[mt].name
                raise RegistryConflict(f"media type {mt!r} is already handled by {other!r}")
        for mt in mts:
            self._by_media_type[mt] = scheme
        self._by_name[scheme.name] = scheme
        for profile in scheme.profiles:
            self._by_profile[profile] = (*self._by_profile.get(profile, ()), scheme.name)

    def for_media_type(self, media_type: str) -> EvidenceScheme:
        """Raises: UnsupportedMediaType."""
        scheme = self._by_media_type.get(media_type)
        if scheme is None:
            scheme = self._by_media_type.get(normalise_media_type(media_type))
        if scheme is None:
            raise UnsupportedMediaType(f"no evidence scheme for media type {media_type!r}")
        return scheme

    def by_name(self, name: str) -> EvidenceScheme:
        try:
            return self._by_name[name]
        except KeyError:
            raise UnsupportedMediaType(f"no evidence scheme named {name!r}") from None

    def schemes_for_profile(self, profile: str) -> tuple[str, ...]:
        """The names of the schemes that appraise ``profile`` (empty: no scheme knows it)."""
        return self._by_profile.get(profile, ())

    @property
    def media_types(self) -> tuple[str, ...]:
        return tuple(self._by_media_type)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._by_name)


def default_registry(*, tpm_max_eventlog_bytes: int | None = None) -> SchemeRegistry:
    """A registry with every built-in scheme (psa, eat, and tpm when available).

    Args:
        tpm_max_eventlog_bytes: the TPM scheme's event-log size limit (its default, 1 MiB,
            when None).
    """
    from devattest.schemes.eat import EatConstrainedScheme, EatScheme
    from devattest.schemes.psa import PsaScheme

    schemes: list[EvidenceScheme] = [PsaScheme(), EatScheme(), EatConstrainedScheme()]
    try:
        from devattest.schemes.tpm import TpmQuoteScheme
    except ImportError:  # pragma: no cover - tpm scheme lands separately
        pass
    else:
        schemes.append(TpmQuoteScheme() if tpm_max_eventlog_bytes is None else
                       TpmQuoteScheme(max_eventlog_bytes=tpm_max_eventlog_bytes))
    return SchemeRegistry(schemes)
