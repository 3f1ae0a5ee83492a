// The collection map: one <canvas>, every object a dot at its layout position (from /api/map),
// coloured by predicted class; zoomed in far enough, the dots become the objects' photos.
// Wheel or pinch zooms around the pointer, drag pans, hover shows object number, title and photo,
// click opens the object; the legend hides and shows classes and review states; shift-drag draws a
// box whose objects open as a review list or download as CSV. Picking goes through a grid of
// buckets and drawing is one pass per class per animation frame, so 200 000 dots stay usable.
(function () {
  "use strict";
  const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
                   "#17becf", "#bcbd22", "#393b79", "#ad494a", "#637939", "#7b4173", "#3182bd"];
  const NONE = "#999999";
  const SCALE = 10000, BUCKETS = 128, PICK_PX = 7, CLICK_SLOP = 4;
  const PHOTOS_BELOW = 400; // objects on screen under which dots become photos
  const PHOTO_CACHE = 800; // decoded photos kept (least recently drawn dropped)
  const canvas = document.getElementById("map");
  const tip = document.getElementById("map-tip");
  const panel = document.getElementById("map-selection");
  const ctx = canvas.getContext("2d");
  let data = null, view = { k: 1, x: 0, y: 0 }, fitK = 1, grid = null, hovered = -1;
  let hiddenClasses = new Set(), hiddenReview = new Set(), shown = null, box = null, selected = [];
  let pending = false;
  const photos = new Map(); // image id -> HTMLImageElement (in drawing order: a Map keeps insertion order)
  const titles = new Map(); // item id -> title, fetched on hover
  const frames = []; // the last drawing times, ms (window.museMap.frames: for the benchmark)

  const colour = (c) => (c < 0 ? NONE : PALETTE[c % PALETTE.length]);
  const toScreen = (i) => [data.x[i] * view.k + view.x, data.y[i] * view.k + view.y];
  const itemUrl = (id) => "/item?id=" + encodeURIComponent(id);
  const reviewState = (i) => (data.decided[i] === null ? "not reviewed" : "reviewed");

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

  // Drawing is asked for often (every pointer move) and done at most once per frame.
  function redraw() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; draw(); });
  }

  function visible(i) {
    return !hiddenClasses.has(data.c[i]) && !hiddenReview.has(reviewState(i));
  }

  function filter() {
    // The shown objects per class, recomputed only when the legend changes.
    shown = data.byClass.filter(([code]) => !hiddenClasses.has(code))
      .map(([code, members]) => [code, hiddenReview.size ? members.filter(visible) : members]); // typed: filter keeps the type
  }

  function onScreen(sx, sy, m) {
    return sx >= -m && sy >= -m && sx <= canvas.clientWidth + m && sy <= canvas.clientHeight + m;
  }

  let pixels = null, words = null; // the dots' pixel buffer, reused while the canvas keeps its size
  const packed = (hex) => { // "#rrggbb" as one little-endian RGBA word
    const v = parseInt(hex.slice(1), 16);
    return (0xff000000 | ((v & 0xff) << 16) | (v & 0xff00) | (v >> 16)) >>> 0;
  };

  function draw() {
    if (!data) return;
    const start = performance.now();
    const dpr = window.devicePixelRatio || 1;
    // Dots as big as the crowd allows, growing as one zooms in.
    const base = Math.max(2.5, Math.min(7, 60 / Math.sqrt(data.count)));
    const r = Math.min(16, base * Math.sqrt(view.k / fitK));
    // The dots are written straight into a pixel buffer: hundreds of thousands of fillRect
    // calls cost a software canvas (no GPU) a third of a second; one buffer a few milliseconds.
    const W = canvas.width, H = canvas.height;
    if (!pixels || pixels.width !== W || pixels.height !== H) {
      pixels = ctx.createImageData(W, H);
      words = new Uint32Array(pixels.data.buffer);
    }
    words.fill(0);
    const side = Math.max(1, Math.round(r * dpr)), half = side >> 1;
    const kx = view.k * dpr, ox = view.x * dpr, oy = view.y * dpr;
    const inView = [];
    for (const [code, members] of shown) {
      const colourWord = packed(colour(code));
      for (let m = 0; m < members.length; m++) {
        const i = members[m];
        const px = Math.round(data.x[i] * kx + ox) - half, py = Math.round(data.y[i] * kx + oy) - half;
        if (px >= W || py >= H || px + side <= 0 || py + side <= 0) continue;
        const x0 = px < 0 ? 0 : px, x1 = px + side > W ? W : px + side;
        const y1 = py + side > H ? H : py + side;
        for (let y = py < 0 ? 0 : py; y < y1; y++) {
          const row = y * W;
          for (let x = x0; x < x1; x++) words[row + x] = colourWord;
        }
        if (inView.length <= PHOTOS_BELOW) inView.push(i);
      }
    }
    ctx.putImageData(pixels, 0, 0);
    if (inView.length <= PHOTOS_BELOW) drawPhotos(inView);
    for (const i of data.decidedIdx) { // a ring around decided objects, so review progress shows
      if (!visible(i)) continue;
      const [sx, sy] = toScreen(i);
      if (!onScreen(sx, sy, r)) continue;
      ctx.strokeStyle = "#2e6b1d";
      ctx.lineWidth = 1.5;
      ctx.strokeRect(sx - r / 2 - 1.5, sy - r / 2 - 1.5, r + 3, r + 3);
    }
    if (hovered >= 0) {
      const [sx, sy] = toScreen(hovered);
      ctx.strokeStyle = "#000";
      ctx.lineWidth = 2;
      ctx.strokeRect(sx - r, sy - r, 2 * r, 2 * r);
    }
    if (box) {
      ctx.strokeStyle = "#b5542c";
      ctx.setLineDash([6, 4]);
      ctx.lineWidth = 1.5;
      ctx.strokeRect(box.x0, box.y0, box.x1 - box.x0, box.y1 - box.y0);
      ctx.setLineDash([]);
    }
    frames.push(performance.now() - start);
    if (frames.length > 240) frames.shift();
  }

  function drawPhotos(members) {
    // Few objects on screen: each drawn as its photo (the small working copy), its class as a frame.
    const side = Math.max(24, Math.min(160, 40 * Math.sqrt(view.k / fitK / 8)));
    for (const i of members) {
      const [sx, sy] = toScreen(i);
      const img = photo(data.images[i]);
      ctx.fillStyle = colour(data.c[i]);
      ctx.fillRect(sx - side / 2 - 2, sy - side / 2 - 2, side + 4, side + 4);
      if (img.complete && img.naturalWidth) {
        const s = side / Math.max(img.naturalWidth, img.naturalHeight);
        const pw = img.naturalWidth * s, ph = img.naturalHeight * s;
        ctx.fillStyle = "#f0ede8";
        ctx.fillRect(sx - side / 2, sy - side / 2, side, side);
        ctx.drawImage(img, sx - pw / 2, sy - ph / 2, pw, ph);
      }
    }
  }

  function photo(imageId) {
    let img = photos.get(imageId);
    if (img) {
      photos.delete(imageId); // most recently used last
    } else {
      img = new Image();
      img.onload = redraw;
      img.src = "/images/" + imageId;
      while (photos.size >= PHOTO_CACHE) photos.delete(photos.keys().next().value);
    }
    photos.set(imageId, img);
    return img;
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
    // The nearest shown dot within PICK_PX screen pixels, searching only the buckets around the pointer.
    const dx = (px - view.x) / view.k, dy = (py - view.y) / view.k, reach = PICK_PX / view.k;
    const lo = (v) => Math.max(0, Math.floor((v - reach) / SCALE * BUCKETS));
    const hi = (v) => Math.min(BUCKETS - 1, Math.floor((v + reach) / SCALE * BUCKETS));
    let best = -1, bestD = reach * reach;
    for (let bx = lo(dx); bx <= hi(dx); bx++) {
      for (let by = lo(dy); by <= hi(dy); by++) {
        for (const i of grid.get(bx * BUCKETS + by) || []) {
          const d = (data.x[i] - dx) ** 2 + (data.y[i] - dy) ** 2;
          if (d <= bestD && visible(i)) { best = i; bestD = d; }
        }
      }
    }
    return best;
  }

  function hideTip() { tip.hidden = true; }

  function showTip(i, px, py) {
    if (i < 0) { hideTip(); return; }
    const id = data.ids[i];
    const name = data.c[i] >= 0 ? `${data.classes[data.c[i]]} ${data.p[i]} %` : "not classified";
    tip.querySelector("img").src = "/images/" + data.images[i];
    tip.querySelector(".number").textContent = id;
    tip.querySelector(".title").textContent = titles.get(id) || "";
    tip.querySelector(".classes").textContent = name + (data.decided[i] !== null ? ` · decided: ${data.decided[i]}` : "");
    tip.style.left = Math.min(px + 12, canvas.clientWidth - 200) + "px";
    tip.style.top = Math.min(py + 12, canvas.clientHeight - 190) + "px";
    tip.hidden = false;
    if (!titles.has(id)) {
      titles.set(id, "");
      fetch("/api/items/" + encodeURIComponent(id)).then((r) => (r.ok ? r.json() : null)).then((item) => {
        if (!item) return;
        titles.set(id, item.title || "");
        if (!tip.hidden && tip.querySelector(".number").textContent === id) tip.querySelector(".title").textContent = item.title || "";
      });
    }
  }

  function legendEntry(label, count, swatch, hidden, toggle) {
    const li = document.createElement("li"), button = document.createElement("button"), dot = document.createElement("i");
    button.type = "button";
    button.setAttribute("aria-pressed", hidden ? "false" : "true");
    button.title = hidden ? "show these" : "hide these";
    if (swatch) dot.style.background = swatch; else dot.className = "ring";
    button.append(dot, `${label} (${count})`);
    button.classList.toggle("off", hidden);
    button.addEventListener("click", () => { toggle(); filter(); legend(); hideTip(); redraw(); });
    li.append(button);
    return li;
  }

  function flip(set, key) { if (set.has(key)) set.delete(key); else set.add(key); }

  function legend() {
    const list = document.getElementById("map-legend");
    const counts = new Map(data.byClass.map(([code, members]) => [code, members.length]));
    const classes = [...counts.keys()].sort((a, b) => counts.get(b) - counts.get(a)).map((code) =>
      legendEntry(code < 0 ? "not classified" : data.classes[code], counts.get(code), colour(code),
                  hiddenClasses.has(code), () => flip(hiddenClasses, code)));
    const reviewed = data.decidedIdx.length;
    const heading = (text) => { const li = document.createElement("li"); li.className = "heading"; li.textContent = text; return li; };
    list.replaceChildren(heading("Predicted class"), ...classes, heading("Review"),
      legendEntry("reviewed", reviewed, null, hiddenReview.has("reviewed"), () => flip(hiddenReview, "reviewed")),
      legendEntry("not reviewed", data.count - reviewed, "#ffffff", hiddenReview.has("not reviewed"),
                  () => flip(hiddenReview, "not reviewed")));
    const showing = shown.reduce((n, [, members]) => n + members.length, 0);
    document.getElementById("map-count").textContent =
      `${data.count} objects` + (showing < data.count ? ` · ${showing} shown` : "") + ` · ${data.method}`;
  }

  function select(b) {
    // The shown objects inside the box (screen coordinates), through the grid's buckets.
    const x0 = (Math.min(b.x0, b.x1) - view.x) / view.k, x1 = (Math.max(b.x0, b.x1) - view.x) / view.k;
    const y0 = (Math.min(b.y0, b.y1) - view.y) / view.k, y1 = (Math.max(b.y0, b.y1) - view.y) / view.k;
    const cell = (v) => Math.max(0, Math.min(BUCKETS - 1, Math.floor(v / SCALE * BUCKETS)));
    const out = [];
    for (let bx = cell(x0); bx <= cell(x1); bx++) {
      for (let by = cell(y0); by <= cell(y1); by++) {
        for (const i of grid.get(bx * BUCKETS + by) || []) {
          if (data.x[i] >= x0 && data.x[i] <= x1 && data.y[i] >= y0 && data.y[i] <= y1 && visible(i)) out.push(i);
        }
      }
    }
    return out;
  }

  function showSelection() {
    panel.hidden = selected.length === 0;
    panel.querySelector(".count").textContent = `${selected.length} objects selected`;
    const ids = selected.map((i) => data.ids[i]).join("\n");
    panel.querySelectorAll("input[name=ids]").forEach((input) => { input.value = ids; });
  }

  const pointer = (e) => { const b = canvas.getBoundingClientRect(); return [e.clientX - b.left, e.clientY - b.top]; };
  let drag = null;

  canvas.addEventListener("wheel", (e) => {
    e.preventDefault();
    hideTip(); // the box would point at whatever moved under it
    const [px, py] = pointer(e), f = Math.exp(-e.deltaY * 0.0015);
    view.x = px - (px - view.x) * f;
    view.y = py - (py - view.y) * f;
    view.k *= f;
    redraw();
  }, { passive: false });
  canvas.addEventListener("pointerdown", (e) => {
    const [px, py] = pointer(e);
    drag = { px, py, x: view.x, y: view.y, moved: false, boxing: e.shiftKey };
    canvas.setPointerCapture(e.pointerId);
  });
  canvas.addEventListener("pointermove", (e) => {
    const [px, py] = pointer(e);
    if (drag) {
      drag.moved = drag.moved || Math.hypot(px - drag.px, py - drag.py) > CLICK_SLOP;
      if (drag.moved) {
        hideTip();
        if (drag.boxing) {
          box = { x0: drag.px, y0: drag.py, x1: px, y1: py };
        } else {
          canvas.classList.add("dragging");
          view.x = drag.x + px - drag.px;
          view.y = drag.y + py - drag.py;
        }
        redraw();
        return;
      }
    }
    const i = data ? pick(px, py) : -1;
    if (i !== hovered) { hovered = i; redraw(); }
    showTip(i, px, py);
  });
  canvas.addEventListener("pointerup", (e) => {
    const [px, py] = pointer(e), wasDrag = drag && drag.moved, boxing = drag && drag.boxing;
    drag = null;
    canvas.classList.remove("dragging");
    if (wasDrag && boxing && box) {
      selected = select(box);
      box = null;
      showSelection();
      redraw();
      return;
    }
    if (!wasDrag && data) {
      const i = pick(px, py);
      if (i >= 0) window.location.href = itemUrl(data.ids[i]);
    }
  });
  canvas.addEventListener("pointerleave", hideTip);
  canvas.addEventListener("dblclick", () => { fit(); redraw(); });
  panel.querySelector(".clear").addEventListener("click", () => { selected = []; showSelection(); });
  window.addEventListener("resize", resize);

  Promise.all([
    fetch("/api/map").then((r) => (r.ok ? r.json() : Promise.reject(r.statusText))),
    fetch("/api/map/decisions").then((r) => (r.ok ? r.json() : { decisions: {} })),
  ]).then(([d, review]) => {
    const groups = new Map();
    d.c.forEach((code, i) => { if (!groups.has(code)) groups.set(code, []); groups.get(code).push(i); });
    d.x = Float32Array.from(d.x); // typed arrays: the drawing loop reads them 200,000 times a frame
    d.y = Float32Array.from(d.y);
    const decided = d.ids.map((id) => (id in review.decisions ? review.decisions[id] : null));
    data = { ...d, byClass: [...groups.entries()].map(([code, members]) => [code, Int32Array.from(members)]), decided,
             decidedIdx: decided.flatMap((v, i) => (v === null ? [] : [i])) };
    buildGrid();
    filter();
    legend();
    fit();
    resize();
    // For tests, the benchmark and curious visitors: where a dot is on the screen, the frame times,
    // and a way to zoom without a wheel.
    window.museMap = {
      data, toScreen, frames, ready: true,
      zoom(f, px = canvas.clientWidth / 2, py = canvas.clientHeight / 2) {
        view.x = px - (px - view.x) * f; view.y = py - (py - view.y) * f; view.k *= f; draw();
      },
      draw,
      reset() { fit(); draw(); },
    };
  }).catch((why) => {
    document.getElementById("map-count").textContent = "the map could not be loaded: " + why;
  });
})();
