"""Phones in free text (erasure.phonetext): every written form found, a longer number never,
national forms only with a region, and the lines that may hold one located exactly."""

from __future__ import annotations

import random

import pytest

from erasure import ConfigError, PluginHost
from erasure.config import parse_config
from erasure.phonetext import PhoneFinder
from erasure.systems import build_systems

LEEDS = "+441130000001"


@pytest.mark.parametrize("text", [
    "call 0113 000 0001 now", "+44 (0)113 000 0001", "0044.113.000.0001", "(0113) 000-0001",
    "+44\u00a0113\u00a0000\u00a00001", "tel:+44-113-000-0001", "01130000001"])
def test_every_written_form_is_found_with_a_region(text: str) -> None:
    assert PhoneFinder([LEEDS], "GB").find(text) == {LEEDS}


@pytest.mark.parametrize("text", [
    "+44 113 000 00012", "0113 000 00012", "+44 113 000 0001 2", "0113 000 0001 2",
    "+4411300000012", "+44 113 000 0001-2", "9 0113 000 0001"])
def test_a_longer_number_holding_it_is_never_found(text: str) -> None:
    assert PhoneFinder([LEEDS], "GB").find(text) == set()


def test_without_a_region_only_international_forms_count() -> None:
    finder = PhoneFinder([LEEDS, "+12025550143"], None)
    assert finder.find("+44 113 000 0001 or 0044 113 000 0001") == {LEEDS}
    assert finder.find("0113 000 0001") == set()  # a national form names nobody without one
    assert finder.find("011 1 202 555 0143") == {"+12025550143"}  # the US prefix
    assert finder.find("(202) 555-0143") == set()


def test_lines_that_may_hold_a_number_are_located_exactly() -> None:
    finder = PhoneFinder([LEEDS], "GB")
    rnd = random.Random(7)
    for _ in range(200):
        lines = []
        for _n in range(rnd.randint(1, 80)):
            if rnd.random() < 0.1:
                lines.append(rnd.choice(["0113 000 0001", "+44-113-000-0001", "(0113) 0000001"])
                             + " x" * rnd.randint(0, 30))
            else:
                lines.append(" ".join("w" * rnd.randint(0, 9) for _w in range(rnd.randint(0, 40))))
        block = "\n".join(lines).encode()
        expected, pos = {}, 0
        for line in lines:
            end = pos + len(line)
            if "113" in line:
                expected[(pos, end)] = {LEEDS}
            pos = end + 1
        assert finder.lines(block) == expected


def test_the_host_default_region_reaches_systems_that_read_free_text() -> None:
    plugins = PluginHost.load()
    known = {n: plugins.registry.get(n) for n in plugins.registry.names()}
    systems = {"archive": {"connector": "mail", "backend": "mbox", "path": "/tmp/x.mbox"},
               "eu": {"connector": "mail", "backend": "mbox", "path": "/tmp/y.mbox",
                      "phone_region": "de"}}
    config = parse_config({"erasure": {"default_phone_region": "gb"}, "systems": systems},
                          known_connectors=known)
    built = build_systems(config, plugins)
    assert built["archive"].connector().settings.phone_region == "GB"  # type: ignore[attr-defined]
    assert built["eu"].connector().settings.phone_region == "DE"  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="default_phone_region: .*not a phone region"):
        parse_config({"erasure": {"default_phone_region": "UK"}}, known_connectors=known)
