"""benchmarks/web_load.py: the numbers it prints, and a real (small) run against `muses serve`."""
from __future__ import annotations

import pytest

from benchmarks import web_load
from muses.testing.catalog import add_met_items
from muses.testing.net import Server


def result(mix: str, latencies: list[float], seconds: float = 1.0, errors: int = 0) -> web_load.Result:
    return web_load.Result(mix, len(latencies), 50, seconds, latencies, errors, {})


def test_percentiles_rates_and_the_target():
    r = result("browse", [float(ms) for ms in range(1, 401)])
    assert (r.percentile(0.5), r.percentile(0.95), r.rate) == (201.0, 381.0, 400.0)
    assert web_load.meets_target(r) is False  # p95 381 ms > 300 ms
    assert web_load.meets_target(result("item", [10.0] * 300)) is True
    assert web_load.meets_target(result("item", [10.0] * 300, errors=1)) is False
    assert web_load.meets_target(result("images", [10.0] * 10)) is None  # reported only
    assert "| item | 300 | 50 | 300 | 10 | 10 | 10 | 0 | met |" in web_load.table([result("item", [10.0] * 300)])


def test_urls_are_what_a_curator_asks_for():
    import random

    c = web_load.Collection(["a/b", "2"], [7], ["bust"], ["bust", "(none)"], ["Oil on canvas"])
    rng = random.Random(0)
    urls = {mix: [make(c, rng) for _ in range(50)] for mix, make in web_load.MIXES.items()}
    assert all(u.startswith("/items?") and "page=" in u for u in urls["browse"])
    assert set(urls["item"]) == {"/items/a%2Fb", "/items/2"}
    assert set(urls["images"]) == {"/images/7"}
    assert {u.split("?")[0] for u in urls["api"]} == {"/api/items", "/api/items/a%2Fb", "/api/items/2", "/api/similar"}
    assert set(urls["similar"]) == {"/api/similar?ids=a%2Fb&limit=12", "/api/similar?ids=2&limit=12"}
    catalog = urls["catalog"]
    assert any("q=" in u for u in catalog) and any("material=Oil+on+canvas" in u for u in catalog)
    assert any("century=" in u for u in catalog) and any(u.startswith("/items/") for u in catalog)


def test_the_catalog_mix_is_judged_by_its_p99():
    assert web_load.meets_target(result("catalog", [900.0] * 300)) is True  # 300 requests in 1 s, p99 0.9 s
    assert web_load.meets_target(result("catalog", [10.0] * 290 + [1500.0] * 10)) is False


@pytest.mark.slow
def test_a_small_run_against_a_real_server(project, met_sample):
    add_met_items(project, met_sample, 12)
    results = web_load.run(project.root, mixes=["browse", "item", "similar", "images"], requests=30, concurrency=4,
                           workers=1, log=print)
    print(web_load.table(results))
    assert [r.mix for r in results] == ["browse", "item", "similar", "images"]
    for r in results:
        assert r.errors == 0, r.error_kinds
        assert len(r.latencies_ms) == 30 and r.rate > 0


@pytest.mark.slow
def test_the_clients_read_whole_answers_and_count_what_failed(project, met_sample):
    """The load generator's own HTTP client against a real server: bodies of every size read to
    the end over one kept-alive connection, errors counted by status."""
    import asyncio

    ids = add_met_items(project, met_sample, 3)
    with Server(project.root, workers=1) as server:
        seconds, latencies, errors = asyncio.run(web_load._load(
            server.base, [f"/items/{ids[0]}", "/static/style.css", "/items/no-such-id", f"/api/items/{ids[1]}"] * 3, 1))
    assert len(latencies) == 12 and seconds > 0
    # a body left unread would be taken for the next answer's start: an error of the client's own
    assert [kind.split(":")[0] for kind in errors] == ["HTTP 404"] and sum(errors.values()) == 3, errors
    assert "Started server process" in server.output


def test_latencies_by_kind_of_request():
    assert [web_load.kind_of(u) for u in ("/items/a%2Fb", "/api/items?q=bust&page=2", "/items?q=bust&century=18",
                                          "/api/items?material=Gold", "/items?page=3", "/api/similar?ids=1", "/images/7")] == [
        "object page, HTML", "search, JSON", "search + facet, HTML", "facet view, JSON", "listing, HTML",
        "similar, JSON", "images, HTML"]
    r = web_load.Result("catalog", 4, 50, 1.0, [10.0, 30.0, 20.0, 900.0], 0, {},
                        ["/items/1", "/items/2", "/items?q=a", "/items?q=a&century=18"])
    assert r.by_kind() == {"object page, HTML": [10.0, 30.0], "search + facet, HTML": [900.0], "search, HTML": [20.0]}
    assert "| search + facet, HTML | 1 | 900 | 900 | 900 | 900 |" in web_load.kinds_table(r)


@pytest.mark.slow
def test_a_synthetic_catalog_in_one_command(capsys):
    """What docs/scaling.md's one line runs, at a small size: build, serve, load, the table by kind."""
    assert web_load.main(["--synthetic", "60", "--mix", "catalog", "-n", "40", "-c", "4", "--workers", "1", "--by-kind"]) == 0
    out = capsys.readouterr().out
    assert "| catalog | 40 | 4 |" in out and "| object page, HTML |" in out
