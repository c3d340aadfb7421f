// The Descent view: optimizers of fg.optim on 2-D surfaces (contour plot, click to start,
// animated paths, loss per step) and SGD on a 1-D function with the learning-rate slider
// and the stability bound 2/f''(x*). Surfaces, paths, minima and bounds come from
// /api/surface, /api/descent and /api/curve.
"use strict";

(function () {
  const DEFAULT_ON = ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam"];
  const COLORS = ["#d62728", "#ff7f0e", "#9467bd", "#2ca02c", "#8c564b", "#e377c2", "#17becf", "#1f77b4"];
  const PLOT = { W: 560, H: 440, m: { top: 10, right: 12, bottom: 36, left: 48 } };

  const s2 = {
    surface: null,        // the /api/surface answer
    name: "ill-conditioned",
    start: null,          // [x, y]
    steps: null,
    optimizers: {},       // name -> {on, lr}
    result: null,
    seq: 0,
  };
  const s1 = { fn: "x**2", start: 2, steps: 30, lr: null, curve: null };
  let mode = "2d";

  // ================================================================ 2-D

  function buildOptimizerTable() {
    const table = d3.select("#optimizer-table");
    table.selectAll("*").remove();
    const head = table.append("tr");
    ["", "optimizer", "lr", "result"].forEach((h) => head.append("th").text(h));
    FG.info.optimizers.forEach((name, k) => {
      const o = s2.optimizers[name];
      const row = table.append("tr").attr("data-optimizer", name);
      row.append("td").append("input").attr("type", "checkbox").attr("id", "opt-" + name)
        .property("checked", o.on).on("change", function () {
          o.on = this.checked;
          runDescent();
        });
      const label = row.append("td").append("label").attr("for", "opt-" + name);
      label.append("span").attr("class", "swatch").node().style.background = COLORS[k % COLORS.length];
      label.append("span").text(name);
      row.append("td").append("input").attr("type", "number").attr("step", "any").attr("min", 0)
        .attr("class", "lr").attr("id", "lr-" + name).property("value", o.lr)
        .on("change", function () {
          const v = Number(this.value);
          if (v > 0) {
            o.lr = v;
            runDescent();
          }
        });
      row.append("td").attr("class", "result").attr("id", "result-" + name);
    });
  }

  function colorOf(name) {
    return COLORS[FG.info.optimizers.indexOf(name) % COLORS.length];
  }

  async function loadSurface(name, keepSettings) {
    const surf = await FG.post("/api/surface", { surface: name, n: 121 });
    s2.surface = surf;
    s2.name = name;
    if (!keepSettings || !s2.start) s2.start = surf.start.slice();
    if (!keepSettings || !s2.steps) s2.steps = surf.steps;
    FG.info.optimizers.forEach((o) => {
      const prev = s2.optimizers[o];
      s2.optimizers[o] = {
        on: prev ? prev.on : DEFAULT_ON.includes(o),
        lr: keepSettings && prev && prev.lr ? prev.lr : surf.lrs[o],
      };
    });
    document.getElementById("surface-steps").value = s2.steps;
    buildOptimizerTable();
    drawContours();
  }

  function scales() {
    const { W, H, m } = PLOT, surf = s2.surface;
    return {
      x: d3.scaleLinear().domain(surf.xlim).range([m.left, W - m.right]),
      y: d3.scaleLinear().domain(surf.ylim).range([H - m.bottom, m.top]),
    };
  }

  function drawContours() {
    const surf = s2.surface, { W, H, m } = PLOT;
    const svg = FG.svg("contour-svg", W, H);
    svg.selectAll("*").remove();
    const { x, y } = scales();
    const nx = surf.x.length, ny = surf.y.length;
    const values = surf.z.flat().map((v) => (v === null ? NaN : v));
    const levels = surf.levels;
    const contours = d3.contours().size([nx, ny]).thresholds(levels)(values);
    // Grid cell (i, j) holds the value at (x[i], y[j]); map grid coordinates to pixels.
    const dx = (surf.xlim[1] - surf.xlim[0]) / (nx - 1), dy = (surf.ylim[1] - surf.ylim[0]) / (ny - 1);
    const project = d3.geoTransform({
      point: function (gx, gy) {
        this.stream.point(x(surf.xlim[0] + (gx - 0.5) * dx), y(surf.ylim[0] + (gy - 0.5) * dy));
      },
    });
    const path = d3.geoPath(project);
    svg.append("defs").append("clipPath").attr("id", "plot-clip").append("rect")
      .attr("x", m.left).attr("y", m.top).attr("width", W - m.left - m.right).attr("height", H - m.top - m.bottom);
    const color = d3.scaleSequential(d3.interpolateViridis).domain([0, Math.max(levels.length - 1, 1)]);
    const field = svg.append("g").attr("clip-path", "url(#plot-clip)").attr("class", "field");
    // Every finite value lies in some band (the first level is the minimum): what shows
    // through is where f is not finite.
    field.append("rect").attr("class", "not-finite").attr("x", m.left).attr("y", m.top)
      .attr("width", W - m.left - m.right).attr("height", H - m.top - m.bottom);
    field.selectAll("path.band").data(contours).join("path").attr("class", "band")
      .attr("d", path).attr("fill", (d, k) => color(k));
    field.selectAll("path.iso").data(contours).join("path").attr("class", "iso").attr("d", path);
    svg.append("g").attr("class", "axis").attr("transform", `translate(0,${H - m.bottom})`).call(d3.axisBottom(x).ticks(7));
    svg.append("g").attr("class", "axis").attr("transform", `translate(${m.left},0)`).call(d3.axisLeft(y).ticks(6));
    svg.append("text").attr("class", "axis-label").attr("x", W / 2).attr("y", H - 4).attr("text-anchor", "middle").text("x");
    svg.append("text").attr("class", "axis-label").attr("x", 12).attr("y", H / 2).text("y");
    const marks = svg.append("g").attr("class", "marks").attr("clip-path", "url(#plot-clip)");
    surf.minima.forEach((p) => marks.append("path").attr("class", "minimum")
      .attr("d", d3.symbol(d3.symbolStar, 90)()).attr("transform", `translate(${x(p[0])},${y(p[1])})`));
    surf.saddles.forEach((p) => marks.append("path").attr("class", "saddle")
      .attr("d", d3.symbol(d3.symbolCross, 70)()).attr("transform", `translate(${x(p[0])},${y(p[1])}) rotate(45)`));
    svg.append("g").attr("class", "paths").attr("clip-path", "url(#plot-clip)");
    svg.append("circle").attr("class", "start").attr("r", 6);
    svg.append("text").attr("class", "title").attr("x", m.left + 6).attr("y", m.top + 16).text(surf.title);
    // A click anywhere on the plot starts the optimizers from there.
    svg.on("click", (ev) => {
      const [px, py] = d3.pointer(ev);
      if (px < m.left || px > W - m.right || py < m.top || py > H - m.bottom) return;
      s2.start = [x.invert(px), y.invert(py)];
      runDescent();
    });
    placeStart();
  }

  function placeStart() {
    const { x, y } = scales();
    d3.select("#contour-svg circle.start").attr("cx", x(s2.start[0])).attr("cy", y(s2.start[1]));
    document.getElementById("start-text").textContent =
      `start (${FG.fmt(s2.start[0], 4)}, ${FG.fmt(s2.start[1], 4)}): click the plot to move it`;
  }

  async function runDescent() {
    placeStart();
    save();
    const runs = FG.info.optimizers.filter((o) => s2.optimizers[o].on)
      .map((o) => ({ optimizer: o, lr: s2.optimizers[o].lr }));
    const seq = ++s2.seq;
    d3.select("#contour-svg g.paths").selectAll("*").remove();
    if (!runs.length) return;
    try {
      const result = await FG.post("/api/descent", { surface: s2.name, start: s2.start, steps: s2.steps, runs });
      if (seq !== s2.seq) return;
      FG.showError("descent-error", null);
      s2.result = result;
      drawPaths(result);
    } catch (err) {
      FG.showError("descent-error", err);
    }
  }

  function drawPaths(result) {
    const { x, y } = scales();
    const layer = d3.select("#contour-svg g.paths");
    layer.selectAll("*").remove();
    const line = d3.line().x((p) => x(p[0])).y((p) => y(p[1]));
    result.runs.forEach((run) => {
      const path = layer.append("path").attr("class", "path").attr("data-optimizer", run.optimizer)
        .attr("d", line(run.points)).attr("stroke", colorOf(run.optimizer));
      const length = path.node().getTotalLength();
      path.attr("stroke-dasharray", `${length} ${length}`).attr("stroke-dashoffset", length)
        .transition().duration(1800).ease(d3.easeLinear).attr("stroke-dashoffset", 0)
        .on("end", function () {
          d3.select(this).attr("stroke-dasharray", null);
        });
      const end = run.points[run.points.length - 1];
      layer.append("circle").attr("class", "end").attr("r", 3.5).attr("fill", colorOf(run.optimizer))
        .attr("cx", x(end[0])).attr("cy", y(end[1])).attr("opacity", 0)
        .transition().delay(1800).attr("opacity", 1);
    });
    document.getElementById("contour-svg").dataset.paths = String(result.runs.length);
    FG.lineChart("loss-svg", result.runs.map((r) => ({
      name: r.optimizer, color: colorOf(r.optimizer), values: r.losses.map((v, k) => [k, v]),
    })), { width: 560, height: 220, log: true, xLabel: "step" });
    const summary = d3.select("#descent-summary");
    summary.selectAll("*").remove();
    const head = summary.append("tr");
    ["optimizer", "lr", "status", "steps to |∇f| < tol", "final loss", "final point"].forEach((h) => head.append("th").text(h));
    FG.info.optimizers.forEach((name) => d3.select("#result-" + name).text(""));
    result.runs.forEach((r) => {
      const row = summary.append("tr").attr("data-optimizer", r.optimizer);
      const end = r.points[r.points.length - 1];
      const status = r.status === "diverged" ? `diverged at step ${r.diverged_at}` : r.status;
      [r.optimizer, FG.fmt(r.lr, 4), status, r.steps_to_tol === null ? "–" : r.steps_to_tol,
        FG.fmt(r.losses[r.losses.length - 1], 4), `(${FG.fmt(end[0], 4)}, ${FG.fmt(end[1], 4)})`]
        .forEach((c) => row.append("td").text(c));
      d3.select("#result-" + r.optimizer).text(r.status === "converged" ? `✓ ${r.steps_to_tol} steps` : status);
    });
  }

  // ================================================================ 1-D

  async function loadCurve() {
    const curve = await FG.post("/api/curve", { function: s1.fn, start: s1.start });
    s1.curve = curve;
    const slider = document.getElementById("lr-slider");
    slider.max = curve.lr_max;
    slider.step = curve.lr_max / 1000;
    if (!(s1.lr > 0)) s1.lr = curve.lr_suggested;
    slider.value = s1.lr;
    const mark = document.getElementById("lr-bound-mark");
    const bound = curve.minimum && typeof curve.minimum.bound === "number" ? curve.minimum.bound : null;
    mark.hidden = bound === null;
    if (bound !== null) mark.style.left = (100 * bound / curve.lr_max) + "%";
    drawCurve();
  }

  function curveScales() {
    const { W, H, m } = PLOT, c = s1.curve;
    const ys = c.y.filter((v) => v !== null);
    return {
      x: d3.scaleLinear().domain(c.window).range([m.left, W - m.right]),
      y: d3.scaleLinear().domain(d3.extent(ys)).nice().range([H - m.bottom, m.top]),
    };
  }

  function drawCurve() {
    const { W, H, m } = PLOT, c = s1.curve;
    const svg = FG.svg("curve-svg", W, H);
    svg.selectAll("*").remove();
    const { x, y } = curveScales();
    svg.append("g").attr("class", "axis").attr("transform", `translate(0,${H - m.bottom})`).call(d3.axisBottom(x).ticks(7));
    svg.append("g").attr("class", "axis").attr("transform", `translate(${m.left},0)`).call(d3.axisLeft(y).ticks(6));
    svg.append("defs").append("clipPath").attr("id", "curve-clip").append("rect")
      .attr("x", m.left).attr("y", m.top).attr("width", W - m.left - m.right).attr("height", H - m.top - m.bottom);
    const pts = c.x.map((v, k) => [v, c.y[k]]);
    svg.append("path").attr("class", "curve")
      .attr("d", d3.line().defined((p) => p[1] !== null).x((p) => x(p[0])).y((p) => y(p[1]))(pts));
    if (c.minimum) {
      svg.append("path").attr("class", "minimum").attr("d", d3.symbol(d3.symbolStar, 90)())
        .attr("transform", `translate(${x(c.minimum.x)},${y(c.minimum.value)})`);
    }
    svg.append("g").attr("class", "paths").attr("clip-path", "url(#curve-clip)");
    svg.append("text").attr("class", "title").attr("x", m.left + 6).attr("y", m.top + 16).text("f(x) = " + c.function);
  }

  const REGIMES = {
    monotone: "lr < 1/f''(x*): each step covers part of the way; the path creeps in from one side.",
    oscillating: "1/f''(x*) < lr < 2/f''(x*): each step overshoots x*, by less each time; it converges, oscillating.",
    unstable: "lr > 2/f''(x*): each step overshoots by more than the distance it corrects; it moves away (diverges).",
  };

  const run1d = FG.latest(async () => {
    save();
    document.getElementById("lr-value").textContent = "lr = " + FG.fmt(s1.lr, 4);
    try {
      const r = await FG.post("/api/descent", { function: s1.fn, start: s1.start, steps: s1.steps, runs: [{ optimizer: "sgd", lr: s1.lr }] });
      FG.showError("descent-error", null);
      draw1d(r);
    } catch (err) {
      FG.showError("descent-error", err);
    }
  });

  function draw1d(result) {
    const run = result.runs[0], mini = result.minimum;
    const { x, y } = curveScales();
    const layer = d3.select("#curve-svg g.paths");
    layer.selectAll("*").remove();
    const pts = run.points.map((p, k) => [p[0], run.losses[k]]);
    layer.append("path").attr("class", "path zigzag").attr("d", d3.line().x((p) => x(p[0])).y((p) => y(p[1]))(pts));
    layer.selectAll("circle").data(pts).join("circle").attr("r", 3).attr("class", "step-dot")
      .attr("cx", (p) => x(p[0])).attr("cy", (p) => y(p[1]));
    document.getElementById("curve-svg").dataset.steps = String(run.points.length - 1);
    const add = FG.lines(document.getElementById("bound-text"));
    if (mini) {
      add(`x* = ${FG.fmt(mini.x, 5)}, f''(x*) = ${FG.fmt(mini.curvature, 5)} (flowgrad's second derivative): stability bound 2/f''(x*) = ${FG.fmt(mini.bound, 5)}`, "bound");
    } else {
      add("no local minimum near the start: no stability bound");
    }
    const status = run.status === "diverged" ? `diverged at step ${run.diverged_at}`
      : run.status === "converged" ? `converged: |f'| < 1e-6 from step ${run.steps_to_tol}` : `not converged in ${run.points.length - 1} steps`;
    add(`lr = ${FG.fmt(run.lr, 4)}: ${status}.`, "verdict " + (run.regime || ""));
    if (run.regime) add(REGIMES[run.regime], "regime");
    FG.lineChart("curve-loss-svg", [{ name: "f(x_k)", values: run.losses.map((v, k) => [k, v]), color: "#d62728" }],
      { width: 420, height: 240, log: true, xLabel: "step" });
  }

  // ================================================================ state and wiring

  function save() {
    const p = new URLSearchParams();
    p.set("view", "descent");
    p.set("mode", mode);
    if (mode === "2d") {
      p.set("surface", s2.name);
      if (s2.start) p.set("start", s2.start.map((v) => FG.fmt(v, 6)).join(","));
      if (s2.steps) p.set("steps", String(s2.steps));
      const opts = FG.info.optimizers.filter((o) => s2.optimizers[o] && s2.optimizers[o].on)
        .map((o) => `${o}:${FG.fmt(s2.optimizers[o].lr, 6)}`);
      p.set("opt", opts.join(","));
    } else {
      p.set("fn", s1.fn);
      p.set("x0", String(s1.start));
      p.set("steps", String(s1.steps));
      if (s1.lr) p.set("lr", FG.fmt(s1.lr, 6));
    }
    FG.writeState(p);
  }

  function setMode(m) {
    mode = m;
    document.getElementById("descent-2d").hidden = m !== "2d";
    document.getElementById("descent-1d").hidden = m !== "1d";
    document.querySelectorAll("input[name=dmode]").forEach((r) => { r.checked = r.value === m; });
  }

  let wired = false;

  function wire() {
    if (wired) return;
    wired = true;
    const select = d3.select("#surface-select");
    select.append("option").attr("value", "").text("(the formula)");
    Object.entries(FG.info.surfaces).forEach(([name, title]) => select.append("option").attr("value", name).attr("title", title).text(name));
    document.querySelectorAll("input[name=dmode]").forEach((r) => r.addEventListener("change", async () => {
      setMode(r.value);
      if (r.value === "1d" && !s1.curve) await show1d();
      else if (r.value === "2d" && !s2.surface) await show2d();
      save();
    }));
    document.getElementById("surface-select").addEventListener("change", async (ev) => {
      if (!ev.target.value) return; // "(the formula)": type one and press Run
      document.getElementById("surface-formula").value = "";
      await guarded(() => loadSurface(ev.target.value, false));
      runDescent();
    });
    document.getElementById("surface-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const formula = document.getElementById("surface-formula").value.trim();
      const steps = Number(document.getElementById("surface-steps").value);
      const name = formula || document.getElementById("surface-select").value || s2.name;
      document.getElementById("surface-select").value = formula ? "" : name;
      const changed = name !== s2.name;
      if (steps >= 1) s2.steps = Math.round(steps);
      if (changed && !(await guarded(() => loadSurface(name, false)))) return;
      if (steps >= 1) s2.steps = Math.round(steps);
      runDescent();
    });
    document.getElementById("curve-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      s1.fn = document.getElementById("curve-formula").value;
      s1.start = Number(document.getElementById("curve-start").value);
      s1.steps = Math.max(1, Math.round(Number(document.getElementById("curve-steps").value) || 30));
      s1.lr = null;
      await show1d();
    });
    document.getElementById("lr-slider").addEventListener("input", (ev) => {
      s1.lr = Number(ev.target.value);
      if (s1.lr > 0) run1d();
    });
  }

  async function guarded(fn) {
    try {
      await fn();
      FG.showError("descent-error", null);
      return true;
    } catch (err) {
      FG.showError("descent-error", err);
      return false;
    }
  }

  async function show2d() {
    if (await guarded(() => loadSurface(s2.name, true))) await runDescent();
  }

  async function show1d() {
    document.getElementById("curve-formula").value = s1.fn;
    document.getElementById("curve-start").value = s1.start;
    document.getElementById("curve-steps").value = s1.steps;
    if (await guarded(loadCurve)) await run1d();
  }

  FG.views.descent = {
    async show(params) {
      wire();
      const m = params.get("mode") === "1d" ? "1d" : "2d";
      setMode(m);
      if (m === "2d") {
        const name = params.get("surface") || s2.name;
        if (name !== s2.name) {
          // Another surface: its own start, steps and learning rates, unless the URL says.
          s2.start = null;
          s2.steps = null;
          Object.values(s2.optimizers).forEach((o) => { o.lr = null; });
        }
        s2.name = name;
        const builtin = name in FG.info.surfaces;
        document.getElementById("surface-formula").value = builtin ? "" : name;
        document.getElementById("surface-select").value = builtin ? name : "";
        const start = (params.get("start") || "").split(",").map(Number);
        if (start.length === 2 && start.every(Number.isFinite)) s2.start = start;
        const steps = Number(params.get("steps"));
        if (steps >= 1) s2.steps = Math.round(steps);
        const opt = params.get("opt");
        if (opt !== null) {
          FG.info.optimizers.forEach((o) => { s2.optimizers[o] = { on: false, lr: null }; });
          opt.split(",").filter(Boolean).forEach((item) => {
            const [o, lr] = item.split(":");
            if (o in s2.optimizers) s2.optimizers[o] = { on: true, lr: Number(lr) > 0 ? Number(lr) : null };
          });
        }
        await show2d();
      } else {
        if (params.get("fn")) s1.fn = params.get("fn");
        const x0 = Number(params.get("x0"));
        if (params.get("x0") !== null && Number.isFinite(x0)) s1.start = x0;
        const steps = Number(params.get("steps"));
        if (steps >= 1) s1.steps = Math.round(steps);
        const lr = Number(params.get("lr"));
        if (lr > 0) s1.lr = lr;
        await show1d();
      }
    },
  };
})();
