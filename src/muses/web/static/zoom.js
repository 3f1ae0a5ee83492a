// Click-to-zoom for photos marked .zoomable: the display copy fills the window, at most at its
// own size; a click, Escape or the close button shuts it. A static file: the CSP forbids inline script.
(() => {
  let overlay = null;

  function close() {
    if (!overlay) return;
    overlay.remove();
    overlay = null;
  }

  function open(img) {
    close();
    overlay = document.createElement("div");
    overlay.className = "zoom-overlay";
    overlay.setAttribute("role", "dialog");
    overlay.setAttribute("aria-label", img.alt || "photo");
    const big = document.createElement("img");
    big.src = img.currentSrc || img.src;
    big.alt = img.alt;
    const shut = document.createElement("button");
    shut.type = "button";
    shut.className = "zoom-close";
    shut.textContent = "Close ✕";
    overlay.append(big, shut);
    overlay.addEventListener("click", close);
    document.body.append(overlay);
    shut.focus();
  }

  document.addEventListener("click", (event) => {
    const img = event.target.closest && event.target.closest("img.zoomable");
    if (img) { event.preventDefault(); open(img); }
  });
  // capture: Escape closes the photo before the review page's keys see it
  document.addEventListener("keydown", (event) => {
    if (overlay && (event.key === "Escape" || event.key === "z")) { event.stopPropagation(); close(); }
  }, true);
  document.addEventListener("keydown", (event) => {
    if (event.key === "z" && !event.ctrlKey && !event.metaKey && !overlay && !event.target.matches("input, textarea, select")) {
      const current = document.querySelector(".review-card.current img.zoomable");
      if (current) open(current);
    }
  });
})();
