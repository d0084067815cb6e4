"""The status page in headless Chromium against a real ``opsmap run`` on a real git repo.

The ``shop`` map: ``db`` (a tcp check on a port this test listens on, depending on the
external ``zookeeper``), ``api`` (a hostile name, description and check output) depending
on ``db``, ``web`` depending on ``api``, with a ``restart`` action. The page is loaded
once per view; what changes afterwards reaches it through the event stream, never a
reload (a marker set on ``window`` survives).
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from browser import wait_until
from gitrepos import ALICE, BOB
from page_site import FORGE, HOSTILE, Site
from selenium import webdriver
from selenium.webdriver.common.by import By

pytestmark = pytest.mark.slow

COLUMNS = ("request", "target", "requester", "approver", "decision", "rule", "state", "hosts",
           "commit")  # fmt: skip
GREEN, RED, AMBER = "rgb(34, 197, 94)", "rgb(239, 68, 68)", "rgb(245, 158, 11)"
GREY = "rgb(156, 163, 175)"


def node(browser: webdriver.Chrome, component: str) -> dict[str, object] | None:
    """The drawn node: its classes and its box's fill colour, as the browser computes it."""
    found: dict[str, object] | None = browser.execute_script(
        """
        const g = [...document.querySelectorAll('g.node')].find(n => n.dataset.id === arguments[0]);
        if (!g) return null;
        return {classes: [...g.classList], fill: getComputedStyle(g.querySelector('rect')).fill,
                dash: getComputedStyle(g.querySelector('rect')).strokeDasharray};
        """,
        component,
    )
    return found


def wait_node(browser: webdriver.Chrome, component: str, fill: str, *, impacted: bool) -> None:
    def reached() -> bool:
        got = node(browser, component)
        return bool(got) and got["fill"] == fill and ("impacted" in got["classes"]) == impacted  # type: ignore[index, operator]

    wait_until(
        reached, what=f"{component} drawn {fill}, impacted={impacted}: {node(browser, component)}"
    )


def open_view(browser: webdriver.Chrome, site: Site, fragment: str) -> None:
    """A fresh load of the page at ``fragment`` (from another page: a change of the hash
    alone would not load it), once it has rendered that view."""
    browser.get("about:blank")
    browser.get(site.url + fragment)
    wait_until(
        lambda: browser.execute_script("return window.opsmapRenders > 0"), what="first render"
    )
    browser.execute_script("window.noReload = 'still here'")


def still_same_page(browser: webdriver.Chrome) -> bool:
    return browser.execute_script("return window.noReload") == "still here"


def test_graph_colours_and_a_port_closing_live(browser: webdriver.Chrome, site: Site) -> None:
    open_view(browser, site, "#/maps/shop")
    wait_node(browser, "db", GREEN, impacted=False)
    wait_node(browser, "api", GREEN, impacted=False)
    wait_node(browser, "web", GREEN, impacted=False)
    wait_node(browser, "batch", AMBER, impacted=False)
    wait_node(browser, "legacy", GREY, impacted=False)  # no checks: unknown
    zookeeper = node(browser, "zookeeper")
    assert zookeeper is not None
    assert "external" in zookeeper["classes"]  # type: ignore[operator]
    assert zookeeper["dash"] not in ("none", "")  # drawn dashed
    # dependents above what they depend on
    y = {c: browser.find_element(By.CSS_SELECTOR, f'g.node[data-id="{c}"]').rect["y"]
         for c in ("web", "api", "db")}  # fmt: skip
    assert y["web"] < y["api"] < y["db"]

    site.listener.close()  # the port closes: db turns red, what depends on it impacted
    wait_node(browser, "db", RED, impacted=False)
    wait_node(browser, "api", GREEN, impacted=True)
    wait_node(browser, "web", GREEN, impacted=True)
    assert still_same_page(browser)

    site.listener.open()  # reopened on the same port: green again, nothing impacted
    wait_node(browser, "db", GREEN, impacted=False)
    wait_node(browser, "api", GREEN, impacted=False)
    wait_node(browser, "web", GREEN, impacted=False)
    assert still_same_page(browser)
    # through the event stream (not the fallback that polls while it is down)
    assert browser.find_element(By.ID, "live").get_attribute("class") == "live on"


def test_overview_counts_and_footer(browser: webdriver.Chrome, site: Site) -> None:
    open_view(browser, site, "#/")
    cards = wait_until(
        lambda: browser.find_elements(By.CSS_SELECTOR, "a.map-card"), what="map cards"
    )
    assert sorted(c.get_attribute("data-map") for c in cards) == ["secret", "shop"]
    footer = browser.find_element(By.ID, "footer").text
    assert "same for everyone" in footer
    assert browser.find_element(By.CSS_SELECTOR, "table.hosts").text.count("page-local") == 1


def test_request_text_and_forge_link(browser: webdriver.Chrome, site: Site) -> None:
    open_view(browser, site, "#/maps/shop/components/web")
    action = wait_until(
        lambda: browser.find_elements(By.CSS_SELECTOR, 'section.action[data-action="restart"]'),
        what="the restart action",
    )[0]
    command = action.find_element(By.CSS_SELECTOR, "pre.command").text
    assert command == "opsmap request restart shop/web --reason 'Say why this is needed.'"
    text = action.find_element(By.CSS_SELECTOR, "pre.request-text").text
    assert yaml.safe_load(text) == {
        "map": "shop", "component": "web", "action": "restart", "reason": "Say why this is needed."
    }  # fmt: skip
    link = action.find_element(By.CSS_SELECTOR, "a.forge").get_attribute("href") or ""
    url = urlsplit(link)
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{FORGE}/new/main"
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert re.fullmatch(
        r"requests/\d{4}-\d\d-\d\d-restart-web-[0-9a-f]{6}\.yaml", query["filename"]
    )
    assert yaml.safe_load(query["value"]) == yaml.safe_load(text)


