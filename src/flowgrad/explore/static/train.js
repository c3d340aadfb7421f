// The Train view: the reference network (or the CNN, where flowgrad offers it) trains on
// the embedded 8x8 digits in a server-side process; loss and accuracy arrive per epoch
// over a server-sent event stream; the confusion matrix comes at the end; a drawing on the
// canvas goes to /api/predict, which preprocesses it as `flowgrad predict` does.
"use strict";

(function () {
  let source = null;      // the EventSource of the running job
  let lastRun = null;
  let drawing = false;
  let dirty = false;      // the canvas changed since the last prediction
  let predicting = false;
  let started = null;     // performance.now() when the run started, for the timings

  const FIELDS = [
    ["model", "train-model", String], ["epochs", "train-epochs", Number], ["hidden", "train-hidden", Number],
    ["batch_size", "train-batch", Number], ["optimizer", "train-optimizer", String],
    ["lr", "train-lr", Number], ["seed", "train-seed", Number],
  ];

  function settings() {
    const body = {};
    FIELDS.forEach(([key, id, cast]) => {
      const raw = document.getElementById(id).value;
      if (raw === "") return;
      body[key] = cast(raw);
    });
    return body;
  }

  function save() {
    const p = new URLSearchParams();
    p.set("view", "train");
    Object.entries(settings()).forEach(([k, v]) => p.set(k, String(v)));
    FG.writeState(p);
  }

  async function start(ev) {
    ev.preventDefault();
    save();
    FG.showError("train-error", null);
    try {
      const answer = await FG.post("/api/train", settings());
      started = performance.now();
      listen(answer.run);
    } catch (err) {
      FG.showError("train-error", err);
    }
  }

  async function stop() {
    try {
      await FG.post("/api/train/stop", {});
    } catch (err) {
      FG.showError("train-error", err);
    }
  }

  function listen(run) {
    if (source) source.close();
    lastRun = run;
    source = new EventSource("/api/train/events");
    source.addEventListener("status", (ev) => {
      const status = JSON.parse(ev.data);
      render(status);
      if (!["running", "stopping"].includes(status.state)) {
        source.close();
        source = null;
      }
    });
    source.onerror = () => {
      // The server closes the stream when the run ends; the browser would reconnect.
      if (source && source.readyState === EventSource.CLOSED) source = null;
    };
  }

  function render(status) {
    const running = ["running", "stopping"].includes(status.state);
    document.getElementById("train-start").disabled = running;
    document.getElementById("train-stop").disabled = status.state !== "running";
    const epochs = status.epochs;
    const total = status.config ? status.config.epochs : 0;
    const line = document.getElementById("train-status");
    const last = epochs[epochs.length - 1];
    const model = status.config && status.config.model ? status.config.model : "mlp";
    let text = {
      idle: "No run yet.",
      running: `training ${model}: epoch ${epochs.length}/${total}`,
      stopping: `stopping after epoch ${epochs.length + 1}…`,
      done: `${model}: done, ${epochs.length} epochs`,
      stopped: `${model}: stopped after ${epochs.length} of ${total} epochs`,
      failed: "failed: " + (status.error || ""),
    }[status.state] || status.state;
    if (last) text += ` · train loss ${FG.fmt(last.train_loss, 4)} · test accuracy ${FG.pct(last.test_accuracy)} · ${FG.fmt(last.seconds, 3)} s/epoch`;
    line.textContent = text;
    line.dataset.state = status.state;
    if (status.state === "failed") FG.showError("train-error", new Error(status.error));
    if (last) {
      const acc = document.getElementById("train-accuracy");
      acc.textContent = "test accuracy " + FG.pct(last.test_accuracy);
      acc.dataset.value = last.test_accuracy;
      if (started !== null && FG.timings.firstEpoch === undefined) FG.timings.firstEpoch = performance.now() - started;
    }
    const xs = { xDomain: [1, Math.max(total, 2)], xLabel: "epoch", width: 360, height: 230 };
    FG.lineChart("train-loss-svg", [
      { name: "train loss", values: epochs.map((e) => [e.epoch, e.train_loss]), color: "#1f77b4" },
      { name: "test loss", values: epochs.map((e) => [e.epoch, e.test_loss]), color: "#ff7f0e" },
    ], { ...xs, log: true });
    FG.lineChart("train-acc-svg", [
      { name: "train acc", values: epochs.map((e) => [e.epoch, e.train_accuracy]), color: "#1f77b4" },
      { name: "test acc", values: epochs.map((e) => [e.epoch, e.test_accuracy]), color: "#ff7f0e" },
    ], { ...xs, yDomain: [0, 1], legendBottom: true });
    if (status.result) confusion(status.result);
    else d3.select("#confusion-svg").selectAll("*").remove();
  }

  function confusion(result) {
    const n = result.classes.length, cell = 26, m = 30;
    const svg = FG.svg("confusion-svg", m + n * cell + 4, m + n * cell + 4);
    svg.selectAll("*").remove();
    const max = d3.max(result.confusion.flat());
    const color = d3.scaleSequential(d3.interpolateBlues).domain([0, max || 1]);
    svg.append("text").attr("x", m + (n * cell) / 2).attr("y", 10).attr("text-anchor", "middle").attr("class", "axis-label").text("predicted");
    svg.append("text").attr("x", 4).attr("y", m - 4).attr("class", "axis-label").text("true");
    result.classes.forEach((c, k) => {
      svg.append("text").attr("x", m + k * cell + cell / 2).attr("y", m - 6).attr("text-anchor", "middle").text(c);
      svg.append("text").attr("x", m - 8).attr("y", m + k * cell + cell / 2 + 4).attr("text-anchor", "end").text(c);
    });
    result.confusion.forEach((row, i) => row.forEach((count, j) => {
      svg.append("rect").attr("x", m + j * cell).attr("y", m + i * cell).attr("width", cell - 1).attr("height", cell - 1)
        .attr("fill", color(count)).attr("class", i === j ? "diag" : "");
      if (count) {
        svg.append("text").attr("x", m + j * cell + cell / 2).attr("y", m + i * cell + cell / 2 + 4)
          .attr("text-anchor", "middle").attr("class", count > max / 2 ? "cell light" : "cell").text(count);
      }
    }));
    svg.node().dataset.total = String(d3.sum(result.confusion.flat()));
  }

  // ---------------------------------------------------------------- drawing and predicting

  function setupCanvas() {
    const canvas = document.getElementById("draw-canvas");
    const ctx = canvas.getContext("2d");
    const clear = () => {
      ctx.fillStyle = "#ffffff";
      ctx.fillRect(0, 0, canvas.width, canvas.height);
      dirty = false;
    };
    clear();
    ctx.lineWidth = 18;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.strokeStyle = "#000000";
    const at = (ev) => {
      const r = canvas.getBoundingClientRect();
      return [(ev.clientX - r.left) * (canvas.width / r.width), (ev.clientY - r.top) * (canvas.height / r.height)];
    };
    canvas.addEventListener("pointerdown", (ev) => {
      drawing = true;
      canvas.setPointerCapture(ev.pointerId);
      const [x, y] = at(ev);
      ctx.beginPath();
      ctx.moveTo(x, y);
      ctx.lineTo(x + 0.1, y + 0.1);
      ctx.stroke();
      dirty = true;
    });
    canvas.addEventListener("pointermove", (ev) => {
      if (!drawing) return;
      const [x, y] = at(ev);
      ctx.lineTo(x, y);
      ctx.stroke();
      dirty = true;
    });
    const end = () => {
      if (!drawing) return;
      drawing = false;
      predict();
    };
    canvas.addEventListener("pointerup", end);
    canvas.addEventListener("pointercancel", end);
    document.getElementById("draw-clear").addEventListener("click", () => {
      clear();
      document.getElementById("prediction").textContent = "–";
      d3.select("#prob-svg").selectAll("*").remove();
      d3.select("#input-svg").selectAll("*").remove();
    });
  }

  async function predict() {
    if (predicting || !dirty) return;
    predicting = true;
    const image = document.getElementById("draw-canvas").toDataURL("image/png");
    dirty = false;
    try {
      const p = await FG.post("/api/predict", { image });
      FG.showError("train-error", null);
      showPrediction(p);
    } catch (err) {
      const el = document.getElementById("prediction");
      el.textContent = err.message;
      el.dataset.error = "1";
    } finally {
      predicting = false;
      if (dirty) predict();
    }
  }

  function showPrediction(p) {
    const el = document.getElementById("prediction");
    el.textContent = `${p.name}  (p = ${FG.fmt(p.probability, 3)})`;
    el.dataset.class = p.class;
    delete el.dataset.error;
    const names = Object.keys(p.probabilities);
    const W = 300, H = 150, m = 20;
    const svg = FG.svg("prob-svg", W, H);
    svg.selectAll("*").remove();
    const x = d3.scaleBand().domain(names).range([m, W - 4]).padding(0.15);
    const y = d3.scaleLinear().domain([0, 1]).range([H - m, 6]);
    names.forEach((c) => {
      svg.append("rect").attr("x", x(c)).attr("width", x.bandwidth()).attr("y", y(p.probabilities[c]))
        .attr("height", y(0) - y(p.probabilities[c])).attr("class", c === p.name ? "bar top" : "bar");
    });
    svg.append("g").attr("class", "axis").attr("transform", `translate(0,${H - m})`).call(d3.axisBottom(x));
    const img = p.input, side = 12;
    const thumb = FG.svg("input-svg", img[0].length * side, img.length * side);
    thumb.selectAll("*").remove();
    img.forEach((row, i) => row.forEach((v, j) => {
      thumb.append("rect").attr("x", j * side).attr("y", i * side).attr("width", side).attr("height", side)
        .attr("fill", d3.interpolateGreys(v));
    }));
  }

  // ---------------------------------------------------------------- the view

  let wired = false;

  async function wire(params) {
    if (wired) return;
    wired = true;
    const models = d3.select("#train-model");
    FG.info.models.forEach((m) => models.append("option").attr("value", m).text(m));
    const opts = d3.select("#train-optimizer");
    FG.info.optimizers.forEach((o) => opts.append("option").attr("value", o).text(o));
    document.getElementById("train-form").addEventListener("submit", start);
    document.getElementById("train-stop").addEventListener("click", stop);
    setupCanvas();
    const status = await FG.get("/api/train");
    render(status);
    if (["running", "stopping"].includes(status.state)) listen(status.run);
  }

  FG.views.train = {
    async show(params) {
      FIELDS.forEach(([key, id]) => {
        const v = params.get(key);
        if (v !== null) document.getElementById(id).value = v;
      });
      await wire(params);
      save();
    },
  };
})();
