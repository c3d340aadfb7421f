// The Graph view: a formula's dataflow graph with forward values and gradients on its edges,
// and the reverse sweep one node at a time. All numbers come from POST /api/explain (the
// JSON of `flowgrad explain --json`); the layout comes from dagre, computed once per formula,
// so moving a slider only rewrites text.
"use strict";

(function () {
  const DEFAULTS = { formula: "sigmoid(w*x + b)", values: { w: 0.5, x: 2, b: -1 } };
  const SIZE = {
    op: [164, 70], variable: [112, 56], constant: [58, 28], output: [118, 34],
    label: [138, 36],
  };

  const state = {
    formula: null,      // the formula drawn
    variables: [],      // its variable names, sorted (as the server gives them)
    values: {},         // name -> number
    data: null,         // the last /api/explain answer
    signature: null,    // structure of the drawn graph; same signature = update in place
    step: null,         // reverse-sweep step shown (0 = forward only; null = all)
    editedAt: null,     // performance.now() of the slider move being answered
  };
  const els = {};       // drawn elements by key: node id / edge key -> d3 selections

  // ---------------------------------------------------------------- model of the drawing

  function nodeKind(data, name) {
    if (data.nodes.some((n) => n.id === name)) return "op";
    if (name in data.values) return "variable";
    return "constant";
  }

  // The graph as dagre nodes and edges, from the explain JSON (structure only).
  function structure(data) {
    const nodes = [], edges = [];
    Object.keys(data.values).forEach((v) => nodes.push({ key: "v:" + v, kind: "variable", name: v }));
    data.nodes.forEach((n) => {
      nodes.push({ key: n.id, kind: "op", node: n });
      n.inputs.forEach((inp, k) => {
        const position = k + 1, kind = nodeKind(data, inp);
        let from;
        if (kind === "op") from = inp;
        else if (kind === "variable") from = "v:" + inp;
        else {
          from = `c:${n.id}:${position}`;
          nodes.push({ key: from, kind: "constant", text: inp });
        }
        edges.push({ key: `${n.id}:${position}`, from, to: n.id, node: n.id, position, input: inp, kind });
      });
    });
    const out = data.output.id;
    const outFrom = data.nodes.length ? out : (out in data.values ? "v:" + out : null);
    nodes.push({ key: "f", kind: "output" });
    if (outFrom === null) nodes.push({ key: "c:f", kind: "constant", text: FG.fmt(data.output.value) });
    edges.push({ key: "f:0", from: outFrom === null ? "c:f" : outFrom, to: "f", node: "f", position: 0, input: out, kind: "output" });
    return { nodes, edges };
  }

  function signature(data) {
    return JSON.stringify([data.formula, Object.keys(data.values),
      data.nodes.map((n) => [n.id, n.op, n.expr, n.inputs])]);
  }

  // ---------------------------------------------------------------- layout and drawing

  function layout(model) {
    const g = new dagre.graphlib.Graph({ multigraph: true });
    g.setGraph({ rankdir: "LR", nodesep: 22, ranksep: 34, edgesep: 12, marginx: 8, marginy: 8 });
    g.setDefaultEdgeLabel(() => ({}));
    model.nodes.forEach((n) => {
      const [w, h] = SIZE[n.kind];
      g.setNode(n.key, { width: w, height: h });
    });
    model.edges.forEach((e) => {
      const [w, h] = SIZE.label;
      g.setEdge(e.from, e.to, { width: w, height: h, labelpos: "c" }, e.key);
    });
    dagre.layout(g);
    return g;
  }

  function draw(data) {
    const model = structure(data);
    const g = layout(model);
    const svg = d3.select("#graph-svg");
    svg.selectAll("*").remove();
    const W = Math.max(g.graph().width, 300), H = Math.max(g.graph().height, 120);
    // Scale down to the page's width, never up: the text stays readable on small graphs.
    svg.attr("viewBox", `0 0 ${W} ${H}`).attr("width", null).attr("height", null);
    svg.node().style.maxWidth = W + "px";
    svg.append("defs").append("marker").attr("id", "arrow").attr("viewBox", "0 0 10 10")
      .attr("refX", 9).attr("refY", 5).attr("markerWidth", 7).attr("markerHeight", 7)
      .attr("orient", "auto-start-reverse")
      .append("path").attr("d", "M 0 0 L 10 5 L 0 10 z").attr("class", "arrow-head");
    Object.keys(els).forEach((k) => delete els[k]);

    const line = d3.line().x((p) => p.x).y((p) => p.y).curve(d3.curveBasis);
    const edgeLayer = svg.append("g").attr("class", "edges");
    model.edges.forEach((e) => {
      const lay = g.edge({ v: e.from, w: e.to, name: e.key });
      const grp = edgeLayer.append("g").attr("class", "edge").attr("data-edge", e.key);
      grp.append("path").attr("d", line(lay.points)).attr("marker-end", "url(#arrow)");
      const label = grp.append("g").attr("class", "edge-label")
        .attr("transform", `translate(${lay.x},${lay.y})`);
      label.append("rect").attr("x", -SIZE.label[0] / 2).attr("y", -SIZE.label[1] / 2)
        .attr("width", SIZE.label[0]).attr("height", SIZE.label[1]).attr("rx", 4);
      const fwd = label.append("text").attr("class", "fwd").attr("y", -4).attr("text-anchor", "middle");
      const bwd = label.append("text").attr("class", "bwd").attr("y", 12).attr("text-anchor", "middle");
      els[e.key] = { edge: e, group: grp, fwd, bwd };
    });

    const nodeLayer = svg.append("g").attr("class", "nodes");
    model.nodes.forEach((n) => {
      const lay = g.node(n.key);
      const [w, h] = SIZE[n.kind];
      const grp = nodeLayer.append("g").attr("class", "node " + n.kind).attr("data-node", n.key)
        .attr("transform", `translate(${lay.x},${lay.y})`);
      grp.append("rect").attr("x", -w / 2).attr("y", -h / 2).attr("width", w).attr("height", h)
        .attr("rx", n.kind === "variable" ? 14 : 6);
      const lines = [];
      const count = { op: 4, variable: 3, constant: 1, output: 1 }[n.kind];
      for (let i = 0; i < count; i++) {
        lines.push(grp.append("text").attr("text-anchor", "middle")
          .attr("y", (i - (count - 1) / 2) * 15 + 4).attr("class", "line" + i));
      }
      if (n.kind === "op") {
        lines[0].text(`${n.node.id}: ${n.node.op}`).attr("class", "line0 title");
        const expr = n.node.expr.length > 24 ? n.node.expr.slice(0, 23) + "…" : n.node.expr;
        lines[1].text(expr).attr("class", "line1 expr").append("title").text(n.node.expr);
      } else if (n.kind === "variable") {
        lines[0].text(n.name).attr("class", "line0 title");
      } else if (n.kind === "constant") {
        lines[0].text(n.text);
      } else {
        lines[0].text("f").attr("class", "line0 title");
      }
      els["node:" + n.key] = { node: n, group: grp, lines };
    });
  }

  // Write the numbers of `data` into the drawn graph, for reverse-sweep step `step`.
  function update(data) {
    const order = data.backward_order;
    const step = state.step === null ? order.length : state.step;
    const processed = new Set(order.slice(0, step));
    const current = step > 0 ? order[step - 1] : null;
    const byId = Object.fromEntries(data.nodes.map((n) => [n.id, n]));
    const consumers = {};
    data.nodes.forEach((n) => n.inputs.forEach((inp) => {
      (consumers[inp] = consumers[inp] || new Set()).add(n.id);
    }));
    const complete = (name) => step > 0 && [...(consumers[name] || [])].every((c) => processed.has(c));

    Object.values(els).forEach((el) => {
      if (el.edge) {
        const e = el.edge;
        let value;
        if (e.kind === "output") value = data.output.value;
        else if (e.kind === "op") value = byId[e.input].value;
        else if (e.kind === "variable") value = data.values[e.input];
        else value = null;
        el.fwd.text(value === null ? "" : "→ " + FG.fmt(value, 4)).attr("data-value", value);
        let grad = null, text = "";
        if (e.kind === "output") {
          const out = byId[data.output.id];
          grad = out ? out.gradient : (e.input in data.values ? 1 : null);
          if (step > 0 && grad !== null) text = "← " + FG.fmt(grad, 4);
        } else {
          const sent = (byId[e.node].sent || []).find((s) => s.position === e.position);
          if (sent && processed.has(e.node)) {
            grad = sent.sent;
            text = e.node === current && state.step !== null
              ? `← ${FG.fmt(sent.upstream, 3)} × ${FG.fmt(sent.local, 3)} = ${FG.fmt(sent.sent, 4)}`
              : "← " + FG.fmt(sent.sent, 4);
          }
        }
        el.bwd.text(text).attr("data-value", text ? grad : null);
        el.group.classed("current", e.node === current && state.step !== null)
          .classed("done", text !== "");
      } else {
        const n = el.node;
        if (n.kind === "op") {
          const rep = byId[n.key];
          el.lines[2].text("= " + FG.fmt(rep.value, 5)).attr("data-value", rep.value);
          const show = processed.has(n.key);
          el.lines[3].text(show ? "∇ " + FG.fmt(rep.gradient, 5) : "")
            .attr("data-value", show ? rep.gradient : null).attr("class", "line3 grad");
          el.group.classed("current", n.key === current && state.step !== null);
        } else if (n.kind === "variable") {
          el.lines[1].text("= " + FG.fmt(data.values[n.name], 5));
          const g = data.gradients[n.name];
          const show = complete(n.name) || (step > 0 && !consumers[n.name]);
          el.lines[2].text(show && g ? "∇ " + FG.fmt(g.backward, 5) : "")
            .attr("data-value", show && g ? g.backward : null).attr("class", "line2 grad");
        } else if (n.kind === "output") {
          el.lines[0].text("f = " + FG.fmt(data.output.value, 4));
        }
      }
    });
    document.getElementById("output-value").textContent = FG.fmt(data.output.value);
    stepText(data, step, current, byId);
  }

  function stepText(data, step, current, byId) {
    const total = data.backward_order.length;
    const p = FG.lines(document.getElementById("step-text"));
    if (!total) {
      p("The formula has no operation on a variable: nothing to sweep.");
      return;
    }
    if (state.step === null) {
      p(`All ${total} nodes swept. Each edge shows the value sent forward (→) and the gradient backward() sent back (←).`);
      return;
    }
    if (step === 0) {
      p(`Forward pass done: f = ${FG.fmt(data.output.value)}. Press "step backward" to start the reverse sweep at the output with d f/d f = 1.`);
      return;
    }
    const n = byId[current];
    p(`Step ${step} of ${total}: node ${n.id} = ${n.expr} (${n.op})`, "title");
    p(`received d f/d ${n.id} = ${FG.fmt(n.gradient)} from its consumers;`);
    if (!n.sent.length) p("its inputs are constants: it sends nothing back.");
    n.sent.forEach((s) => {
      p(`sends to ${s.input}: upstream × local = ${FG.fmt(s.upstream)} × ${FG.fmt(s.local)} = ${FG.fmt(s.sent)}`, "sent");
    });
    if (step === total) p("That was the last node: every variable's gradient is complete.");
  }

  // ---------------------------------------------------------------- the chain-rule table

  function chainTable(data) {
    const box = d3.select("#chain");
    box.selectAll("*").remove();
    box.append("h2").text("Chain rule: d f / d variable = sum over paths of the product of local derivatives");
    const repeated = new Set();
    data.nodes.forEach((n) => n.inputs.forEach((inp, k) => {
      if (n.inputs.filter((x) => x === inp).length > 1) repeated.add(n.id);
    }));
    Object.entries(data.gradients).forEach(([name, g]) => {
      const block = box.append("div").attr("class", "variable-block").attr("data-variable", name);
      block.append("h3").text(`d f / d ${name}: ${g.num_paths} path${g.num_paths === 1 ? "" : "s"}`);
      const table = block.append("table").attr("class", "paths");
      g.paths.forEach((p) => {
        let chain = p.chain[0] || "";
        for (let k = 1; k < p.chain.length; k++) {
          chain += repeated.has(p.chain[k - 1]) ? ` →(input ${p.via_inputs[k - 1]}) ${p.chain[k]}` : ` → ${p.chain[k]}`;
        }
        const factors = p.factors.length ? p.factors.map((f) => FG.fmt(f)).join(" × ") : "(the output is the variable)";
        const row = table.append("tr").attr("class", "path");
        row.append("td").text(chain);
        row.append("td").text(factors);
        row.append("td").attr("class", "num").text("= " + FG.fmt(p.product));
        row.on("mouseenter", () => highlight(p, true)).on("mouseleave", () => highlight(p, false));
      });
      if (g.paths_listed < g.num_paths) {
        table.append("tr").append("td").attr("colspan", 3)
          .text(`… ${g.num_paths - g.paths_listed} more paths not listed; the sum covers all`);
      }
      const check = data.notes.find((note) => note.startsWith(`d f/d ${name}`));
      const sums = block.append("table").attr("class", "sums");
      [["sum over paths", g.path_sum], ["flowgrad backward()", g.backward],
        [`finite difference (h = ${FG.fmt(g.finite_difference_step, 2)})`, g.finite_difference]]
        .forEach(([label, v]) => {
          const r = sums.append("tr");
          r.append("td").text(label);
          r.append("td").attr("class", "num").attr("data-value", v).text(FG.fmt(v));
        });
      block.append("p").attr("class", check ? "check bad" : "check ok")
        .text(check ? "✗ " + check : "✓ the finite difference agrees with the chain rule");
    });
    data.notes.filter((n) => !n.startsWith("d f/d")).forEach((n) => box.append("p").attr("class", "note").text("note: " + n));
  }

  function highlight(path, on) {
    for (let k = 0; k + 1 < path.chain.length; k++) {
      const el = els[`${path.chain[k]}:${path.via_inputs[k]}`];
      if (el) el.group.classed("highlight", on);
    }
  }

  // ---------------------------------------------------------------- variables panel

  function sliderRange(v) {
    const span = Math.max(5, Math.ceil(Math.abs(v) * 2));
    return [-span, span];
  }

  function buildVariables() {
    const box = d3.select("#variables");
    box.selectAll("*").remove();
    if (!state.variables.length) box.append("p").text("(no variables)");
    state.variables.forEach((name) => {
      const row = box.append("div").attr("class", "variable").attr("data-variable", name);
      row.append("label").attr("for", "slider-" + name).text(name);
      const [lo, hi] = sliderRange(state.values[name]);
      const slider = row.append("input").attr("type", "range").attr("id", "slider-" + name)
        .attr("min", lo).attr("max", hi).attr("step", 0.01).property("value", state.values[name]);
      const num = row.append("input").attr("type", "number").attr("step", "any")
        .attr("id", "value-" + name).property("value", state.values[name]);
      slider.on("input", function () {
        num.property("value", this.value);
        setValue(name, Number(this.value));
      });
      num.on("change", function () {
        const v = Number(this.value);
        if (!Number.isFinite(v)) return;
        const [a, b] = sliderRange(v);
        slider.attr("min", Math.min(a, lo)).attr("max", Math.max(b, hi)).property("value", v);
        setValue(name, v);
      });
    });
  }

  function setValue(name, v) {
    state.values[name] = v;
    state.editedAt = performance.now();
    saveState();
    request();
  }

  // ---------------------------------------------------------------- requests

  const request = FG.latest(async () => {
    const editedAt = state.editedAt;
    try {
      const data = await FG.post("/api/explain", { formula: state.formula, values: state.values });
      FG.showError("graph-error", null);
      show(data);
      if (editedAt !== null) {
        FG.timings.sliderUpdate = performance.now() - editedAt;
        (FG.timings.sliderUpdates = FG.timings.sliderUpdates || []).push(FG.timings.sliderUpdate);
        if (state.editedAt === editedAt) state.editedAt = null;
      }
    } catch (err) {
      FG.showError("graph-error", err);
    }
  });

  function show(data) {
    const sig = signature(data);
    if (sig !== state.signature) {
      draw(data);
      state.signature = sig;
      state.step = null;
    }
    state.data = data;
    update(data);
    chainTable(data);
    document.getElementById("graph-svg").dataset.ready = "1";
  }

  async function setFormula(text, values) {
    let parsed;
    try {
      parsed = await FG.post("/api/parse", { formula: text });
    } catch (err) {
      FG.showError("graph-error", err);
      return;
    }
    FG.showError("graph-error", null);
    state.formula = parsed.formula;
    state.variables = parsed.variables;
    const old = state.values;
    state.values = {};
    parsed.variables.forEach((v) => {
      const given = values && Number.isFinite(values[v]) ? values[v] : old[v];
      state.values[v] = Number.isFinite(given) ? given : 1;
    });
    document.getElementById("formula").value = state.formula;
    buildVariables();
    state.editedAt = null;
    saveState();
    await request();
  }

  function saveState() {
    const p = new URLSearchParams();
    p.set("view", "graph");
    p.set("f", state.formula || "");
    state.variables.forEach((v) => p.set("v." + v, String(state.values[v])));
    FG.writeState(p);
  }

  function stepTo(k) {
    if (!state.data) return;
    const total = state.data.backward_order.length;
    state.step = k === null ? null : Math.max(0, Math.min(total, k));
    update(state.data);
  }

  // ---------------------------------------------------------------- the view

  let wired = false;

  function wire() {
    if (wired) return;
    wired = true;
    document.getElementById("graph-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      setFormula(document.getElementById("formula").value, null);
    });
    const total = () => (state.data ? state.data.backward_order.length : 0);
    const cur = () => (state.step === null ? total() : state.step);
    document.getElementById("step-reset").addEventListener("click", () => stepTo(0));
    document.getElementById("step-back").addEventListener("click", () => stepTo(Math.max(cur() - 1, 0)));
    document.getElementById("step-next").addEventListener("click", () => {
      stepTo(state.step === null ? 1 : Math.min(cur() + 1, total()));
    });
    document.getElementById("step-all").addEventListener("click", () => stepTo(null));
  }

  FG.views.graph = {
    async show(params) {
      wire();
      const formula = params.get("f") || (state.formula ? null : DEFAULTS.formula);
      if (formula === null) {
        saveState();
        return;
      }
      const values = {};
      for (const [k, v] of params.entries()) {
        if (k.startsWith("v.")) values[k.slice(2)] = Number(v);
      }
      await setFormula(formula, params.get("f") ? values : DEFAULTS.values);
    },
  };
})();
