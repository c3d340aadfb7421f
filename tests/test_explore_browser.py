"""``flowgrad explore`` in a real browser: Playwright driving the system's Chromium.

The server runs as ``python -m flowgrad explore`` in a child process; the page is checked
against numbers flowgrad computes here. Each test fails on any console error or uncaught
exception in the page. Screenshots go to ``$FLOWGRAD_SCREENSHOTS`` (or a pytest temporary
folder), with ``timings.json``: the page's load time and slider-update times, measured in
the browser.

Chromium comes from the system (``apt-get install chromium``; ``$FLOWGRAD_CHROMIUM`` names
another binary), not from ``playwright install``. Without it or without the ``playwright``
package the tests skip, unless ``FLOWGRAD_REQUIRE_BROWSER=1`` (set by ``.ci/run``), where
they fail instead: CI must run them.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from test_explore_api import serve_explore

import flowgrad as fg
from flowgrad.explore import api
from flowgrad.viz.formula import compile_formula

CHROMIUM = os.environ.get("FLOWGRAD_CHROMIUM", "/usr/bin/chromium")
REQUIRED = os.environ.get("FLOWGRAD_REQUIRE_BROWSER") == "1"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 30_000

pytestmark = pytest.mark.browser


def _unavailable(reason: str) -> None:
    if REQUIRED:
        pytest.fail(f"FLOWGRAD_REQUIRE_BROWSER=1 but {reason}", pytrace=False)
    pytest.skip(f"browser tests skipped outside CI: {reason}")


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    folder = os.environ.get("FLOWGRAD_SCREENSHOTS")
    path = Path(folder) if folder else tmp_path_factory.mktemp("explore-screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def timings(screenshots):
    found: dict[str, object] = {}
    yield found
    (screenshots / "timings.json").write_text(json.dumps(found, indent=2) + "\n")


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed (pip install playwright)")
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        _unavailable(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    profile = tempfile.mkdtemp(prefix="flowgrad-chromium-")
    try:
        with sync_playwright() as p:
            context = p.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, headless=True, args=ARGS,
                viewport={"width": 1400, "height": 1000})
            context.set_default_timeout(TIMEOUT_MS)
            yield context
            context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def url(browser):
    with serve_explore() as (_, base):
        yield base + "/"


@pytest.fixture
def refused() -> set[int]:
    """HTTP statuses a test provokes on purpose (Chromium logs each as a console error)."""
    return set()


@pytest.fixture
def page(browser, url, refused):
    """A fresh tab; the test fails on any console error or uncaught page exception."""
    tab = browser.new_page()
    problems: list[str] = []
    tab.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
           if m.type == "error" else None)
    tab.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    # A stream the page closes itself (the training events, once a run ends) is "aborted".
    tab.on("requestfailed", lambda r: problems.append(f"request failed: {r.url} {r.failure}")
           if r.failure != "net::ERR_ABORTED" else None)
    yield tab
    tab.close()
    expected = tuple(f"Failed to load resource: the server responded with a status of {code} "
                     for code in refused)
    assert not [p for p in problems if not any(e in p for e in expected)], problems


def _open(page, url: str, state: str) -> None:
    page.goto(url + "#" + state)
    page.wait_for_selector("body[data-ready='1']", state="attached")


def _number(page, selector: str) -> float:
    return float(page.get_attribute(selector, "data-value"))


def _wait_for(condition, seconds: float = TIMEOUT_MS / 1000) -> None:
    """Poll from Python: the page's CSP (rightly) forbids the eval that wait_for_function needs."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the page")
        time.sleep(0.02)


def _grads(text: str, values: dict[str, float]) -> dict[str, float]:
    f = compile_formula(text)
    names = list(f.variables)
    grads = fg.grad(lambda *a: f(**dict(zip(names, a))), argnums=tuple(range(len(names))))(
        *[np.float64(values[n]) for n in names])
    return {n: g.item() for n, g in zip(names, grads)}


# ---------------------------------------------------------------------------------------------


def test_graph_view_shows_flowgrads_numbers(page, url, screenshots, timings):
    _open(page, url, "view=graph&f=sigmoid(w*x%20%2B%20b)&v.w=0.5&v.x=2&v.b=-1")
    timings["page_load_ms"] = round(page.evaluate("FG.timings.pageLoad"), 1)
    expected = json.loads(api.explain({"formula": "sigmoid(w*x + b)",
                                       "values": {"w": 0.5, "x": 2, "b": -1}}))
    assert page.text_content("#output-value") == "0.5"
    # Every op node, variable and constant, and one edge per input plus the output edge.
    assert page.locator("#graph-svg g.node.op").count() == 3
    assert page.locator("#graph-svg g.node.variable").count() == 3
    assert page.locator("#graph-svg g.edge").count() == 6
    for node in expected["nodes"]:
        assert _number(page, f"[data-node='{node['id']}'] .line2") == node["value"]
        assert _number(page, f"[data-node='{node['id']}'] .line3") == node["gradient"]
        for s in node["sent"]:
            edge = f"[data-edge='{node['id']}:{s['position']}'] text.bwd"
            assert _number(page, edge) == s["sent"]
    for name, g in expected["gradients"].items():
        assert _number(page, f"[data-node='v:{name}'] .line2") == g["backward"]
    assert page.locator("#chain .check.ok").count() == 3
    page.screenshot(path=str(screenshots / "explore-graph.png"), full_page=True)


