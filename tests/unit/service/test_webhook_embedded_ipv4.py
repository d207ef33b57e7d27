"""Issue 13, defect 6: IPv6 addresses that carry an IPv4 address (NAT64, 6to4, IPv4-compatible,
IPv4-mapped, Teredo) reach that IPv4 host through a translator or a tunnel, so a webhook
destination is refused when the embedded address would be. IP literals only: no DNS."""

from __future__ import annotations

import ipaddress

import pytest

from devattest.service.services.webhooks import (
    DestinationRefused,
    parse_networks,
    resolve_destination,
)


def _refused(host: str) -> None:
    with pytest.raises(DestinationRefused, match="may not target"):
        resolve_destination(f"http://[{host}]/hook", ())


def test_nat64_form_of_cloud_metadata_address_is_refused_as_webhook_target() -> None:
    _refused("64:ff9b::a9fe:a9fe")  # 169.254.169.254


def test_nat64_form_of_loopback_is_refused_as_webhook_target() -> None:
    _refused("64:ff9b::7f00:1")


def test_nat64_local_use_prefix_is_refused_as_webhook_target() -> None:
    _refused("64:ff9b:1::a9fe:a9fe")
    _refused("64:ff9b:1:808:8::808")  # even when it would embed 8.8.8.8: a local translator


def test_sixtofour_form_of_loopback_is_refused_as_webhook_target() -> None:
    _refused("2002:7f00:1::")
    _refused("2002:a9fe:a9fe::1")


def test_ipv4_compatible_form_of_loopback_is_refused_as_webhook_target() -> None:
    _refused("::7f00:1")
    _refused("::a00:1")  # 10.0.0.1


def test_ipv4_mapped_loopback_is_refused_as_webhook_target() -> None:
    _refused("::ffff:127.0.0.1")
    _refused("::ffff:a9fe:a9fe")


def test_teredo_address_with_private_client_is_refused_as_webhook_target() -> None:
    # Server 65.54.227.120, client 192.0.2.45 (RFC 4380 section 4 example, obfuscated).
    _refused("2001:0:4136:e378:8000:63bf:3fff:fdd2")


def test_embedded_ipv4_extraction_names_every_form() -> None:
    from devattest.service.services.webhooks import embedded_ipv4

    v4 = ipaddress.IPv4Address
    assert embedded_ipv4(ipaddress.IPv6Address("64:ff9b::a9fe:a9fe")) == [v4("169.254.169.254")]
    assert embedded_ipv4(ipaddress.IPv6Address("2002:7f00:1::")) == [v4("127.0.0.1")]
    assert embedded_ipv4(ipaddress.IPv6Address("::7f00:1")) == [v4("127.0.0.1")]
    assert embedded_ipv4(ipaddress.IPv6Address("::ffff:127.0.0.1")) == [v4("127.0.0.1")]
    assert v4("192.0.2.45") in embedded_ipv4(
        ipaddress.IPv6Address("2001:0:4136:e378:8000:63bf:3fff:fdd2"))
    assert embedded_ipv4(ipaddress.IPv6Address("2606:4700::1111")) == []


def test_globally_routable_addresses_stay_permitted() -> None:
    for host in ("[2606:4700::1111]", "[64:ff9b::808:808]", "[2002:808:808::1]", "8.8.8.8",
                 "[::ffff:8.8.8.8]"):
        _, address = resolve_destination(f"https://{host}/hook", ())
        assert ipaddress.ip_address(address) == ipaddress.ip_address(host.strip("[]"))


def test_allowed_network_admits_the_embedded_address_it_names() -> None:
    loopback = parse_networks(["127.0.0.0/8"])
    assert ipaddress.ip_address(resolve_destination("http://[::ffff:127.0.0.1]/h",
                                                    loopback)[1]).ipv4_mapped is not None
    nat64 = parse_networks(["64:ff9b::/96", "169.254.0.0/16"])
    assert resolve_destination("http://[64:ff9b::a9fe:a9fe]/h", nat64)[1] == \
        "64:ff9b::a9fe:a9fe"
    with pytest.raises(DestinationRefused):  # the IPv6 prefix alone does not admit 127/8
        resolve_destination("http://[64:ff9b::7f00:1]/h", parse_networks(["64:ff9b::/96"]))
