// The review page: one card at a time, decided with buttons or keys; undo; a progress count.
// The page works from the server's data attributes only (no inline script: the CSP forbids it).
// Undo takes back this visit's steps first, then (after a reload) asks the server for the
// reviewer's last decision: the server, not the page, remembers what was decided.
(() => {
  const box = document.getElementById("cards");
  if (!box) return;
  const cards = [...box.querySelectorAll(".review-card")];
  const progress = document.getElementById("progress");
  const message = document.getElementById("message");
  const reviewer = document.getElementById("reviewer");
  const total = Number(progress.dataset.total);
  let decided = Number(progress.dataset.decided);
  let skipped = 0;
  let current = 0;
  let busy = false; // one decision at a time: fast typing must not decide a card twice
  let confirmation = ""; // the last decision's words, kept when the page runs out of cards
  const history = []; // {index, decision (id) | null for a skip}

  reviewer.value = reviewer.value || localStorage.getItem("muses-reviewer") || "";
  reviewer.addEventListener("change", () => localStorage.setItem("muses-reviewer", reviewer.value.trim()));

  const say = (text, bad = false) => { message.textContent = text; message.classList.toggle("error", bad); };

  function render() {
    const left = cards.filter((c) => !c.classList.contains("decided")).length;
    progress.textContent = `${decided} of ${total} decided` + (skipped ? ` · ${skipped} skipped` : "") +
      ` · ${left} left on this page`;
    cards.forEach((c, i) => c.classList.toggle("current", i === current));
    if (cards[current]) cards[current].scrollIntoView({ block: "nearest" });
  }

  function advance() {
    for (let i = current + 1; i < cards.length; i++) {
      if (!cards[i].classList.contains("decided")) { current = i; render(); return; }
    }
    current = cards.length; // past the end
    render();
    say((confirmation ? confirmation + " " : "") + "All cards on this page are done: reload the page for the ones " +
        "you skipped and any more, or see and export your decisions under Decisions.");
  }

  async function post(url, body) {
    const response = await fetch(url, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(typeof data.detail === "string" ? data.detail : response.statusText);
    return data;
  }

  async function decide(action) {
    const card = cards[current];
    if (!card || busy) return;
    if (action === "skip") {
      history.push({ index: current, decision: null });
      skipped++;
      say(`skipped ${card.dataset.id}`);
      advance();
      return;
    }
    if (box.dataset.writes !== "yes") { say("This server is read-only: start it with muses serve --allow-writes.", true); return; }
    const name = reviewer.value.trim();
    if (!name) { say("Type your name first: decisions are stored with who made them.", true); reviewer.focus(); return; }
    if (action === "another class") {
      const picked = card.querySelector("select").value;
      if (!picked) { say("Pick a class in the list first (or “none of these”).", true); return; }
      if (picked === "none") action = "not one of these";
    }
    const body = { item_id: card.dataset.id, action, catalog_value: card.dataset.catalog,
                   suggested_value: card.dataset.suggested, reviewer: name, list_name: box.dataset.list };
    if (action === "another class") body.chosen = card.querySelector("select").value;
    busy = true;
    try {
      const d = await post("/api/review/decisions", body);
      card.classList.add("decided");
      card.querySelector(".outcome").textContent = d.value ? `decided: ${d.value}` : "decided: none of these";
      decided++;
      history.push({ index: current, decision: d.id });
      const words = d.action === "not one of these" ? "none of these" : d.action;  // the pages' one phrase
      confirmation = `${d.item_id}: ${words}${d.value ? ` (${d.value})` : ""}. Undo with u.`;
      say(confirmation);
      advance();
    } catch (err) {
      say(`not stored: ${err.message}`, true);
    } finally {
      busy = false;
    }
  }

  async function undoStored() {
    // After a reload the page has no steps of its own: the server names the reviewer's last one.
    const name = reviewer.value.trim();
    if (!name) { say("Type your name first: undo takes back your last decision.", true); return; }
    busy = true;
    try {
      const response = await fetch(`/api/review/decisions/last?reviewer=${encodeURIComponent(name)}`);
      if (response.status === 404) { say("Nothing to undo: you have no decision left to take back."); return; }
      if (!response.ok) throw new Error(response.statusText);
      const d = await response.json();
      await post(`/api/review/decisions/${d.id}/undo`, {});
      confirmation = "";
      say(`undone: your last decision on ${d.item_id} (${d.value || d.action}); reload the page to see the record again`);
    } catch (err) {
      say(`could not undo: ${err.message}`, true);
    } finally {
      busy = false;
    }
  }

  async function undo() {
    if (busy) return;
    if (!history.length) { if (box.dataset.writes === "yes") undoStored(); else say("Nothing to undo."); return; }
    const last = history.pop();
    const card = cards[last.index];
    if (last.decision === null) {
      skipped--;
    } else {
      busy = true;
      try {
        await post(`/api/review/decisions/${last.decision}/undo`, {});
      } catch (err) {
        history.push(last);
        say(`could not undo: ${err.message}`, true);
        return;
      } finally {
        busy = false;
      }
      card.classList.remove("decided");
      card.querySelector(".outcome").textContent = "";
      decided--;
    }
    current = last.index;
    confirmation = "";
    say(`undone: ${card.dataset.id} is open again`);
    render();
  }

  function back() {
    if (current > 0) { current--; render(); }
  }

  box.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    current = cards.indexOf(button.closest(".review-card"));
    decide(button.dataset.action);
  });

  const KEYS = { c: "catalog is right", s: "use the suggestion", n: "not one of these", " ": "skip", ArrowRight: "skip" };
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey && event.key === "z") { event.preventDefault(); undo(); return; }
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    const select = event.target.closest && event.target.closest(".review-card select");
    if (select) { // choosing another class: arrows pick, Enter decides, Escape leaves
      if (event.key === "Enter") { event.preventDefault(); select.blur(); decide("another class"); }
      if (event.key === "Escape") select.blur();
      return;
    }
    if (event.target.matches("input, textarea, select")) return;
    const card = cards[current];
    if (event.key === "u") { undo(); return; }
    if (event.key === "ArrowLeft") { back(); return; }
    if (event.key === "o" && card) { event.preventDefault(); card.querySelector("select").focus(); say("Pick a class with the arrow keys, then Enter."); return; }
    if (KEYS[event.key]) { event.preventDefault(); decide(KEYS[event.key]); }
  });

  render();
})();