def test_slider_updates_gradients_in_place(page, url, timings):
    _open(page, url, "view=graph&f=sigmoid(w*x%20%2B%20b)&v.w=0.5&v.x=2&v.b=-1")
    where = "els => els.map(e => e.getAttribute('transform'))"
    places = page.eval_on_selector_all("#graph-svg g.node", where)
    updates = []
    # mul's input 1 is w: its edge carries d f/d n1 * x = d f/d w.
    edge = "[data-edge='n1:1'] text.bwd"
    for w in (1.5, -0.75, 2.25, 0.1):
        page.fill("#slider-w", str(w))
        grads = _grads("sigmoid(w*x + b)", {"w": w, "x": 2.0, "b": -1.0})
        wanted = grads["w"]
        _wait_for(lambda wanted=wanted: _number(page, edge) == pytest.approx(wanted, rel=1e-12))
        text = page.text_content(edge)
        assert text.startswith("← ") and float(text[2:]) == pytest.approx(grads["w"], rel=1e-3)
        assert _number(page, "[data-node='v:x'] .line2") == pytest.approx(grads["x"], rel=1e-13)
        assert page.input_value("#value-w") == str(w)
        updates.append(page.evaluate("FG.timings.sliderUpdate"))
    # The layout did not move: only text changed.
    assert page.eval_on_selector_all("#graph-svg g.node", where) == places
    assert f"v.w={0.1}" in page.evaluate("location.hash")
    timings["slider_update_ms"] = [round(t, 1) for t in updates]


def test_step_backward_through_the_sweep(page, url, screenshots):
    _open(page, url, "view=graph&f=x*x%20%2B%20sin(x)&v.x=2")
    expected = json.loads(api.explain({"formula": "x*x + sin(x)", "values": {"x": 2.0}}))
    page.click("#step-reset")
    assert page.locator("#graph-svg text.bwd[data-value]").count() == 0
    assert "Forward pass done" in page.text_content("#step-text")
    order = expected["backward_order"]
    nodes = {n["id"]: n for n in expected["nodes"]}
    for k, node_id in enumerate(order, start=1):
        page.click("#step-next")
        step = page.text_content("#step-text")
        assert f"Step {k} of {len(order)}: node {node_id}" in step
        assert page.locator(f"#graph-svg g.node.current[data-node='{node_id}']").count() == 1
        for s in nodes[node_id]["sent"]:
            label = page.text_content(f"[data-edge='{node_id}:{s['position']}'] text.bwd")
            assert "×" in label and "=" in label  # upstream × local = sent
            assert "upstream × local" in step
        if k == 1:
            page.screenshot(path=str(screenshots / "explore-graph-step.png"), full_page=True)
    # x's gradient shows once all three of its edges have sent theirs.
    assert _number(page, "[data-node='v:x'] .line2") == expected["gradients"]["x"]["backward"]
    page.click("#step-back")
    assert f"Step {len(order) - 1} of" in page.text_content("#step-text")
    assert page.get_attribute("[data-node='v:x'] .line2", "data-value") is None
    page.click("#step-all")
    assert "All 3 nodes swept" in page.text_content("#step-text")
    # The chain-rule table: three paths, their sum, backward() and the finite difference.
    block = page.locator("#chain [data-variable='x']")
    assert block.locator("tr.path").count() == 3
    assert "✓" in block.locator(".check").text_content()
    g = expected["gradients"]["x"]
    assert [float(v) for v in block.locator("table.sums td.num").evaluate_all(
        "els => els.map(e => e.dataset.value)")] == [g["path_sum"], g["backward"],
                                                     g["finite_difference"]]


def test_hostile_formula_shows_the_parsers_error(page, url, refused):
    refused.add(400)
    _open(page, url, "view=graph")
    page.fill("#formula", "__import__('os').system('touch pwned')")
    page.click("#graph-form button[type=submit]")
    page.wait_for_selector("#graph-error:not([hidden])")
    assert "not allowed" in page.text_content("#graph-error")
    assert not Path("pwned").exists()


