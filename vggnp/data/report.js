// The images of a vggnp report: read from the page's JSON block, shown a page at a time,
// sorted and filtered in the browser. Every value goes into the page through textContent
// or an attribute, never as HTML: a file name that looks like markup stays text.
"use strict";

const PAGE_SIZE = 50;
const images = JSON.parse(document.getElementById("images").textContent);
const state = {sort: "name", filter: "", page: 0};

function element(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, value);
  for (const child of children) {
    if (child !== null && child !== undefined) {
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
  }
  return node;
}

function picture(src, alt, link) {
  if (!src) return null;
  const img = element("img", {src: src, alt: alt, loading: "lazy"});
  return link ? element("a", {href: link}, img) : img;
}

// A score as text: 3 decimals, or "-" where there is none (a NaN in the results file).
function number(value) {
  return typeof value === "number" ? value.toFixed(3) : "-";
}

function bars(top) {
  const list = element("ol", {class: "bars"});
  for (const [name, score] of top) {
    const bar = element("span", {class: "bar"});
    bar.style.width = (100 * Math.max(0, Math.min(1, Number(score) || 0))).toFixed(1) + "%";
    list.append(element("li", {}, element("span", {class: "label"}, String(name)),
                        element("span", {class: "track"}, bar),
                        element("span", {class: "score"}, number(score))));
  }
  return list;
}

// Deletion and insertion curves: the class score (0..1) against the fraction of pixels
// removed or put back (0..1), as an inline SVG.
function curves(image) {
  if (!image.deletion) return null;
  const ns = "http://www.w3.org/2000/svg", w = 200, h = 90;
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.setAttribute("class", "curves");
  for (const [name, values] of [["deletion", image.deletion], ["insertion", image.insertion]]) {
    const line = document.createElementNS(ns, "polyline");
    const points = values.map((v, i) =>
      `${(w * i / (values.length - 1)).toFixed(1)},` +
      `${(h - h * Math.max(0, Math.min(1, Number(v) || 0))).toFixed(1)}`);
    line.setAttribute("points", points.join(" "));
    line.setAttribute("class", name);
    svg.append(line);
  }
  const legend = element("div", {class: "legend"},
    `deletion AUC ${number(image.auc[0])} (lower is better), ` +
    `insertion AUC ${number(image.auc[1])} (higher is better)`);
  return element("div", {}, svg, legend);
}

// The map large on the page: a click (or Enter) on an overlay thumbnail opens it in a
// dialog; Escape, a click or the close button closes it.
function large(image) {
  if (!image.thumb) return null;
  const button = element("button", {type: "button", class: "open",
                                    title: "show the map large (Enter)"},
                         element("img", {src: image.thumb, alt: "the overlay", loading: "lazy"}));
  button.addEventListener("click", () => {
    const dialog = document.getElementById("large");
    const links = image.overlay ? [element("a", {href: image.overlay}, "the file")] : [];
    dialog.replaceChildren(
      element("img", {src: image.overlay || image.thumb, alt: `the overlay of ${image.name}`}),
      element("p", {}, `${image.name}: ${image.method} of ${image.class} `, ...links,
              " ", element("button", {type: "button", class: "close"}, "close")));
    dialog.querySelector(".close").addEventListener("click", () => dialog.close());
    dialog.showModal();
  });
  return button;
}

function card(image) {
  const head = element("h3", {title: image.full}, image.name);
  if (image.error) {
    return element("section", {class: "image failed", id: `image-${image.id}`}, head,
                   element("p", {class: "error"}, image.error));
  }
  const pictures = element("div", {class: "pictures"},
                           picture(image.photo, "the photo", image.photo_link), large(image));
  const card = element("section", {class: "image", id: `image-${image.id}`}, head,
                       element("p", {class: "class"},
                               `${image.method}: ${image.class} (${image.index})` +
                               (image.layer ? ` at ${image.layer}` : "")),
                       pictures, bars(image.top));
  if (image.box) card.append(element("p", {}, `box: ${image.box.join(", ")} (pixels)`));
  const said = element("ul", {class: "notes"});
  for (const text of image.warnings) said.append(element("li", {class: "warning"}, text));
  for (const text of image.notes) said.append(element("li", {}, text));
  if (said.childElementCount) card.append(said);
  card.append(curves(image) || "");
  if (image.methods) {
    const row = element("div", {class: "methods"});
    for (const [method, src] of image.methods) {
      row.append(element("figure", {}, picture(src, method), element("figcaption", {}, method)));
    }
    card.append(row);
  }
  if (image.panel) card.append(element("p", {}, element("a", {href: image.panel}, "panel")));
  return card;
}

function shown() {
  const wanted = state.filter.trim().toLowerCase();
  const kept = images.filter(image => !wanted || (image.class || "").toLowerCase().includes(wanted));
  const by = {
    name: (a, b) => a.name.localeCompare(b.name),
    class: (a, b) => (a.class || "").localeCompare(b.class || "") || a.name.localeCompare(b.name),
    score: (a, b) => (b.score ?? -1) - (a.score ?? -1) || a.name.localeCompare(b.name),
  }[state.sort];
  return kept.sort(by);
}

function render() {
  const list = shown();
  const pages = Math.max(1, Math.ceil(list.length / PAGE_SIZE));
  state.page = Math.min(state.page, pages - 1);
  const start = state.page * PAGE_SIZE;
  document.getElementById("list").replaceChildren(
    ...list.slice(start, start + PAGE_SIZE).map(card));
  document.getElementById("where").textContent =
    `${list.length ? start + 1 : 0}-${Math.min(start + PAGE_SIZE, list.length)} of ` +
    `${list.length} image(s), page ${state.page + 1} of ${pages}`;
  document.getElementById("previous").disabled = state.page === 0;
  document.getElementById("next").disabled = state.page >= pages - 1;
}

document.getElementById("sort").addEventListener("change", event => {
  state.sort = event.target.value; state.page = 0; render();
});
document.getElementById("filter").addEventListener("input", event => {
  state.filter = event.target.value; state.page = 0; render();
});
document.getElementById("previous").addEventListener("click", () => { state.page -= 1; render(); });
document.getElementById("next").addEventListener("click", () => { state.page += 1; render(); });
document.getElementById("large").addEventListener("click", event => {
  if (event.target.id === "large") event.target.close();  // a click beside the picture
});

// A link to #image-N (the summary's failures): show the page that holds it, then it.
function follow() {
  const id = Number((location.hash.match(/^#image-(\d+)$/) || [])[1]);
  if (!Number.isInteger(id)) return;
  state.filter = ""; document.getElementById("filter").value = "";
  const at = shown().findIndex(image => image.id === id);
  if (at < 0) return;
  state.page = Math.floor(at / PAGE_SIZE);
  render();
  document.getElementById(`image-${id}`).scrollIntoView();
}
window.addEventListener("hashchange", follow);
render();
follow();
