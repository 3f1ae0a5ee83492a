// The collection map: one <canvas>, every object a dot at its layout position (from /api/map),
// coloured by predicted class. Wheel or pinch zooms around the pointer, drag pans, hover shows the
// photo, click opens the object. Picking goes through a grid of buckets, so 50 000 dots stay fast.
(function () {
  "use strict";
  const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
                   "#17becf", "#bcbd22", "#393b79", "#ad494a", "#637939", "#7b4173", "#3182bd"];
  const NONE = "#999999";
  const SCALE = 10000, BUCKETS = 64, PICK_PX = 7, CLICK_SLOP = 4;
  const canvas = document.getElementById("map");
  const tip = document.getElementById("map-tip");
  const ctx = canvas.getContext("2d");
  let data = null, view = { k: 1, x: 0, y: 0 }, fitK = 1, grid = null, hovered = -1;

  const colour = (c) => (c < 0 ? NONE : PALETTE[c % PALETTE.length]);
  const toScreen = (i) => [data.x[i] * view.k + view.x, data.y[i] * view.k + view.y];
  const itemUrl = (id) => "/item?id=" + encodeURIComponent(id);

  function fit() {
    const w = canvas.clientWidth, h = canvas.clientHeight, pad = 24;
    view.k = fitK = Math.min((w - 2 * pad) / SCALE, (h - 2 * pad) / SCALE);
    view.x = (w - SCALE * view.k) / 2;
    view.y = (h - SCALE * view.k) / 2;
  }

  function resize() {
    const dpr = window.devicePixelRatio || 1;
    canvas.width = Math.round(canvas.clientWidth * dpr);
    canvas.height = Math.round(canvas.clientHeight * dpr);
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    draw();
  }

  function draw() {
    if (!data) return;
    ctx.clearRect(0, 0, canvas.clientWidth, canvas.clientHeight);
    // Dots as big as the crowd allows, growing as one zooms in.
    const base = Math.max(2.5, Math.min(7, 60 / Math.sqrt(data.count)));
    const r = Math.min(16, base * Math.sqrt(view.k / fitK));
    // One fillStyle per class: switching colours per dot is what makes canvases slow.
    for (const [code, members] of data.byClass) {
      ctx.fillStyle = colour(code);
      for (const i of members) {
        const [sx, sy] = toScreen(i);
        if (sx < -r || sy < -r || sx > canvas.clientWidth + r || sy > canvas.clientHeight + r) continue;
        ctx.fillRect(sx - r / 2, sy - r / 2, r, r);
      }
    }
    if (hovered >= 0) {
      const [sx, sy] = toScreen(hovered);
      ctx.strokeStyle = "#000";
      ctx.lineWidth = 2;
      ctx.strokeRect(sx - r, sy - r, 2 * r, 2 * r);
    }
  }

  function buildGrid() {
    grid = new Map();
    for (let i = 0; i < data.count; i++) {
      const key = Math.min(BUCKETS - 1, Math.floor(data.x[i] / SCALE * BUCKETS)) * BUCKETS +
                  Math.min(BUCKETS - 1, Math.floor(data.y[i] / SCALE * BUCKETS));
      if (!grid.has(key)) grid.set(key, []);
      grid.get(key).push(i);
    }
  }

  function pick(px, py) {
    // The nearest dot within PICK_PX screen pixels, searching only the buckets around the pointer.
    const dx = (px - view.x) / view.k, dy = (py - view.y) / view.k, reach = PICK_PX / view.k;
    const lo = (v) => Math.max(0, Math.floor((v - reach) / SCALE * BUCKETS));
    const hi = (v) => Math.min(BUCKETS - 1, Math.floor((v + reach) / SCALE * BUCKETS));
    let best = -1, bestD = reach * reach;
    for (let bx = lo(dx); bx <= hi(dx); bx++) {
      for (let by = lo(dy); by <= hi(dy); by++) {
        for (const i of grid.get(bx * BUCKETS + by) || []) {
          const d = (data.x[i] - dx) ** 2 + (data.y[i] - dy) ** 2;
          if (d <= bestD) { best = i; bestD = d; }
        }
      }
    }
    return best;
  }

  function showTip(i, px, py) {
    if (i < 0) { tip.hidden = true; return; }
    const name = data.c[i] >= 0 ? `${data.classes[data.c[i]]} ${data.p[i]} %` : "not classified";
    tip.querySelector("img").src = "/images/" + data.images[i];
    tip.querySelector("span").textContent = `${data.ids[i]} · ${name}`;
    tip.style.left = Math.min(px + 12, canvas.clientWidth - 190) + "px";
    tip.style.top = Math.min(py + 12, canvas.clientHeight - 160) + "px";
    tip.hidden = false;
  }

  function legend() {
    const list = document.getElementById("map-legend");
    const counts = new Map(data.byClass.map(([code, members]) => [code, members.length]));
    list.replaceChildren(...[...counts.keys()].sort((a, b) => counts.get(b) - counts.get(a)).map((code) => {
      const li = document.createElement("li"), dot = document.createElement("i");
      dot.style.background = colour(code);
      li.append(dot, `${code < 0 ? "not classified" : data.classes[code]} (${counts.get(code)})`);
      return li;
    }));
    document.getElementById("map-count").textContent = `${data.count} objects · ${data.method}`;
  }

  const pointer = (e) => { const b = canvas.getBoundingClientRect(); return [e.clientX - b.left, e.clientY - b.top]; };
  let drag = null;

  canvas.addEventListener("wheel", (e) => {
    e.preventDefault();
    const [px, py] = pointer(e), f = Math.exp(-e.deltaY * 0.0015);
    view.x = px - (px - view.x) * f;
    view.y = py - (py - view.y) * f;
    view.k *= f;
    draw();
  }, { passive: false });
  canvas.addEventListener("pointerdown", (e) => {
    const [px, py] = pointer(e);
    drag = { px, py, x: view.x, y: view.y, moved: false };
    canvas.setPointerCapture(e.pointerId);
  });
  canvas.addEventListener("pointermove", (e) => {
    const [px, py] = pointer(e);
    if (drag) {
      drag.moved = drag.moved || Math.hypot(px - drag.px, py - drag.py) > CLICK_SLOP;
      if (drag.moved) {
        canvas.classList.add("dragging");
        view.x = drag.x + px - drag.px;
        view.y = drag.y + py - drag.py;
        tip.hidden = true;
        draw();
        return;
      }
    }
    const i = data ? pick(px, py) : -1;
    if (i !== hovered) { hovered = i; draw(); }
    showTip(i, px, py);
  });
  canvas.addEventListener("pointerup", (e) => {
    const [px, py] = pointer(e), wasDrag = drag && drag.moved;
    drag = null;
    canvas.classList.remove("dragging");
    if (!wasDrag && data) {
      const i = pick(px, py);
      if (i >= 0) window.location.href = itemUrl(data.ids[i]);
    }
  });
  canvas.addEventListener("dblclick", () => { fit(); draw(); });
  window.addEventListener("resize", resize);

  fetch("/api/map").then((r) => (r.ok ? r.json() : Promise.reject(r.statusText))).then((d) => {
    const groups = new Map();
    d.c.forEach((code, i) => { if (!groups.has(code)) groups.set(code, []); groups.get(code).push(i); });
    data = { ...d, byClass: [...groups.entries()] };
    buildGrid();
    legend();
    fit();
    resize();
    // For tests and curious visitors: where a dot is on the screen.
    window.museMap = { data, toScreen, ready: true };
  }).catch((why) => {
    document.getElementById("map-count").textContent = "the map could not be loaded: " + why;
  });
})();
