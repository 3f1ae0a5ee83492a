// The similar objects of an item page, fetched once the page is shown (their search is the
// page's dearest part). The cards are built as cards.html builds them; text goes in as text.
const box = document.getElementById("similar");
const status = box && box.querySelector(".similar-status");
const fallback = status && status.querySelector("a"); // the page with them in it

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// as cards.html words them (muses.web.templating's answer_titles, on the section)
const ANSWER_TITLES = box ? JSON.parse(box.dataset.answerTitles) : {};

function card(hit) {
  const a = el("a", "card");
  a.href = hit.url;
  if (hit.thumbnail) {
    const img = el("img");
    img.src = hit.thumbnail;
    img.alt = hit.title;
    img.loading = "lazy";
    a.append(img);
  } else {
    a.append(el("div", "noimg", "no image"));
  }
  a.append(el("span", "object-number", hit.object_number), el("span", "title", hit.title || hit.id));
  const tags = el("span", "tags");
  if (hit.answer) {
    const tag = el("span", `tag predicted answer-${hit.answer_kind}`, hit.answer);
    tag.title = ANSWER_TITLES[hit.answer_kind];
    tags.append(tag);
  }
  if (hit.naive_label) {
    const tag = el("span", "tag naive", hit.naive_label);
    tag.title = "class from the catalog's words";
    tags.append(tag);
  }
  a.append(tags, el("span", "why", hit.why));
  return a;
}

async function showSimilar() {
  status.textContent = "finding similar objects…";
  try {
    const response = await fetch(box.dataset.src);
    const body = await response.json();
    if (!response.ok) throw new Error(body.detail || response.statusText);
    if (!body.similar.length) {
      status.textContent = "No similar objects found.";
      return;
    }
    const grid = el("div", "grid");
    grid.append(...body.similar.map(card));
    status.replaceWith(grid);
  } catch (error) {
    status.textContent = `The similar objects could not be loaded (${error.message}). `;
    status.append(fallback);
  }
}

if (status) showSimilar();
