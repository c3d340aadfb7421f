// flowgrad explore: shared helpers. Every number shown comes from the server's JSON; the
// code here only formats and draws it.
"use strict";

const FG = {
  timings: {},      // measured in the browser, read by the tests (page load, slider update)
  views: {},        // name -> {show(state), ...}, filled by graph.js, descent.js, train.js
  info: null,       // GET /api/info
};

// Up to 6 significant digits, like `flowgrad explain`'s tables; non-finite values arrive as
// the strings "inf", "-inf", "nan".
FG.fmt = function (v, digits = 6) {
  if (v === null || v === undefined) return "–";
  if (typeof v === "string") return v;
  if (v === 0) return "0";
  const exponent = Math.floor(Math.log10(Math.abs(v)));
  if (exponent < -4 || exponent >= digits) {
    // Scientific like %g: "6.1e-06" -> "6.1e-06", trailing zeros trimmed.
    const [m, e] = Number(v).toExponential(digits - 1).split("e");
    const n = Math.abs(Number(e));
    return FG.trimZeros(m) + "e" + (e[0] === "-" ? "-" : "+") + (n < 10 ? "0" : "") + n;
  }
  return FG.trimZeros(Number(v).toPrecision(digits));
};



FG.trimZeros = function (s) {
  return s.includes(".") ? s.replace(/0+$/, "").replace(/\.$/, "") : s;
};

FG.pct = function (v) {
  return (100 * v).toFixed(1) + "%";
};

// POST JSON; resolves to the answer, rejects with Error(message) carrying .status.
FG.post = async function (path, body) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  return FG.answer(response);
};

FG.get = async function (path) {
  return FG.answer(await fetch(path));
};

FG.answer = async function (response) {
  let data = null;
  try {
    data = await response.json();
  } catch (e) {
    data = null;
  }
  if (!response.ok) {
    const err = new Error((data && data.error) || `HTTP ${response.status}`);
    err.status = response.status;
    throw err;
  }
  return data;
};

// A function whose calls, while one runs, collapse into a single call after it: a slider
// dragged fast sends its latest value once the server answers, not a queue of stale ones.
// The returned promise settles when this call's (or the collapsed call's) work is done.
FG.latest = function (fn) {
  let running = null, again = false;
  const run = async () => {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      try {
        await fn();
      } finally {
        running = null;
        if (again) {
          again = false;
          run();
        }
      }
    })();
    return running;
  };
  return run;
};

// A function that appends a line of text (a span with an optional class) to element `el`,
// after emptying it.
FG.lines = function (el) {
  el.textContent = "";
  return (text, cls) => {
    const line = document.createElement("span");
    line.textContent = text;
    if (cls) line.className = cls;
    el.appendChild(line);
    el.appendChild(document.createElement("br"));
  };
};

FG.showError = function (id, err) {
  const el = document.getElementById(id);
  if (!err) {
    el.hidden = true;
    el.textContent = "";
    return;
  }
  el.hidden = false;
  el.textContent = err.message || String(err);
};

// ---- URL state: everything after '#', as URLSearchParams (shareable, like TF Playground) ----

FG.readState = function () {
  return new URLSearchParams(location.hash.replace(/^#/, ""));
};

FG.writeState = function (params) {
  const text = "#" + params.toString();
  if (text !== location.hash) history.replaceState(null, "", text);
};

// ---- SVG helpers ----

FG.svg = function (id, width, height) {
  const svg = d3.select("#" + id);
  svg.attr("viewBox", `0 0 ${width} ${height}`).attr("width", width).attr("height", height);
  return svg;
};

// A small line chart: series = [{name, values: [[x, y], ...], cls}], axes labelled.
FG.lineChart = function (id, series, opts = {}) {
  const W = opts.width || 420, H = opts.height || 240;
  const m = { top: 12, right: 12, bottom: 34, left: 56 };
  const svg = FG.svg(id, W, H);
  svg.selectAll("*").remove();
  const all = series.flatMap((s) => s.values.filter((p) => Number.isFinite(p[1])));
  if (!all.length) return svg;
  const x = d3.scaleLinear().domain(opts.xDomain || d3.extent(all, (p) => p[0]))
    .range([m.left, W - m.right]);
  let yDomain = opts.yDomain || d3.extent(all, (p) => p[1]);
  if (yDomain[0] === yDomain[1]) yDomain = [yDomain[0] - 1, yDomain[1] + 1];
  const positive = yDomain[0] > 0;
  const y = (opts.log && positive ? d3.scaleLog() : d3.scaleLinear())
    .domain(yDomain).range([H - m.bottom, m.top]);
  if (!(opts.log && positive)) y.nice();
  svg.append("g").attr("class", "axis").attr("transform", `translate(0,${H - m.bottom})`)
    .call(d3.axisBottom(x).ticks(6));
  svg.append("g").attr("class", "axis").attr("transform", `translate(${m.left},0)`)
    .call(d3.axisLeft(y).ticks(5, opts.log && positive ? "~g" : undefined));
  if (opts.xLabel) {
    svg.append("text").attr("class", "axis-label").attr("x", (m.left + W - m.right) / 2)
      .attr("y", H - 4).attr("text-anchor", "middle").text(opts.xLabel);
  }
  const line = d3.line().defined((p) => Number.isFinite(p[1]) && (!(opts.log && positive) || p[1] > 0))
    .x((p) => x(p[0])).y((p) => y(p[1]));
  series.forEach((s, k) => {
    svg.append("path").attr("class", "series " + (s.cls || "")).attr("d", line(s.values))
      .attr("stroke", s.color || d3.schemeTableau10[k % 10]).attr("fill", "none");
  });
  const legend = svg.append("g").attr("class", "legend");
  series.forEach((s, k) => {
    const top = opts.legendBottom ? H - m.bottom - 8 - 16 * (series.length - k) : m.top + 4 + 16 * k;
    const g = legend.append("g").attr("transform", `translate(${W - m.right - 130},${top})`);
    g.append("rect").attr("width", 12).attr("height", 3).attr("y", 5)
      .attr("fill", s.color || d3.schemeTableau10[k % 10]);
    g.append("text").attr("x", 16).attr("y", 10).text(s.name);
  });
  return svg;
};

window.FG = FG;