def test_hostile_names_render_as_text(browser: webdriver.Chrome, site: Site) -> None:
    open_view(browser, site, "#/maps/shop/components/api")
    heading = wait_until(
        lambda: browser.find_elements(By.CSS_SELECTOR, "main h1"), what="the heading"
    )[0]
    assert HOSTILE in heading.text
    wait_until(
        lambda: HOSTILE in browser.find_element(By.CSS_SELECTOR, "table.checks").text,
        what="the check's hostile output shown as text",
    )
    open_view(browser, site, "#/maps/shop")
    wait_node(browser, "api", GREEN, impacted=False)
    assert browser.execute_script("return window.pwned") is None
    assert browser.find_elements(By.CSS_SELECTOR, "main img, main script") == []


def test_a_user_without_view_does_not_see_the_map(
    browser: webdriver.Chrome, trusted_site: Site
) -> None:
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd(
        "Network.setExtraHTTPHeaders", {"headers": {"X-Forwarded-Email": "olga@example.com"}}
    )
    try:
        open_view(browser, trusted_site, "#/")
        shown = wait_until(  # read in the probe: a refetch may render the cards again
            lambda: [
                c.get_attribute("data-map")
                for c in browser.find_elements(By.CSS_SELECTOR, "a.map-card")
            ],
            what="map cards",
        )
        assert shown == ["shop"]
        assert "olga@example.com" in browser.find_element(By.ID, "footer").text
        open_view(browser, trusted_site, "#/maps/secret")
        wait_until(
            lambda: "Not found" in browser.find_element(By.CSS_SELECTOR, "main").text,
            what="the hidden map answered as not found",
        )
        open_view(browser, trusted_site, "#/maps/shop/components/web")
        may = wait_until(
            lambda: browser.find_elements(By.CSS_SELECTOR, "section.action .may"), what="may"
        )[0]
        assert may.text == "you may request it"
    finally:
        browser.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {}})


def test_a_restricted_viewer_finds_nothing_hidden_in_any_view(
    browser: webdriver.Chrome, trusted_site: Site
) -> None:
    """Olga views ``shop`` only: no view of the page, as the browser renders it (every
    element and attribute), names the ``secret`` map or its ``vault``; without an identity
    the page says it is not signed in and shows no map."""
    browser.execute_cdp_cmd("Network.enable", {})

    def rendered(fragment: str, wanted: str) -> str:
        open_view(browser, trusted_site, fragment)
        wait_until(
            lambda: wanted in browser.find_element(By.TAG_NAME, "main").text,
            what=f"{wanted!r} in {fragment}",
        )
        html: str = browser.execute_script("return document.documentElement.outerHTML")
        return html.lower()

    headers = {"X-Forwarded-Email": "olga@example.com"}
    browser.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": headers})
    try:
        views = {
            "#/": "shop",
            "#/maps/shop": "Web front",
            "#/maps/shop/components/web": "restart",
            "#/maps/shop/components/db": "Database",
            "#/requests": "Requests",
            "#/maps/secret": "Not found",
            "#/maps/secret/components/vault": "Not found",
        }
        for fragment, wanted in views.items():
            html = rendered(fragment, wanted)
            assert "vault" not in html, fragment
            assert "secret" not in html.replace("#/maps/secret", ""), fragment
            assert "zookeeper" not in html, fragment  # external: no component she may view
        browser.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {}})
        html = rendered("#/", "Not signed in")
        assert "shop" not in html
        assert "no trusted identity" in html
    finally:
        browser.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {}})


def test_a_merged_request_appears_live_in_the_requests_view(
    browser: webdriver.Chrome, site: Site
) -> None:
    open_view(browser, site, "#/requests")
    path = "requests/2026-12-02-restart-web.yaml"
    text = "map: shop\ncomponent: web\naction: restart\nreason: from the page's test\n"
    _, merge = site.clone.pull_request("pr-restart", {path: text}, author=ALICE, merger=BOB)
    site.clone.push()

    def finished() -> dict[str, str] | None:
        rows = browser.find_elements(By.CSS_SELECTOR, f'tr[data-request="{path}"]')
        if not rows:
            return None
        cells = [c.text for c in rows[0].find_elements(By.TAG_NAME, "td")]
        row = dict(zip(COLUMNS, cells, strict=True))
        return row if row["state"] == "succeeded" else None

    row = wait_until(finished, what=f"{path} succeeded in the requests view")
    assert row["target"].startswith("shop/web")
    assert row["requester"] == f"{ALICE.email} claimed"
    assert row["approver"] == f"{BOB.email} claimed"
    assert row["decision"] == "allow"
    assert "operator" in row["rule"]
    assert row["hosts"] == "page-local: succeeded"
    assert row["commit"] == merge[:12]
    link = browser.find_element(By.CSS_SELECTOR, f'tr[data-request="{path}"] td:last-child a')
    assert link.get_attribute("href") == f"{FORGE}/commit/{merge}"
    assert still_same_page(browser)

    open_view(browser, site, "#/maps/shop/components/web")
    history = wait_until(
        lambda: browser.find_elements(By.CSS_SELECTOR, "table.history"), what="history"
    )[0].text
    assert "request.authorized" in history
    assert "action.succeeded" in history
