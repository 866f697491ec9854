"""SEC1: which webhook targets the server refuses, and how a delivery is pinned to the address it checked."""

from __future__ import annotations

import socket

import pytest

from aftersales.service import egress
from aftersales.service.egress import Egress, RefusedTarget, check_url, classify, pin

PUBLIC = "93.184.216.34"


def answers(table: dict[str, list[str]]):
    """A resolver playing DNS from a table (name → addresses); unknown names do not resolve."""
    def getaddrinfo(host, port, *args, **kwargs):
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in table[host]]
    return getaddrinfo


@pytest.mark.parametrize(("url", "kind"), [
    ("http://127.0.0.1:5432/", "loopback"),
    ("http://[::1]/", "loopback"),
    ("http://10.0.0.1/", "private"),
    ("http://172.16.0.1/", "private"),
    ("http://172.31.255.254/", "private"),
    ("http://192.168.1.1/", "private"),
    ("http://169.254.169.254/latest/meta-data/", "metadata"),
    ("http://169.254.1.1/", "link-local"),
    ("http://100.64.0.1/", "cgnat"),
    ("http://0.0.0.0/", "unspecified"),
    ("http://[::ffff:127.0.0.1]/", "loopback"),
    ("http://[::ffff:10.0.0.1]/", "private"),
    ("http://[64:ff9b::a9fe:a9fe]/", "metadata"),
    ("http://224.0.0.1/", "multicast"),
    ("http://240.0.0.1/", "reserved"),
    ("http://[fd00::1]/", "private"),
    ("http://2130706433/", "loopback"),  # 127.0.0.1 as one number: resolved, then checked
])
def test_SEC1_refuses_every_non_public_class(url, kind):
    with pytest.raises(RefusedTarget) as refused:
        check_url(url, Egress())
    assert refused.value.rule == "SEC1" and refused.value.status == 422
    assert kind in refused.value.detail and refused.value.errors[0]["field"] == "url"


def test_SEC1_a_name_resolving_to_loopback_is_refused():
    with pytest.raises(RefusedTarget, match="loopback"):
        check_url("http://localhost:8000/hook", Egress())


def test_SEC1_metadata_names_are_refused_before_any_lookup(monkeypatch):
    monkeypatch.setattr(egress, "getaddrinfo", answers({"metadata.google.internal": [PUBLIC]}))
    for url in ("http://metadata.google.internal/computeMetadata/v1/", "http://METADATA.google.internal./", "http://metadata/"):
        with pytest.raises(RefusedTarget, match="metadata"):
            check_url(url, Egress())


def test_SEC1_a_name_with_one_private_address_among_public_ones_is_refused(monkeypatch):
    monkeypatch.setattr(egress, "getaddrinfo", answers({"mixed.example": [PUBLIC, "10.1.2.3"]}))
    with pytest.raises(RefusedTarget, match="private"):
        check_url("https://mixed.example/hook", Egress())


def test_SEC1_public_targets_pass_and_unresolved_names_are_left_to_the_delivery(monkeypatch):
    monkeypatch.setattr(egress, "getaddrinfo", answers({"hooks.example": [PUBLIC]}))
    check_url("https://hooks.example/a", Egress())
    check_url(f"http://{PUBLIC}:8080/a", Egress())
    check_url("https://not-yet.example/a", Egress())  # no address: every delivery checks again
    with pytest.raises(egress.Unresolved):
        pin("https://not-yet.example/a", Egress())


def test_SEC1_allow_private_lets_local_receivers_through_but_never_metadata_or_unspecified():
    private = Egress(allow_private=True)
    for url in ("http://127.0.0.1:9/x", "http://10.0.0.1/", "http://192.168.1.1/", "http://100.64.0.1/", "http://[::1]/"):
        check_url(url, private)
    for url in ("http://169.254.169.254/", "http://0.0.0.0/", "http://224.0.0.1/", "http://metadata.google.internal/"):
        with pytest.raises(RefusedTarget):
            check_url(url, private)


def test_SEC1_https_only_in_production(monkeypatch):
    monkeypatch.setattr(egress, "getaddrinfo", answers({"hooks.example": [PUBLIC]}))
    with pytest.raises(RefusedTarget, match="https"):
        check_url("http://hooks.example/a", Egress(https_only=True))
    check_url("https://hooks.example/a", Egress(https_only=True))


@pytest.mark.parametrize("url", ["ftp://hooks.example/a", "http:///nohost", "hooks.example/a", "http://[::1/"])
def test_SEC1_not_an_http_url(url):
    with pytest.raises(RefusedTarget):
        check_url(url, Egress())


def test_SEC1_pin_connects_to_the_checked_address_and_speaks_to_the_name(monkeypatch):
    monkeypatch.setattr(egress, "getaddrinfo", answers({"hooks.example": [PUBLIC]}))
    target = pin("https://user:pw@hooks.example:8443/in?x=1", Egress())
    assert target.request_url.host == PUBLIC and target.request_url.port == 8443
    assert target.request_url.path == "/in" and target.request_url.query == b"x=1" and target.request_url.userinfo == b"user:pw"
    assert target.host_header == "hooks.example:8443"
    assert target.extensions == {"sni_hostname": "hooks.example"}
    plain = pin("http://hooks.example/in", Egress())
    assert plain.host_header == "hooks.example" and plain.extensions == {}


def test_SEC1_classify_public_addresses():
    import ipaddress

    assert classify(ipaddress.ip_address(PUBLIC)) is None
    assert classify(ipaddress.ip_address("2606:4700::1111")) is None
