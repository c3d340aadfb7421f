// flowgrad explore: start-up and view switching. The view and its settings live in the URL
// after '#', so a link reproduces what its sender saw.
"use strict";

(function () {
  let current = null;
  let routing = Promise.resolve(); // one route at a time, in the order the URL changed

  async function route() {
    const params = FG.readState();
    const view = ["graph", "descent", "train"].includes(params.get("view")) ? params.get("view") : "graph";
    document.querySelectorAll(".view").forEach((el) => { el.hidden = el.id !== "view-" + view; });
    document.querySelectorAll("#tabs a").forEach((a) => a.classList.toggle("active", a.dataset.view === view));
    current = view;
    await FG.views[view].show(params);
    document.body.dataset.view = view;
  }

  function next() {
    routing = routing.then(route).catch((err) => console.warn("explore:", err));
    return routing;
  }

  async function main() {
    try {
      FG.info = await FG.get("/api/info");
    } catch (err) {
      document.querySelector("main").textContent = "Cannot reach the flowgrad server: " + err.message;
      return;
    }
    document.querySelectorAll("#tabs a").forEach((a) => a.addEventListener("click", (ev) => {
      ev.preventDefault();
      if (a.dataset.view === current) return;
      history.replaceState(null, "", "#view=" + a.dataset.view);
      next();
    }));
    // A link or an edited address: replaceState (the views saving their state) fires no
    // hashchange, so this only follows the user.
    window.addEventListener("hashchange", next);
    await next();
    // From navigation start to the first view drawn with the server's numbers.
    FG.timings.pageLoad = performance.now();
    document.body.dataset.ready = "1";
  }

  main();
})();
