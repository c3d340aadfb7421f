"""``flowgrad explore``'s JSON API: the numbers against flowgrad itself, and every refusal.

The first part calls the handlers of :mod:`flowgrad.explore.api` directly (no web stack);
the second runs the real server (``python -m flowgrad explore``) in a child process and
talks HTTP to it, with the headers a browser, a script or an attacker would send.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import math
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from test_explain import FORMULAS
from test_formula import HOSTILE

import flowgrad as fg
from flowgrad.cli import main
from flowgrad.explore import api
from flowgrad.explore.api import ApiError, Limits
from flowgrad.viz import OPTIMIZERS, SURFACES, get_surface
from flowgrad.viz.formula import compile_formula

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _status(fn, body, limits=api.DEFAULT_LIMITS) -> tuple[int, str]:
    with pytest.raises(ApiError) as info:
        fn(body, limits)
    return info.value.status, info.value.message


# ---------------------------------------------------------------------------------------------
# explain: the same JSON as the CLI, the same numbers as fg.grad
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, values", FORMULAS)
def test_explain_answers_exactly_the_cli_json(text, values, capsys):
    args = ["explain", "--json", "--", text, *(f"{k}={v!r}" for k, v in values.items())]
    assert main(args) == 0
    printed = capsys.readouterr().out
    answer = api.explain({"formula": text, "values": values})
    assert answer + "\n" == printed


@pytest.mark.parametrize("text, values", FORMULAS)
def test_explain_values_and_gradients_equal_fg_grad(text, values):
    data = json.loads(api.explain({"formula": text, "values": values}))
    f = compile_formula(text)
    names = list(f.variables)

    def g(*args):
        return f(**dict(zip(names, args)))

    point = [np.float64(values[n]) for n in names]
    assert data["output"]["value"] == pytest.approx(g(*point).item(), rel=1e-15)
    grads = fg.grad(g, argnums=tuple(range(len(names))))(*point)
    for name, grad in zip(names, grads):
        assert data["gradients"][name]["backward"] == pytest.approx(grad.item(), rel=1e-14)


def test_explain_reverse_sweep_fields_hand_computed():
    data = json.loads(api.explain({"formula": "x*x + sin(x)", "values": {"x": 2.0}}))
    assert data["backward_order"] == ["n3", "n2", "n1"]
    nodes = {n["id"]: n for n in data["nodes"]}
    assert [nodes[k]["gradient"] for k in ("n1", "n2", "n3")] == [1.0, 1.0, 1.0]
    assert nodes["n1"]["sent"] == [
        {"input": "x", "position": 1, "upstream": 1.0, "local": 2.0, "sent": 2.0},
        {"input": "x", "position": 2, "upstream": 1.0, "local": 2.0, "sent": 2.0},
    ]
    (to_x,) = nodes["n2"]["sent"]
    assert to_x["sent"] == pytest.approx(math.cos(2.0), rel=1e-15)
    # A variable's gradient is the sum of what its edges were sent.
    into_x = [s["sent"] for n in data["nodes"] for s in n["sent"] if s["input"] == "x"]
    assert math.fsum(into_x) == pytest.approx(data["gradients"]["x"]["backward"], rel=1e-15)


@pytest.mark.parametrize("text, values", FORMULAS)
def test_every_edge_sends_upstream_times_local(text, values):
    data = json.loads(api.explain({"formula": text, "values": values}))
    ids = {n["id"]: n for n in data["nodes"]}
    for n in data["nodes"]:
        for s in n["sent"]:
            assert s["upstream"] == n["gradient"]
            assert s["sent"] == pytest.approx(s["upstream"] * s["local"], rel=1e-14, abs=1e-300)
        # A node's gradient is the sum of what its consumers sent it.
        received = [s["sent"] for m in data["nodes"] for s in m["sent"] if s["input"] == n["id"]]
        if n["id"] != data["output"]["id"]:
            assert math.fsum(received) == pytest.approx(n["gradient"], rel=1e-12, abs=1e-15)
    assert data["backward_order"] == [n["id"] for n in reversed(data["nodes"])]
    assert set(ids) == set(data["backward_order"])


def test_parse_lists_variables():
    assert api.parse({"formula": "sigmoid(w*x+b)"}) == {
        "formula": "sigmoid(w*x + b)", "variables": ["b", "w", "x"]}


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_formulas_are_400(text, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for fn, body in ((api.explain, {"formula": text, "values": {}}),
                     (api.parse, {"formula": text}),
                     (api.surface, {"surface": text}),
                     (api.curve, {"function": text}),
                     (api.descent, {"function": text, "runs": [{"optimizer": "sgd"}]})):
        status, message = _status(fn, body)
        assert status == 400 and message and "\n" not in message
    assert not (tmp_path / "pwned.txt").exists()


@pytest.mark.parametrize("body, fragment", [
    ([1, 2], "must be a JSON object"),
    ({"values": {}}, "missing field 'formula'"),
    ({"formula": 3}, "'formula' must be a string"),
    ({"formula": "x", "values": {}}, "no value given for x"),
    ({"formula": "x", "values": {"x": 1, "y": 2}}, "value given for y"),
    ({"formula": "x", "values": {"x": "1"}}, "must be a number"),
    ({"formula": "x", "values": {"x": True}}, "must be a number"),
    ({"formula": "x", "values": {"x": 1e400}}, "finite"),
    ({"formula": "x", "values": [1]}, "'values' must be an object"),
    ({"formula": "x", "values": {"x": 1}, "max_paths": 10**6}, "'max_paths' must be between"),
    ({"formula": "x", "values": {"x": 1}, "extra": 1}, "unknown field 'extra'"),
    ({"formula": "x" * 501, "values": {}}, "too long"),
])
def test_explain_refusals(body, fragment):
    status, message = _status(api.explain, body)
    assert status == 400 and fragment in message, message


# ---------------------------------------------------------------------------------------------
# descent: the paths fg.optim takes, stepped here by hand
# ---------------------------------------------------------------------------------------------

# Each optimizer name as the fg.optim class and options it stands for, written out.
DIRECT = {
    "sgd": lambda p, lr: fg.optim.SGD(p, lr=lr),
    "momentum": lambda p, lr: fg.optim.SGD(p, lr=lr, momentum=0.9),
    "nesterov": lambda p, lr: fg.optim.SGD(p, lr=lr, momentum=0.9, nesterov=True),
    "adagrad": lambda p, lr: fg.optim.Adagrad(p, lr=lr),
    "rmsprop": lambda p, lr: fg.optim.RMSprop(p, lr=lr),
    "adam": lambda p, lr: fg.optim.Adam(p, lr=lr),
    "adamw": lambda p, lr: fg.optim.AdamW(p, lr=lr),
}


def _stepped(loss_of, start, make, lr, steps):
    leaf = fg.tensor(np.array(start, dtype=np.float64), requires_grad=True)
    opt = make([leaf], lr)
    points, losses = [], []
    for k in range(steps + 1):
        opt.zero_grad()
        loss = loss_of(leaf)
        loss.backward()
        points.append(leaf.numpy().copy())
        losses.append(loss.item())
        if k < steps:
            opt.step()
    return np.array(points), np.array(losses)


def test_every_catalogued_optimizer_is_checked():
    assert set(DIRECT) == set(OPTIMIZERS)


@pytest.mark.parametrize("name", sorted(DIRECT))
@pytest.mark.parametrize("surface", ["ill-conditioned", "rosenbrock", "saddle"])
def test_descent_paths_equal_stepping_fg_optim(name, surface):
    surf = get_surface(surface)
    lr, steps, start = surf.lrs[name], 25, [0.7, -0.4] if surface == "saddle" else surf.start
    answer = api.descent({"surface": surface, "start": list(start), "steps": steps,
                          "runs": [{"optimizer": name, "lr": lr}]})
    (run,) = answer["runs"]
    assert run["optimizer"] == name and run["lr"] == lr and len(run["points"]) == steps + 1
    points, losses = _stepped(lambda p: surf.fn(p[0], p[1]), start, DIRECT[name], lr, steps)
    np.testing.assert_allclose(run["points"], points, rtol=1e-13, atol=1e-300)
    np.testing.assert_allclose(run["losses"], losses, rtol=1e-13, atol=1e-300)


def test_descent_1d_path_bound_and_regimes():
    lrs = [0.3, 0.7, 1.2]  # f = x**2: f'' = 2, bound 2/f'' = 1, 1/f'' = 0.5
    answer = api.descent({"function": "x**2", "start": 2.0, "steps": 20,
                          "runs": [{"optimizer": "sgd", "lr": lr} for lr in lrs]})
    assert answer["minimum"] == {"x": 0.0, "value": 0.0, "curvature": 2.0, "bound": 1.0}
    assert [r["regime"] for r in answer["runs"]] == ["monotone", "oscillating", "unstable"]
    for run, lr in zip(answer["runs"], lrs):
        points, _ = _stepped(lambda p: p[0] ** 2, [2.0], DIRECT["sgd"], lr, 20)
        np.testing.assert_allclose(run["points"], points, rtol=1e-15)
        # Plain SGD on x**2 multiplies x by 1 - 2 lr each step.
        assert run["points"][3][0] == pytest.approx(2.0 * (1 - 2 * lr) ** 3, rel=1e-14)


def test_surface_grid_is_flowgrads_values():
    answer = api.surface({"surface": "himmelblau", "n": 31})
    surf = SURFACES["himmelblau"]
    X, Y, Z = surf.grid(31)
    assert answer["x"] == X[0].tolist() and answer["y"] == Y[:, 0].tolist()
    np.testing.assert_array_equal(np.array(answer["z"], dtype=np.float64), Z)
    assert answer["minima"] == surf.minima.tolist() and len(answer["minima"]) == 4
    assert answer["levels"] == sorted(answer["levels"])
    formula = api.surface({"surface": "x**2 + 5*y**2", "n": 11, "xlim": [-1, 1]})
    assert formula["formula"] == "x**2 + 5*y**2" and formula["xlim"] == [-1.0, 1.0]
    gaps = api.surface({"surface": "log(x)", "n": 11})  # no value left of 0: JSON null
    assert gaps["z"][0][0] is None and gaps["z"][0][-1] == pytest.approx(math.log(3.0))


def test_curve_minimum_from_second_derivative():
    answer = api.curve({"function": "x**4 - 3*x**2 + x", "start": 2.0, "n": 101})
    m = answer["minimum"]
    f2 = fg.grad(fg.grad(lambda x: x**4 - 3 * x**2 + x))(np.float64(m["x"])).item()
    assert m["curvature"] == pytest.approx(f2, rel=1e-12)
    assert m["bound"] == pytest.approx(2.0 / f2, rel=1e-12)
    assert answer["lr_max"] == pytest.approx(2.5 * m["bound"])
    assert len(answer["x"]) == len(answer["y"]) == 101
    assert api.curve({"function": "x", "start": 0.0})["minimum"] is None


@pytest.mark.parametrize("fn, body, status, fragment", [
    (api.descent, {"surface": "bowl", "runs": [{"optimizer": "sgd"}]}, 400, "unknown surface"),
    (api.descent, {"runs": [{"optimizer": "sgd"}]}, 400, "either 'surface'"),
    (api.descent, {"surface": "saddle", "function": "x", "runs": []}, 400, "either"),
    (api.descent, {"surface": "saddle", "runs": []}, 400, "non-empty"),
    (api.descent, {"surface": "saddle", "runs": [{"optimizer": "lbfgs"}]}, 400,
     "unknown optimizer 'lbfgs'"),
    (api.descent, {"surface": "saddle", "runs": [{"optimizer": "sgd", "lr": -1}]}, 400,
     "positive"),
    (api.descent, {"surface": "saddle", "runs": [{"optimizer": "sgd"}] * 9}, 400, "at most 8"),
    (api.descent, {"surface": "saddle", "steps": 10**6, "runs": [{"optimizer": "sgd"}]}, 400,
     "'steps' must be between 0 and 5000"),
    (api.descent, {"surface": "saddle", "start": [1], "runs": [{"optimizer": "sgd"}]}, 400,
     "point [x, y]"),
    (api.descent, {"function": "x*y", "runs": [{"optimizer": "sgd"}]}, 400,
     "unknown variable y"),
    (api.descent, {"function": "log(x)", "start": -1, "runs": [{"optimizer": "sgd"}]}, 400,
     "not finite at the start"),
    (api.surface, {"surface": "saddle", "n": 100000}, 400, "'n' must be between"),
    (api.surface, {"surface": "saddle", "xlim": [1, 0]}, 400, "lo < hi"),
    (api.curve, {"function": "3"}, 400, "does not depend on x"),
])
def test_descent_refusals(fn, body, status, fragment):
    got, message = _status(fn, body)
    assert got == status and fragment in message, message


def test_time_limit_is_503():
    body = {"surface": "rosenbrock", "steps": 5000, "runs": [{"optimizer": "sgd"}] * 8}
    status, message = _status(api.descent, body, Limits(seconds=0.0))
    assert status == 503 and "longer than the limit" in message


def test_info_lists_what_the_endpoints_accept():
    answer = api.info()
    assert answer["optimizers"] == list(OPTIMIZERS)
    assert set(answer["surfaces"]) == set(SURFACES)
    assert "sigmoid" in answer["functions"] and answer["models"] == ["mlp"]
    assert answer["limits"]["max_steps"] == 5000


# ---------------------------------------------------------------------------------------------
# The real server, over HTTP
# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def serve_explore(*args: str, timeout: float = 60.0):
    """Run ``python -m flowgrad explore --no-open --port 0 ARGS``; yield (process, base URL).

    The server gets Ctrl-C (SIGINT) at the end, as a user would stop it.
    """
    pytest.importorskip("starlette")
    pytest.importorskip("uvicorn")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([SRC, *filter(None, [env.get("PYTHONPATH")])])
    proc = subprocess.Popen(
        [sys.executable, "-m", "flowgrad", "explore", "--no-open", "--port", "0", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], timeout)
        line = proc.stdout.readline() if ready else ""
        if "http://" not in line:
            proc.kill()
            raise AssertionError(f"the server did not start: {line!r} {proc.stderr.read()}")
        yield proc, line.split()[2].rstrip("/")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


class Client:
    """Raw HTTP to the server, with full control of the headers (Host, Origin, ...)."""

    def __init__(self, url: str):
        self.netloc = url.split("//", 1)[1]
        host, port = self.netloc.rsplit(":", 1)
        self.host, self.port = host, int(port)

    def request(self, method: str, path: str, body=None, headers=None, raw: bytes | None = None,
                host: str | None = None, chunked: bool = False):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", self.netloc if host is None else host)
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        hdrs = {"Content-Type": "application/json"} if data is not None else {}
        hdrs.update(headers or {})
        for k, v in hdrs.items():
            conn.putheader(k, v)
        if data is not None and not chunked and "Content-Length" not in hdrs:
            conn.putheader("Content-Length", str(len(data)))
        if chunked:
            conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        if data is not None:
            if chunked:
                for k in range(0, len(data), 65536):
                    piece = data[k:k + 65536]
                    conn.send(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                conn.send(b"0\r\n\r\n")
            else:
                conn.send(data)
        response = conn.getresponse()
        payload = response.read()
        conn.close()
        try:
            parsed = json.loads(payload)
        except ValueError:
            parsed = payload.decode("utf-8", "replace")
        return response.status, {k.lower(): v for k, v in response.getheaders()}, parsed

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body=body, **kw)


@pytest.fixture(scope="module")
def server():
    with serve_explore() as (proc, url):
        yield proc, Client(url)


def test_page_and_static_files(server):
    _, c = server
    status, headers, page = c.get("/")
    assert status == 200 and "flowgrad explore" in page
    assert "default-src 'self'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff"
    assert c.get("/static/graph.js")[0] == 200
    assert c.get("/static/vendor/d3.LICENSE.txt")[0] == 200


@pytest.mark.parametrize("path", [
    "/static/../app.py", "/static/%2e%2e/app.py", "/static/..%2fapp.py", "/static/%2e%2e%2fapp.py",
    "/static/vendor/../../app.py", "/static//etc/passwd", "/static/%2fetc%2fpasswd",
    "/static/..%5capp.py", "/../../../../etc/passwd", "/static/./../__init__.py",
])
def test_static_files_stay_in_the_static_folder(server, path):
    _, c = server
    status, _, body = c.get(path)
    assert status == 404, (path, status)
    assert "Starlette" not in str(body) and "import" not in str(body)


def test_http_explain_is_the_cli_json(server, capsys):
    _, c = server
    body = {"formula": "sigmoid(w*x + b)", "values": {"w": 0.5, "x": 2, "b": -1}}
    status, headers, answer = c.post("/api/explain", body)
    assert status == 200 and headers["content-type"].startswith("application/json")
    assert main(["explain", "sigmoid(w*x + b)", "w=0.5", "x=2", "b=-1", "--json"]) == 0
    assert answer == json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("headers, host, status, fragment", [
    ({}, "evil.example:8765", 403, "DNS-rebinding"),
    ({}, "127.0.0.1.nip.io", 403, "DNS-rebinding"),
    ({"Origin": "http://evil.example"}, None, 403, "cross-origin"),
    ({"Origin": "null"}, None, 403, "cross-origin"),
    ({"Sec-Fetch-Site": "cross-site"}, None, 403, "cross-site"),
    ({"Content-Type": "text/plain"}, None, 415, "application/json"),
    ({"Content-Type": "application/x-www-form-urlencoded"}, None, 415, "application/json"),
])
def test_http_refusals_by_header(server, headers, host, status, fragment):
    _, c = server
    body = {"formula": "x", "values": {"x": 1}}
    got, _, answer = c.post("/api/explain", body, headers=headers, host=host)
    assert got == status and fragment in answer["error"], answer


def test_same_origin_writes_and_scripts_without_origin_are_fine(server):
    _, c = server
    body = {"formula": "x", "values": {"x": 1}}
    origin = {"Origin": f"http://{c.netloc}", "Sec-Fetch-Site": "same-origin"}
    assert c.post("/api/explain", body, headers=origin)[0] == 200
    assert c.post("/api/explain", body)[0] == 200  # curl and scripts send no Origin
    assert c.get("/api/info", host=f"localhost:{c.port}")[0] == 200


def test_http_request_size_limits(server):
    _, c = server
    big = b'{"formula": "' + b"x+" * 200_000 + b'x", "values": {}}'
    status, _, answer = c.post("/api/explain", raw=big)
    assert status == 413 and "bytes" in answer["error"]
    status, _, answer = c.post("/api/explain", raw=big, chunked=True)  # no Content-Length
    assert status == 413
    # A malformed length never reaches the app: the HTTP parser answers 400 itself.
    status, _, answer = c.post("/api/explain", raw=b"{}", headers={"Content-Length": "-1"})
    assert status == 400


@pytest.mark.parametrize("raw, fragment", [
    (b"{", "not valid JSON"),
    (b'{"formula": "x", "values": {"x": NaN}}', "not valid JSON"),
    (b'{"formula": "x", "values": {"x": Infinity}}', "not valid JSON"),
    (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
    (b"\xff\xfe", "not valid JSON"),
    (b'"just a string"', "must be a JSON object"),
])
def test_http_bad_json_is_400(server, raw, fragment):
    _, c = server
    status, _, answer = c.post("/api/explain", raw=raw)
    assert status == 400 and fragment in answer["error"], answer


def test_http_hostile_formulas_are_400_and_run_nothing(server, tmp_path):
    _, c = server
    for text in HOSTILE:
        status, _, answer = c.post("/api/explain", {"formula": text, "values": {}})
        assert status == 400 and answer["error"], text
        assert c.post("/api/surface", {"surface": text})[0] == 400
    assert not Path("pwned.txt").exists()


def test_http_unknown_paths_and_methods(server):
    _, c = server
    status, _, answer = c.get("/api/nothing")
    assert status == 404 and "no such" in answer["error"]
    status, _, answer = c.get("/api/explain")
    assert status == 405 and "GET" in answer["error"]
    assert c.request("DELETE", "/api/train")[0] == 405


def test_http_training_stream_409_stop_and_predict(server, tmp_path):
    proc, c = server
    status, _, answer = c.post("/api/predict", {"image": _png_data_url(_digit_image(1))})
    assert status == 409 and "train" in answer["error"]
    settings = {"epochs": 200, "hidden": 16, "batch_size": 64}
    status, _, started = c.post("/api/train", settings)
    assert status == 200 and started["state"] == "running"
    status, _, answer = c.post("/api/train", settings)
    assert status == 409 and "one run at a time" in answer["error"]
    # The event stream sends the status after every epoch; stop after the second.
    states, epochs = [], []
    for status_event in _events(c, "/api/train/events"):
        states.append(status_event["state"])
        epochs.append(len(status_event["epochs"]))
        if len(status_event["epochs"]) >= 2 and "stopping" not in states:
            assert c.post("/api/train/stop")[2]["state"] == "stopping"
            states.append("stopping")
    assert states[-1] == "stopped" and epochs == sorted(epochs)
    final = c.get("/api/train")[2]
    assert 2 <= len(final["epochs"]) < 200 and final["result"]["stopped"]
    assert np.sum(final["result"]["confusion"]) == 359  # the digits' held-out images
    assert final["result"]["accuracy"] == pytest.approx(final["epochs"][-1]["test_accuracy"])

    # A drawing gets what `flowgrad predict` says for the same picture and run folder.
    for label in (0, 3, 7):
        image = _digit_image(label)
        status, _, p = c.post("/api/predict", {"image": _png_data_url(image)})
        assert status == 200 and len(p["input"]) == 8 and len(p["input"][0]) == 8
        path = tmp_path / f"digit{label}.png"
        image.save(path)
        out = subprocess.run([sys.executable, "-m", "flowgrad", "predict", final["run_dir"],
                              str(path), "--json"], capture_output=True, text=True,
                             env={**os.environ, "PYTHONPATH": SRC}, check=True).stdout
        (cli,) = json.loads(out)
        assert (p["class"], p["probabilities"]) == (cli["class"], cli["probabilities"])
    status, _, answer = c.post("/api/predict", {"image": "data:image/png;base64,AAAA"})
    assert status == 400 and "PNG" in answer["error"]
    status, _, answer = c.post("/api/predict", {"image": _png_data_url(_blank_image())})
    assert status == 400 and "ink" in answer["error"]
    status, _, answer = c.post("/api/predict", {"image": "http://example.com/x.png"})
    assert status == 400
    status, _, answer = c.post("/api/predict", {"image": _png_data_url(_blank_image(3000))})
    assert status == 413 and "3000x3000" in answer["error"]
    assert proc.poll() is None


def test_http_training_that_diverges_fails_with_its_message(server):
    _, c = server
    assert c.post("/api/train", {"epochs": 3, "lr": 1e12})[0] == 200
    (*_, last) = _events(c, "/api/train/events")
    assert last["state"] == "failed" and "diverged" in last["error"]
    assert c.post("/api/train/stop")[2]["state"] == "failed"  # nothing to stop


def test_http_models_are_what_training_offers_and_each_trains(server):
    from flowgrad.explore.jobs import available_models

    _, c = server
    models = c.get("/api/info")[2]["models"]
    assert models == list(available_models()) and "mlp" in models
    assert c.post("/api/train", {"model": "transformer"})[0] == 400
    for model in models:  # "cnn" too, where flowgrad.training offers it
        assert c.post("/api/train", {"model": model, "epochs": 1, "hidden": 16})[0] == 200
        (*_, last) = _events(c, "/api/train/events")
        assert last["state"] == "done", last["error"]
        assert last["config"].get("model", "mlp") == model
        status, _, p = c.post("/api/predict", {"image": _png_data_url(_digit_image(4))})
        assert status == 200 and sum(p["probabilities"].values()) == pytest.approx(1, abs=1e-5)


def test_http_foreign_host_cannot_read_either(server):
    _, c = server
    for path in ("/", "/api/info", "/api/train", "/static/graph.js"):
        status, _, answer = c.get(path, host="evil.example")
        assert status == 403 and "DNS-rebinding" in answer["error"]


def test_server_survives_everything_above(server):
    proc, c = server
    assert proc.poll() is None
    assert c.get("/api/info")[0] == 200


def test_unexpected_error_is_500_and_the_server_carries_on(monkeypatch, capsys):
    pytest.importorskip("starlette")
    uvicorn = pytest.importorskip("uvicorn")
    import threading

    from flowgrad.explore.app import create_app, open_socket

    def broken(body, limits):
        raise RuntimeError("a bug")

    monkeypatch.setattr(api, "curve", broken)
    sock = open_socket("127.0.0.1", 0)
    netloc = f"127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(create_app(allowed_hosts={netloc}),
                                           log_level="error", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.01)
        c = Client(f"http://{netloc}")
        status, _, answer = c.post("/api/curve", {"function": "x**2"})
        assert status == 500 and answer == {"error": "internal error: RuntimeError: a bug"}
        assert c.post("/api/parse", {"formula": "x"})[0] == 200
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
    assert "RuntimeError: a bug" in capsys.readouterr().err  # the traceback, for a bug report


def _events(c: Client, path: str, limit: float = 120.0):
    """Read a server-sent event stream of status objects until it ends."""
    conn = http.client.HTTPConnection(c.host, c.port, timeout=limit)
    conn.request("GET", path, headers={"Host": c.netloc})
    response = conn.getresponse()
    assert response.status == 200
    assert response.getheader("content-type").startswith("text/event-stream")
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        line = response.readline()
        if not line:
            break
        if line.startswith(b"data: "):
            yield json.loads(line[6:])
    conn.close()


def _digit_image(label: int):
    """A held-out 8x8 digit, drawn large and dark on light, as a PIL image."""
    from PIL import Image

    from flowgrad.data import load_digits

    images, labels = load_digits()
    pixels = images[np.flatnonzero(labels == label)[-1]].reshape(8, 8)
    big = np.kron(pixels, np.ones((28, 28)))
    return Image.fromarray(np.uint8(255 - 255 * big / big.max()), mode="L")


def _blank_image(side: int = 64):
    from PIL import Image

    return Image.new("L", (side, side), 255)


def _png_data_url(image) -> str:
    import base64

    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


# ---------------------------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------------------------


def test_cli_prints_url_and_stops_cleanly_on_ctrl_c():
    with serve_explore() as (proc, url):
        assert url.startswith("http://127.0.0.1:")
        assert Client(url).get("/api/info")[0] == 200
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert "stopped" in out and "Traceback" not in err


def test_cli_warns_for_a_non_loopback_host():
    with serve_explore("--host", "0.0.0.0") as (proc, url):
        ready, _, _ = select.select([proc.stderr], [], [], 10)
        warning = proc.stderr.readline() if ready else ""
    assert "warning: listening on 0.0.0.0" in warning


def test_cli_port_in_use_is_one_line(capsys):
    pytest.importorskip("uvicorn")
    from flowgrad.explore.app import open_socket

    sock = open_socket("127.0.0.1", 0)
    try:
        port = sock.getsockname()[1]
        assert main(["explore", "--no-open", "--port", str(port)]) == 2
    finally:
        sock.close()
    err = capsys.readouterr().err
    assert err.startswith(f"flowgrad explore: error: cannot listen on 127.0.0.1:{port}")
    assert len(err.strip().splitlines()) == 1


def test_allowed_hosts_are_the_servers_own_names():
    pytest.importorskip("starlette")
    from flowgrad.explore.app import allowed_hosts, open_socket

    sock = open_socket("127.0.0.1", 0)
    try:
        port = sock.getsockname()[1]
        hosts, url, loopback = allowed_hosts("127.0.0.1", sock)
    finally:
        sock.close()
    assert loopback and url == f"http://127.0.0.1:{port}/"
    assert hosts == {f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"}


def test_cli_without_the_extra_says_how_to_install(monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "uvicorn" else real(name, *a))
    assert main(["explore", "--no-open"]) == 2
    err = capsys.readouterr().err
    assert "pip install 'flowgrad[explore]'" in err and "missing: uvicorn" in err


def test_cli_bad_port(capsys):
    assert main(["explore", "--port", "70000"]) == 2
    assert "--port must be between 0 and 65535" in capsys.readouterr().err