def test_descent_click_sets_start_and_draws_paths(page, url, screenshots):
    _open(page, url, "view=descent&mode=2d&surface=himmelblau&opt=sgd:0.01,momentum:0.002,adam:0.2")
    page.wait_for_selector("#contour-svg[data-paths='3']", state="attached")
    assert page.locator("#contour-svg path.band").count() > 10
    box = page.locator("#contour-svg").bounding_box()
    with page.expect_request("**/api/descent") as sent, \
            page.expect_response("**/api/descent") as answered:
        page.mouse.click(box["x"] + 0.7 * box["width"], box["y"] + 0.3 * box["height"])
    body = json.loads(sent.value.post_data)
    drawn = answered.value.json()
    assert body["surface"] == "himmelblau" and len(body["runs"]) == 3
    assert drawn == json.loads(json.dumps(api.descent(body)))  # flowgrad's paths, unchanged
    start = body["start"]
    assert 0 < start[0] < 5 and 0 < start[1] < 5  # the upper-right quadrant was clicked
    assert page.locator("#contour-svg path.path").count() == 3
    assert "start=" in page.evaluate("location.hash")
    page.wait_for_timeout(2000)  # let the paths finish animating
    page.screenshot(path=str(screenshots / "explore-descent.png"), full_page=True)
    rows = page.locator("#descent-summary tr[data-optimizer]")
    assert rows.count() == 3


def test_descent_1d_learning_rate_either_side_of_the_bound(page, url, screenshots):
    _open(page, url, "view=descent&mode=1d&fn=x**2&x0=2&steps=20")
    page.wait_for_selector("#bound-text .bound")
    assert "2/f''(x*) = 1" in page.text_content("#bound-text")
    for lr, regime in ((0.3, "monotone"), (0.8, "oscillating"), (1.5, "unstable")):
        page.fill("#lr-slider", str(lr))
        page.wait_for_selector(f"#bound-text .verdict.{regime}")
    assert "diverged" in page.text_content("#bound-text .verdict")
    page.fill("#lr-slider", "0.8")
    page.wait_for_selector("#bound-text .verdict.oscillating")
    page.screenshot(path=str(screenshots / "explore-descent-1d.png"), full_page=True)


def test_train_live_then_draw_a_digit(page, url, screenshots, timings):
    _open(page, url, "view=train&epochs=6&hidden=32")
    started = time.perf_counter()
    page.click("#train-start")
    page.wait_for_selector("#train-accuracy:not(:empty)")
    timings["first_epoch_on_page_ms"] = round(page.evaluate("FG.timings.firstEpoch"), 1)
    page.wait_for_selector("#train-status[data-state='done']", state="attached")
    timings["six_epochs_s"] = round(time.perf_counter() - started, 2)
    accuracy = float(page.get_attribute("#train-accuracy", "data-value"))
    assert accuracy > 0.8
    assert page.get_attribute("#confusion-svg", "data-total") == "359"
    assert page.locator("#train-loss-svg path.series").count() == 2
    # Draw a "1": one vertical stroke.
    box = page.locator("#draw-canvas").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + 0.15 * box["height"]
    page.mouse.move(x, y)
    page.mouse.down()
    for k in range(1, 21):
        page.mouse.move(x + k * 0.5, y + k * 0.035 * box["height"])
    page.mouse.up()
    page.wait_for_selector("#prediction[data-class]", state="attached")
    assert page.get_attribute("#prediction", "data-class") in [str(d) for d in range(10)]
    assert page.locator("#prob-svg rect.bar").count() == 10
    page.screenshot(path=str(screenshots / "explore-train.png"), full_page=True)


def test_train_the_cnn_from_the_menu(page, url):
    from flowgrad.explore.jobs import available_models

    _open(page, url, "view=train")
    options = page.eval_on_selector_all("#train-model option", "els => els.map(e => e.value)")
    assert options == list(available_models())
    if "cnn" not in options:
        pytest.skip("this flowgrad.training offers no CNN")
    page.select_option("#train-model", "cnn")
    page.fill("#train-epochs", "3")
    page.click("#train-start")
    # The page may first show the previous test's finished run: wait for this run's end.
    page.wait_for_function("""() => {
        const s = document.querySelector('#train-status');
        return s.dataset.state === 'done' && s.textContent.startsWith('cnn:');
    }""")
    assert "model=cnn" in page.evaluate("location.hash")
    assert page.text_content("#train-status").startswith("cnn: done, 3 epochs")
    assert float(page.get_attribute("#train-accuracy", "data-value")) > 0.5
    box = page.locator("#draw-canvas").bounding_box()
    page.mouse.move(box["x"] + 90, box["y"] + 60)
    page.mouse.down()
    for k in range(1, 16):  # a "7": across, then down to the left
        page.mouse.move(box["x"] + 90 + 7 * min(k, 8), box["y"] + 60 + 10 * max(k - 8, 0))
    page.mouse.up()
    page.wait_for_selector("#prediction[data-class]", state="attached")


def test_second_training_run_is_refused_while_one_runs(page, url, refused):
    refused.add(409)
    _open(page, url, "view=train&epochs=200&hidden=16")
    page.click("#train-start")
    page.wait_for_selector("#train-status[data-state='running']", state="attached")
    answer = page.evaluate("""async () => {
        const r = await fetch('/api/train', {method: 'POST',
            headers: {'Content-Type': 'application/json'}, body: '{}'});
        return [r.status, (await r.json()).error];
    }""")
    assert answer[0] == 409 and "one run at a time" in answer[1]
    page.click("#train-stop")
    page.wait_for_selector("#train-status[data-state='stopped']", state="attached")
