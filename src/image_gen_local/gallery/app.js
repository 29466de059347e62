// The gallery page: a grid of the history's pictures, newest first, a page at a time as you scroll.
// Served live it asks the gallery's server (the token from its own address goes with every request);
// exported it reads window.GALLERY_DATA from data.js. Text from the history is only ever set as text.
"use strict";

const PAGE = 60;
const token = new URLSearchParams(location.search).get("t") || "";
const exported = window.GALLERY_DATA !== undefined;
const $ = (id) => document.getElementById(id);
const state = { words: "", next: null, loading: false, generation: 0, opened: 0 };

function withToken(path) {
  return path + (path.includes("?") ? "&" : "?") + "t=" + encodeURIComponent(token);
}

async function getJson(path) {
  const answer = await fetch(withToken(path), { cache: "no-store" });
  if (!answer.ok) throw new Error("the gallery answered " + answer.status);
  return answer.json();
}

function matches(picture, words) {
  const prompt = picture.prompt.toLowerCase();
  return words.every((word) => prompt.includes(word));
}

async function fetchPage(words, cursor) {
  if (!exported) {
    const query = "api/pictures?limit=" + PAGE + "&q=" + encodeURIComponent(words) +
      (cursor === null ? "" : "&before=" + cursor);
    return getJson(query);
  }
  const wanted = words.toLowerCase().split(/\s+/).filter(Boolean);
  const all = window.GALLERY_DATA.pictures.filter((p) => matches(p, wanted));
  const start = cursor === null ? 0 : cursor;
  const end = start + PAGE;
  return { pictures: all.slice(start, end), next: end < all.length ? end : null, total: window.GALLERY_DATA.total };
}

async function fetchDetail(picture) {
  if (exported) return picture;
  return getJson("api/picture/" + picture.id);
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function cardFor(picture) {
  const card = element("button", "card" + (picture.exists ? "" : " missing"));
  card.type = "button";
  card.dataset.id = String(picture.id);
  if (picture.exists && picture.thumb) {
    const img = element("img");
    img.loading = "lazy";
    img.alt = picture.prompt;
    img.src = picture.thumb;
    img.width = 180;
    img.height = Math.max(1, Math.round((180 * picture.height) / Math.max(1, picture.width)));
    card.append(img);
  } else {
    card.append(element("div", "placeholder", "missing"));
  }
  const meta = element("div", "meta");
  meta.append(element("div", "prompt", picture.prompt));
  const facts = picture.width + "×" + picture.height + " · " + picture.model + " · " + picture.created;
  meta.append(element("div", "facts", facts + (picture.synthetic ? " · synthetic" : "")));
  card.append(meta);
  card.addEventListener("click", () => openDetail(picture));
  return card;
}

async function loadMore() {
  if (state.loading || state.next === undefined) return;
  state.loading = true;
  const generation = state.generation;
  try {
    const page = await fetchPage(state.words, state.next);
    if (generation !== state.generation) return; // the search changed meanwhile
    const grid = $("grid");
    for (const picture of page.pictures) grid.append(cardFor(picture));
    state.next = page.next === null ? undefined : page.next;
    $("more").hidden = state.next === undefined;
    $("count").textContent = page.total + " pictures";
    const shown = grid.children.length;
    $("status").textContent = shown === 0 ? (state.words ? "No prompt holds these words." : "No pictures yet.") : "";
  } catch (error) {
    $("status").textContent = String(error.message || error);
  } finally {
    if (generation === state.generation) state.loading = false;
  }
  if (generation === state.generation && state.next !== undefined && nearBottom()) loadMore();
}

function nearBottom() {
  return $("sentinel").getBoundingClientRect().top < window.innerHeight + 600;
}

function restart(words) {
  state.generation += 1;
  state.words = words;
  state.next = null;
  state.loading = false;
  $("grid").replaceChildren();
  loadMore();
}

async function openDetail(picture) {
  const dialog = $("detail");
  $("detail-title").textContent = picture.prompt;
  $("copied").textContent = "";
  const img = $("detail-img");
  img.removeAttribute("src");
  $("detail-missing").hidden = true;
  $("detail-command").textContent = "";
  $("detail-lines").replaceChildren();
  if (!dialog.open) dialog.showModal();
  const opened = ++state.opened;
  let full;
  try {
    full = await fetchDetail(picture);
  } catch (error) {
    if (opened === state.opened) $("detail-command").textContent = String(error.message || error);
    return;
  }
  if (opened !== state.opened) return; // another picture was opened meanwhile: its details win
  $("detail-missing").hidden = full.exists;
  if (full.exists && full.full) {
    img.src = full.full;
    img.alt = full.prompt;
  }
  $("detail-command").textContent = full.command;
  const lines = $("detail-lines");
  lines.replaceChildren();
  for (const [name, value] of full.lines) {
    lines.append(element("dt", "", name), element("dd", "", value));
  }
  $("copy-path").onclick = () => copy(full.path, "Path copied.");
  $("copy-command").onclick = () => copy(full.command, "Command copied.");
}

async function copy(text, said) {
  try {
    await navigator.clipboard.writeText(text);
  } catch (error) {
    const area = element("textarea");
    area.value = text;
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  $("copied").textContent = said;
}

function start() {
  const initial = new URLSearchParams(location.search).get("q") || "";
  $("search").value = initial;
  let timer = 0;
  $("search").addEventListener("input", (event) => {
    clearTimeout(timer);
    timer = setTimeout(() => restart(event.target.value.trim()), 250);
  });
  $("more").addEventListener("click", loadMore);
  $("close").addEventListener("click", () => $("detail").close());
  new IntersectionObserver((seen) => {
    if (seen.some((entry) => entry.isIntersecting)) loadMore();
  }, { rootMargin: "600px" }).observe($("sentinel"));
  restart(initial);
}

start();
