"""The helper that looks for a leaked id on a page ignores the random CSRF token and nothing else."""

from __future__ import annotations

from webhelpers import leaks

PAGE = """<html><body data-server-now="2026-01-01T00:00:00+00:00" hx-headers='{"X-CSRF-Token": "ab_o1xyz"}'>
<form><input type="hidden" name="csrf_token" value="ab_o1xyz"><input type="hidden" name="order" value="{order}"></form>
<p>{text}</p><a href="/app/orders/{link}">x</a></body></html>"""


def page(order: str = "", text: str = "", link: str = "") -> str:
    return PAGE.replace("{order}", order).replace("{text}", text).replace("{link}", link)


def test_T2_leaks_ignores_an_id_that_only_the_random_csrf_token_contains() -> None:
    assert "o1" in page() and not leaks(page(), "o1")


def test_T2_leaks_finds_an_id_in_text_links_and_hidden_fields() -> None:
    assert leaks(page(text="order o1"), "o1")
    assert leaks(page(link="o1"), "o1")
    assert leaks(page(order="o1"), "o1")
    assert leaks(page(text="a &amp; o1"), "& o1")
