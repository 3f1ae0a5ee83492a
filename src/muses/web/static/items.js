// The facets of a search matching very many records, counted after its page was shown: the
// sidebar is taken from the same page with the counts in it (?facets=1), so it is the markup
// items.html makes. On any failure the "show the counts" link stays.
const waiting = document.querySelector("aside.facets[data-counted]");
if (waiting) {
  fetch(waiting.dataset.counted, { headers: { Accept: "text/html" } })
    .then((r) => (r.ok ? r.text() : Promise.reject(new Error(r.statusText))))
    .then((html) => {
      const counted = new DOMParser().parseFromString(html, "text/html").querySelector("aside.facets:not([data-counted])");
      if (counted) waiting.replaceWith(document.importNode(counted, true));
    })
    .catch(() => {});
}
