"""The nginx_sites filter (plugins/filter/nginx_sites.py): the sites of one nginx planned together, the catch-all
they share, and the collisions refused before any change. The apps scenario deploys two named sites on one port."""

import sys

import pytest
from project import ROOT

sys.path.insert(0, str(ROOT / "plugins" / "filter"))
from nginx_sites import nginx_sites  # noqa: E402  pylint: disable=wrong-import-position,import-error

ANY = ["", "[::]:"]


def site(name, names, port=80, tls_port=None, prefixes=None, **extra):
    listens = [[p, port, False] for p in prefixes or ANY] + ([[p, tls_port, True] for p in prefixes or ANY] if tls_port else [])
    return {"site": name, "names": names, "listens": listens, **extra}


def test_named_sites_on_one_port_share_one_catch_all_of_their_sockets():
    plan = nginx_sites([site("shop", "shop.example.com", 80, 443)], site("api", "api.example.com", 80, 443))
    assert plan["problems"] == []
    assert plan["catch_all"] == [["", 80, False], ["", 443, True], ["[::]:", 80, False], ["[::]:", 443, True]]
    assert [r["site"] for r in plan["sites"]] == ["api", "shop"]


def test_the_catch_all_does_not_change_when_a_site_is_deployed_again():
    shop, api = site("shop", "shop.example.com", 80, 443), site("api", "api.example.com", 80, 443)
    first = nginx_sites([shop], api)
    again = nginx_sites(first["sites"], shop)
    assert again["catch_all"] == first["catch_all"] and again["sites"] == first["sites"]


def test_the_catch_all_reads_headers_as_long_as_the_quickest_named_site():
    """Until nginx has read the Host header, the catch-all's client_header_timeout applies on the sites' sockets."""
    plan = nginx_sites([site("shop", "shop.example.com", header_timeout=10), site("demo", "_", 8001, header_timeout=1)],
                       site("api", "api.example.com", header_timeout=3))
    assert plan["header_timeout"] == 3
    assert nginx_sites([], site("demo", "_", header_timeout=3))["header_timeout"] == 60


def test_a_site_that_answers_every_name_has_no_catch_all_and_shares_no_port():
    assert nginx_sites([], site("demo", "_"))["catch_all"] == []
    for records, this in (([site("shop", "shop.example.com")], site("demo", "_")), ([site("demo", "_")], site("shop", "shop.example.com")),
                          ([site("demo", "_")], site("other", "_"))):
        problems = nginx_sites(records, this)["problems"]
        assert len(problems) == 1 and "every host name (nginx_server_name '_')" in problems[0], problems
    # Ports apart, they live together: the named one's ports get the catch-all.
    plan = nginx_sites([site("demo", "_", 8001)], site("shop", "shop.example.com", 8002))
    assert plan["problems"] == [] and plan["catch_all"] == [["", 8002, False], ["[::]:", 8002, False]]


def test_a_port_is_tls_for_every_site_on_it_or_for_none():
    problems = nginx_sites([site("shop", "shop.example.com", 8443)], site("api", "api.example.com", 80, 8443))["problems"]
    assert problems and "TLS for one of this site and site 'shop'" in problems[0]


def test_a_host_name_belongs_to_one_site_per_port():
    problems = nginx_sites([site("shop", "shop.example.com www.example.com")], site("api", "www.example.com"))["problems"]
    assert problems == ["nginx_server_name www.example.com is also site 'shop''s on the same port: each host name belongs to one site."]
    assert nginx_sites([site("shop", "www.example.com", 8001)], site("api", "www.example.com", 8002))["problems"] == []


def test_a_site_removed_leaves_the_catch_all_of_the_others_and_one_read_back_is_replaced():
    shop, api = site("shop", "shop.example.com", 80, 443), site("api", "api.example.com", 8080)
    plan = nginx_sites([shop, api], {**api, "state": "absent"})
    assert [r["site"] for r in plan["sites"]] == ["shop"] and ["", 8080, False] not in plan["catch_all"]
    # What the remove_site entry point gives: the name and the state.
    assert nginx_sites([shop, api], {"site": "api", "state": "absent"}) == plan
    assert nginx_sites([shop], {"site": "shop", "state": "absent"})["catch_all"] == []
    moved = nginx_sites([shop, api], site("api", "api.example.com", 8081))
    assert ["", 8081, False] in moved["catch_all"] and ["", 8080, False] not in moved["catch_all"]


@pytest.mark.parametrize("records, this", [("not a list", site("a", "_")), ([{"site": "x"}], site("a", "_")), ([], {"site": "a", "listens": [[80]]})])
def test_a_malformed_record_is_an_error_not_a_plan(records, this):
    with pytest.raises(Exception, match="nginx_sites"):
        nginx_sites(records, this)
