// vitrine storefront preview: plain modern JS, no build step, served by the API service itself.
//
// Rules this file keeps:
// - Catalog text comes from third-party feeds: it only ever reaches the page through textContent or
//   attributes set with setAttribute/properties, never through innerHTML (the page's CSP also forbids inline
//   scripts, so an injected <script> would not run anyway).
// - The API key is asked for when the API answers 401, kept in this browser (localStorage), sent as X-API-Key;
//   the page itself never contains one.
// - Every failure is shown in words: the API's own message (naming the field for a 4xx, the dependency for a 503).

const PAGE_SIZE = 24;
const SHELF_SIZE = 12;
const FACET_SAMPLE = 100; // results looked at to offer category and brand filters for a query
const MAX_OFFSET = 1000; // the API's pagination cap
const KEY_STORE = "vitrine.apiKey";
const OPERATOR_KEY_STORE = "vitrine.operatorKey";
const USER_STORE = "vitrine.userId";
const BAG_STORE = "vitrine.bag";
const PRODUCT_STORE = "vitrine.products";
const SUGGESTIONS = ["summer dress", "black heels", "running shoes", "backpack for school", "white sneakers", "watch"];

const $ = (selector, root = document) => root.querySelector(selector);

// --- small DOM helpers (text only) --------------------------------------------------------------------------
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function formatPrice(amount, currency) {
  if (amount === null || amount === undefined) return "";
  try {
    return new Intl.NumberFormat(undefined, { style: "currency", currency: currency || "GBP" }).format(amount);
  } catch {
    return `${amount.toFixed(2)} ${currency || ""}`.trim();
  }
}

function imageUrl(productId) {
  return `/images/products/${encodeURIComponent(productId)}`;
}

// --- local state --------------------------------------------------------------------------------------------
const state = {
  userId: null,
  sessionId: null,
  lastAction: null, // re-run by the error notice's Retry button
  pendingFeedback: Promise.resolve(),
  facets: { query: null, categories: [], brands: [] },
  imageResults: null,
  scrollToResults: false,
  // The search a product was opened from: its "Add to bag" is credited to that query (the search learns from it).
  openedFrom: null,
};

function loadUserId() {
  let id = Number(localStorage.getItem(USER_STORE));
  if (!Number.isSafeInteger(id) || id <= 0) {
    id = newUserId();
  }
  return id;
}

function newUserId() {
  // A random id far from the shop's real customer ids; the page is a preview, not a login.
  const id = 100_000_000 + Math.floor(Math.random() * 800_000_000);
  localStorage.setItem(USER_STORE, String(id));
  return id;
}

function productMemory() {
  try {
    return JSON.parse(sessionStorage.getItem(PRODUCT_STORE) || "{}");
  } catch {
    return {};
  }
}

function remember(products) {
  const memory = productMemory();
  for (const product of products) memory[product.product_id] = product;
  const ids = Object.keys(memory);
  for (const id of ids.slice(0, Math.max(0, ids.length - 300))) delete memory[id];
  sessionStorage.setItem(PRODUCT_STORE, JSON.stringify(memory));
}

function bag() {
  try {
    return JSON.parse(localStorage.getItem(`${BAG_STORE}.${state.userId}`) || "[]");
  } catch {
    return [];
  }
}

// --- the API ------------------------------------------------------------------------------------------------
class ApiError extends Error {
  constructor(status, body, message) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

function describeError(status, body, text) {
  if (body && Array.isArray(body.detail)) {
    // FastAPI-style validation errors: [{loc: [...], msg}]
    return body.detail
      .map((item) => {
        const where = (item.loc || []).filter((part) => part !== "body").join(".");
        return `${where}: ${String(item.msg).replace(/^Value error, /, "")}`;
      })
      .join("; ");
  }
  if (body && typeof body.detail === "string") {
    let message = body.detail;
    if (body.field && !message.includes(body.field)) message += ` (field: ${body.field})`;
    if (status === 503) {
      message = `Temporarily unavailable: ${message}.${body.retryable ? " It is safe to retry." : ""}`;
    }
    return message;
  }
  if (body && typeof body.error === "string") return body.error; // BentoML's own validation answer
  if (status === 0) return text;
  return `The server answered ${status}${text ? `: ${text.slice(0, 200)}` : ""}`;
}

let keyPrompt = null;

function askForKey(reason) {
  // One prompt however many requests are waiting for a key.
  if (keyPrompt) return keyPrompt;
  const dialog = $("[data-key-dialog]");
  const input = $("[data-key-input]");
  const error = $("[data-key-error]");
  error.hidden = !reason;
  error.textContent = reason || "";
  input.value = "";
  keyPrompt = new Promise((resolve) => {
    const done = () => {
      const key = input.value.trim();
      if (!key) return;
      localStorage.setItem(KEY_STORE, key);
      dialog.removeEventListener("close", done);
      keyPrompt = null;
      resolve(key);
    };
    dialog.addEventListener("close", done);
    dialog.addEventListener("cancel", (event) => event.preventDefault(), { once: true });
  });
  dialog.showModal();
  input.focus();
  return keyPrompt;
}

async function api(path, { method = "GET", json, form, operator = false } = {}) {
  for (let attempt = 0; ; attempt++) {
    const headers = { Accept: "application/json" };
    const key = operator
      ? sessionStorage.getItem(OPERATOR_KEY_STORE) || localStorage.getItem(KEY_STORE)
      : localStorage.getItem(KEY_STORE);
    if (key) headers["X-API-Key"] = key;
    let body;
    if (json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(json);
    } else if (form) {
      body = form;
    }
    let response;
    try {
      response = await fetch(path, { method, headers, body });
    } catch (exc) {
      throw new ApiError(0, null, `The server did not answer (${exc.message}). Is vitrine running?`);
    }
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (response.status === 401 && !operator && attempt < 3) {
      const reason = attempt === 0 && !key ? "" : describeError(401, data, text);
      await askForKey(reason);
      continue;
    }
    if (!response.ok) throw new ApiError(response.status, data, describeError(response.status, data, text));
    return data;
  }
}

// --- notices ------------------------------------------------------------------------------------------------
function showError(error, retry) {
  const notice = $("[data-error]");
  notice.replaceChildren(
    el("strong", { text: error.status ? `Error ${error.status}` : "Error" }),
    el("span", { "data-error-message": true, text: error.message }),
  );
  if (retry) notice.append(el("button", { type: "button", class: "ghost small", text: "Retry", onclick: retry }));
  notice.append(el("button", { type: "button", class: "ghost small", "aria-label": "Dismiss", text: "×", onclick: clearError }));
  notice.hidden = false;
}

function clearError() {
  const notice = $("[data-error]");
  notice.hidden = true;
  notice.replaceChildren();
}

async function guarded(action) {
  state.lastAction = action;
  try {
    await action();
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    // Only a failure that may pass (a dependency down, no answer) gets a Retry button; a 4xx needs new input.
    showError(error, error.status === 0 || error.status >= 500 ? () => guarded(action) : null);
  }
}

// --- feedback -----------------------------------------------------------------------------------------------
function sendFeedback(productId, interactionType, context, position, query) {
  const event = {
    user_id: state.userId,
    product_id: productId,
    interaction_type: interactionType,
    context,
    session_id: state.sessionId,
    event_id: crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random()}`,
  };
  if (Number.isInteger(position)) event.position = position;
  if (query) event.query = query; // with context "search": what shoppers choose after a query raises it for that query
  // The next view waits for this, so the "For you" shelf it loads already reflects the click.
  const sent = api("/api/v1/feedback", { method: "POST", json: event }).catch((error) => showError(error));
  state.pendingFeedback = Promise.all([state.pendingFeedback, sent]);
  return sent;
}

// --- cards and shelves --------------------------------------------------------------------------------------
function card(product, context, position, query) {
  const node = $("[data-card-template]").content.firstElementChild.cloneNode(true);
  node.dataset.productId = String(product.product_id);
  const link = $(".card-link", node);
  link.href = `#/product/${product.product_id}`;
  link.setAttribute("aria-label", `${product.product_name}${product.brand_name ? `, ${product.brand_name}` : ""}`);
  const img = $("img", node);
  img.src = imageUrl(product.product_id);
  img.alt = product.product_name;
  img.addEventListener("error", () => img.closest(".card-media").classList.add("broken"), { once: true });
  $(".card-brand", node).textContent = product.brand_name || product.merchant_name || "";
  $(".card-name", node).textContent = product.product_name;
  $(".price", node).textContent = formatPrice(product.price, product.currency);
  const rrp = $(".rrp", node);
  if (product.rrp_price && product.price && product.rrp_price > product.price) {
    rrp.textContent = formatPrice(product.rrp_price, product.currency);
    node.classList.add("on-sale");
  } else {
    rrp.remove();
  }
  const stock = $(".card-stock", node);
  stock.textContent = product.in_stock === false ? "Out of stock" : "In stock";
  stock.classList.toggle("out", product.in_stock === false);
  link.addEventListener("click", () => {
    state.openedFrom = query ? { productId: product.product_id, query, position } : null;
    sendFeedback(product.product_id, "click", context, position, query);
  });
  return node;
}

function renderShelf(container, products, context) {
  remember(products);
  container.replaceChildren(...products.map((product, i) => card(product, context, i)));
  if (!products.length) container.append(el("p", { class: "empty", text: "Nothing to show yet." }));
}

function blendText(answer) {
  const weights = Object.entries(answer.blend_weights || {})
    .filter(([, weight]) => weight > 0)
    .map(([name, weight]) => `${name.replace("_", "-")} ${Math.round(weight * 100)}%`)
    .join(" · ");
  const how =
    answer.strategy === "personalized"
      ? `Personalised for shopper ${answer.user_id}${weights ? ` (${weights})` : ""}`
      : "Popular picks: click or add something to the bag and this shelf follows you";
  return `${how} · ${Math.round(answer.took_ms)} ms${answer.cached ? " · cached" : ""}`;
}

async function loadFeed() {
  await state.pendingFeedback;
  const shelf = $('[data-shelf="feed"]');
  shelf.setAttribute("aria-busy", "true");
  try {
    const answer = await api("/api/v1/recommend", {
      method: "POST",
      json: { user_id: state.userId, context: "feed", limit: SHELF_SIZE },
    });
    renderShelf(shelf, answer.results, "feed");
    shelf.dataset.strategy = answer.strategy;
    $("[data-feed-meta]").textContent = blendText(answer);
  } finally {
    shelf.removeAttribute("aria-busy");
  }
}

// --- the shop view: search, filters, pagination -------------------------------------------------------------
function currentSearch() {
  const [, query = ""] = location.hash.split("?");
  const params = new URLSearchParams(query);
  return {
    q: params.get("q") || "",
    min_price: params.get("min_price") || "",
    max_price: params.get("max_price") || "",
    in_stock: params.get("in_stock") === "1",
    category: params.get("category") || "",
    brand: params.get("brand") || "",
    page: Math.max(1, Number(params.get("page")) || 1),
  };
}

function searchHash(search) {
  const params = new URLSearchParams();
  if (search.q) params.set("q", search.q);
  for (const name of ["min_price", "max_price", "category", "brand"]) if (search[name]) params.set(name, search[name]);
  if (search.in_stock) params.set("in_stock", "1");
  if (search.page > 1) params.set("page", String(search.page));
  return `#/search?${params}`;
}

function filtersFor(search) {
  const filters = {};
  // Prices go to the API as typed: a bad range is the API's to refuse, and its message is shown as is.
  if (search.min_price !== "") filters.min_price = Number(search.min_price);
  if (search.max_price !== "") filters.max_price = Number(search.max_price);
  if (search.in_stock) filters.in_stock = true;
  if (search.category) filters.categories = [search.category];
  if (search.brand) filters.brands = [search.brand];
  return Object.keys(filters).length ? filters : null;
}

function fillFilterForm(search) {
  const form = $("[data-filters]");
  form.min_price.value = search.min_price;
  form.max_price.value = search.max_price;
  form.in_stock.checked = search.in_stock;
  fillSelect(form.category, state.facets.categories, search.category, "All categories");
  fillSelect(form.brand, state.facets.brands, search.brand, "All brands");
}

function fillSelect(select, options, chosen, allLabel) {
  const names = options.map(([name]) => name);
  const entries = chosen && !names.includes(chosen) ? [[chosen, null], ...options] : options;
  select.replaceChildren(
    el("option", { value: "", text: allLabel }),
    ...entries.map(([name, count]) => el("option", { value: name, text: count ? `${name} (${count})` : name })),
  );
  select.value = chosen;
}

function countBy(results, field) {
  const counts = new Map();
  for (const product of results) {
    const name = product[field];
    if (name) counts.set(name, (counts.get(name) || 0) + 1);
  }
  return [...counts.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
}

async function loadFacets(query) {
  // No facet endpoint yet: the categories and brands among the query's top results are what a shopper can
  // narrow to (the API caches this search like any other).
  if (state.facets.query === query) return;
  const answer = await api("/api/v1/search", { method: "POST", json: { query, limit: FACET_SAMPLE } });
  state.facets = { query, categories: countBy(answer.results, "category_name"), brands: countBy(answer.results, "brand_name") };
}

function resultsMeta(answer, search) {
  const first = answer.total ? answer.offset + 1 : 0;
  const last = answer.offset + answer.results.length;
  const parts = [
    `${first}–${last} of ${answer.total}`,
    `${answer.mode} search`,
    `${answer.took_ms.toFixed(1)} ms`,
  ];
  if (answer.cached) parts.push("cached");
  return parts.join(" · ");
}

function interpretationText(answer) {
  const parts = [];
  const interpretation = answer.interpretation;
  if (interpretation?.corrected_query) parts.push(`Showing results for “${interpretation.corrected_query}”.`);
  const applied = Object.entries(interpretation?.applied_filters || {});
  if (applied.length) parts.push(`Understood: ${applied.map(([k, v]) => `${k.replace("_", " ")} ${v}`).join(", ")}.`);
  if (answer.message) parts.push(answer.message);
  return parts.join(" ");
}

function renderPager(answer, search) {
  const pager = $("[data-pager]");
  const pages = Math.max(1, Math.ceil(Math.min(answer.total, MAX_OFFSET + PAGE_SIZE) / PAGE_SIZE));
  pager.hidden = pages <= 1 && search.page <= 1;
  $("[data-page-label]").textContent = `Page ${search.page} of ${pages}`;
  $("[data-page-prev]").disabled = search.page <= 1;
  $("[data-page-next]").disabled = search.page >= pages || (search.page * PAGE_SIZE) > MAX_OFFSET;
}

async function runSearch(search) {
  const grid = $("[data-results]");
  $("[data-search-input]").value = search.q;
  if (!search.q) {
    state.imageResults ? renderImageResults(state.imageResults) : renderWelcome();
    fillFilterForm(search);
    return;
  }
  state.imageResults = null;
  grid.setAttribute("aria-busy", "true");
  try {
    await loadFacets(search.q);
    fillFilterForm(search);
    const answer = await api("/api/v1/search", {
      method: "POST",
      json: { query: search.q, filters: filtersFor(search), limit: PAGE_SIZE, offset: (search.page - 1) * PAGE_SIZE },
    });
    clearError();
    remember(answer.results);
    $("[data-results-title]").textContent = `Results for “${search.q}”`;
    $("[data-results-meta]").replaceChildren(
      el("span", { "data-search-stats": true, text: resultsMeta(answer, search) }),
      el("span", { class: "interpretation", text: interpretationText(answer) }),
    );
    grid.replaceChildren(...answer.results.map((product, i) => card(product, "search", answer.offset + i, search.q)));
    if (!answer.results.length) {
      grid.append(el("p", { class: "empty", text: "No products match. Try fewer filters or other words." }));
    }
    renderPager(answer, search);
    if (state.scrollToResults) {
      state.scrollToResults = false;
      $(".results-area").scrollIntoView({ block: "start" });
    }
  } finally {
    grid.removeAttribute("aria-busy");
  }
}

function renderWelcome() {
  $("[data-results-title]").textContent = "Search the catalog";
  $("[data-results-meta]").replaceChildren(
    el("span", { text: "Try: " }),
    ...SUGGESTIONS.map((text) =>
      el("button", { type: "button", class: "chip", text, onclick: () => (location.hash = searchHash({ q: text, page: 1 })) }),
    ),
  );
  $("[data-results]").replaceChildren();
  $("[data-pager]").hidden = true;
}

function renderImageResults(answer) {
  $("[data-results-title]").textContent = "Look-alikes for your photo";
  $("[data-results-meta]").replaceChildren(el("span", { "data-search-stats": true, text: resultsMeta(answer, {}) }));
  $("[data-results]").replaceChildren(...answer.results.map((product, i) => card(product, "search", i)));
  $("[data-pager]").hidden = true;
}

// --- the product view ---------------------------------------------------------------------------------------
async function showProduct(productId) {
  const view = $("[data-product]");
  const similar = $('[data-shelf="similar"]');
  similar.replaceChildren(); // never another product's look-alikes while this one's load
  $("[data-similar-meta]").textContent = "";
  let product = productMemory()[productId];
  if (!product) {
    product = await api(`/api/v1/products/${encodeURIComponent(productId)}`);
    remember([product]);
  }
  document.title = `${product.product_name} · vitrine`;
  const img = el("img", { src: imageUrl(product.product_id), alt: product.product_name });
  const addButton = el("button", { type: "button", class: "primary", "data-add-to-bag": true, text: "Add to bag" });
  const inBag = bag().includes(product.product_id);
  if (inBag) addButton.textContent = "In your bag ✓";
  addButton.addEventListener("click", async () => {
    addButton.disabled = true;
    const from = state.openedFrom?.productId === product.product_id ? state.openedFrom : null;
    await (from
      ? sendFeedback(product.product_id, "add_to_cart", "search", from.position, from.query)
      : sendFeedback(product.product_id, "add_to_cart", "other"));
    const items = bag();
    if (!items.includes(product.product_id)) items.push(product.product_id);
    localStorage.setItem(`${BAG_STORE}.${state.userId}`, JSON.stringify(items));
    addButton.textContent = "In your bag ✓";
    addButton.disabled = false;
  });
  const facts = el("dl", { class: "facts" });
  for (const [label, value] of [
    ["Brand", product.brand_name],
    ["Category", product.category_name],
    ["Colour", product.colour],
    ["Sold by", product.merchant_name],
    ["Availability", product.in_stock === false ? "Out of stock" : product.stock_quantity ? `In stock (${product.stock_quantity})` : "In stock"],
  ]) {
    if (value) facts.append(el("dt", { text: label }), el("dd", { text: value }));
  }
  const price = el("p", { class: "product-price" }, el("span", { class: "price", text: formatPrice(product.price, product.currency) }));
  if (product.rrp_price && product.price && product.rrp_price > product.price) {
    price.append(" ", el("s", { class: "rrp", text: formatPrice(product.rrp_price, product.currency) }));
  }
  view.dataset.productId = String(product.product_id);
  view.replaceChildren(
    el("div", { class: "product-media" }, img),
    el(
      "div",
      { class: "product-info" },
      el("p", { class: "card-brand", text: product.brand_name || "" }),
      el("h1", { text: product.product_name }),
      price,
      el("p", { class: "description", text: product.description || "" }),
      addButton,
      facts,
    ),
  );
  img.addEventListener("error", () => img.parentElement.classList.add("broken"), { once: true });
  $("[data-back]").focus(); // keyboard users land on the product, one Tab from "Add to bag"

  await state.pendingFeedback;
  const answer = await api("/api/v1/recommend", {
    method: "POST",
    json: { user_id: state.userId, context: "similar", product_id: product.product_id, limit: SHELF_SIZE },
  });
  renderShelf(similar, answer.results, "similar");
  $("[data-similar-meta]").textContent =
    `Closest to this product${answer.strategy === "personalized" ? ", nudged by your taste" : ""} · ` +
    `${Math.round(answer.took_ms)} ms${answer.cached ? " · cached" : ""}`;
}

// --- image search -------------------------------------------------------------------------------------------
function setUpImageSearch() {
  const dialog = $("[data-image-dialog]");
  const input = $("[data-image-input]");
  const preview = $("[data-image-preview]");
  const error = $("[data-image-error]");
  const zone = $("[data-dropzone]");
  let file = null;
  const choose = (chosen) => {
    file = chosen;
    error.hidden = true;
    if (preview.src) URL.revokeObjectURL(preview.src);
    preview.src = URL.createObjectURL(file);
    preview.hidden = false;
  };
  $("[data-image-open]").addEventListener("click", () => {
    error.hidden = true;
    dialog.showModal();
  });
  $("[data-image-cancel]").addEventListener("click", () => dialog.close());
  input.addEventListener("change", () => input.files[0] && choose(input.files[0]));
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    if (event.dataTransfer.files[0]) choose(event.dataTransfer.files[0]);
  });
  $("[data-image-form]").addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!file) {
      error.textContent = "Choose or drop a photo first.";
      error.hidden = false;
      return;
    }
    const form = new FormData();
    form.append("image", file);
    form.append("limit", String(PAGE_SIZE));
    try {
      const answer = await api("/api/v1/search/image", { method: "POST", form });
      remember(answer.results);
      state.imageResults = answer;
      dialog.close();
      if (location.hash.startsWith("#/search") || location.hash.startsWith("#/product")) location.hash = "#/";
      else route();
    } catch (exc) {
      if (!(exc instanceof ApiError)) throw exc;
      error.textContent = exc.message.includes("image tower")
        ? `This vitrine runs a text-only model, so it cannot compare photos: ${exc.message}.`
        : exc.message;
      error.hidden = false;
    }
  });
}

// --- operator panel -----------------------------------------------------------------------------------------
function table(headers, rows) {
  return el(
    "table",
    {},
    el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", { scope: "col", text: h })))),
    el("tbody", {}, ...rows.map((row) => el("tr", {}, ...row.map((cell) => el("td", { text: cell ?? "–" }))))),
  );
}

function statusCard(status) {
  const rows = ["database", "cache", "encoder", "index"].map((part) => {
    const info = status[part] || {};
    const detail = info.error || [info.backend, info.model_tag || info.version, info.size ?? info.catalog_size].filter((x) => x !== undefined && x !== null).join(" · ");
    return [part, info.state, info.latency_ms !== undefined ? `${info.latency_ms} ms` : "", detail];
  });
  return el(
    "div",
    { class: "op-card", "data-op": "status" },
    el("h3", {}, "Status ", el("span", { class: `badge ${status.status}`, text: status.status })),
    table(["part", "state", "latency", "detail"], rows),
    el("p", { class: "muted", text: `model ${status.model_version ?? "–"} · index ${status.index_version ?? "–"}` }),
  );
}

function cacheCard(stats) {
  const kinds = Object.keys({ ...(stats.hits_by_type || {}), ...(stats.misses_by_type || {}) });
  const rows = kinds.map((kind) => {
    const hits = stats.hits_by_type?.[kind] || 0;
    const misses = stats.misses_by_type?.[kind] || 0;
    return [kind, String(hits), String(misses), hits + misses ? `${Math.round((100 * hits) / (hits + misses))}%` : "–"];
  });
  return el(
    "div",
    { class: "op-card", "data-op": "cache" },
    el("h3", { text: "Cache" }),
    el("p", { class: "big", "data-hit-rate": true, text: stats.hit_rate_percent === null || stats.hit_rate_percent === undefined ? "–" : `${stats.hit_rate_percent}%` }),
    el("p", { class: "muted", text: `hit rate · ${stats.backend}${stats.available === false ? " (unavailable)" : ""}` }),
    table(["kind", "hits", "misses", "rate"], rows),
  );
}

function performanceCard(perf) {
  const rows = Object.entries(perf.endpoints || {}).map(([name, stats]) => [
    name,
    String(stats.count),
    stats.p95_ms === null || stats.p95_ms === undefined ? "–" : `${stats.p95_ms.toFixed(1)} ms`,
    `${stats.error_rate_percent ?? 0}%`,
    stats.health,
  ]);
  return el(
    "div",
    { class: "op-card", "data-op": "performance" },
    el("h3", {}, "Performance ", el("span", { class: `badge ${perf.health}`, text: perf.health })),
    table(["endpoint", "requests", "p95", "errors", "grade"], rows),
    el("p", { class: "muted", text: `last ${Math.round(perf.window_s / 60)} min` }),
  );
}

function operatorKeyForm(message) {
  const input = el("input", { type: "password", id: "operator-key", autocomplete: "off", required: true });
  const form = el(
    "form",
    { class: "op-card op-key" },
    el("h3", { text: "Operator key needed" }),
    el("p", { text: message }),
    el("label", { for: "operator-key", text: "Operator key" }),
    input,
    el("button", { type: "submit", text: "Use key" }),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(OPERATOR_KEY_STORE, input.value.trim());
    loadOperator();
  });
  return form;
}

async function loadOperator() {
  const body = $("[data-operator-body]");
  const parts = await Promise.allSettled([
    api("/status", { operator: true }),
    api("/cache/stats", { operator: true }),
    api("/performance", { operator: true }),
  ]);
  const cards = [];
  let refused = null;
  parts.forEach((part, i) => {
    if (part.status === "fulfilled") cards.push([statusCard, cacheCard, performanceCard][i](part.value));
    else if (part.reason.status === 401 || part.reason.status === 403) refused = part.reason;
    else cards.push(el("div", { class: "op-card" }, el("p", { class: "field-error", text: part.reason.message })));
  });
  if (refused) cards.push(operatorKeyForm(`${refused.message}. Operator pages need an operator key.`));
  body.replaceChildren(...cards);
}

function setUpOperator() {
  const toggle = $("[data-operator-toggle]");
  const panel = $("[data-operator]");
  toggle.addEventListener("click", () => {
    panel.hidden = !panel.hidden;
    toggle.setAttribute("aria-expanded", String(!panel.hidden));
    if (!panel.hidden) loadOperator();
  });
  $("[data-operator-refresh]").addEventListener("click", loadOperator);
}

// --- routing ------------------------------------------------------------------------------------------------
async function route() {
  const hash = location.hash || "#/";
  const product = hash.match(/^#\/product\/(\d+)$/);
  $('[data-view="shop"]').hidden = Boolean(product);
  $('[data-view="product"]').hidden = !product;
  if (product) {
    window.scrollTo(0, 0);
    await guarded(() => showProduct(Number(product[1])));
    return;
  }
  document.title = "vitrine · storefront preview";
  // The product page's "Back to the shop" returns to this search, as the browser's back button does.
  $("[data-back]").href = hash;
  const search = currentSearch();
  await Promise.all([guarded(loadFeed), guarded(() => runSearch(search))]);
}

function setUpShop() {
  $("[data-search-form]").addEventListener("submit", (event) => {
    event.preventDefault();
    const q = $("[data-search-input]").value.trim();
    if (!q) return;
    const next = searchHash({ ...currentSearch(), q, page: 1 });
    if (location.hash === next) route();
    else location.hash = next;
  });
  $("[data-filters]").addEventListener("submit", (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const search = currentSearch();
    const next = searchHash({
      ...search,
      q: search.q || $("[data-search-input]").value.trim(),
      min_price: form.min_price.value,
      max_price: form.max_price.value,
      in_stock: form.in_stock.checked,
      category: form.category.value,
      brand: form.brand.value,
      page: 1,
    });
    if (location.hash === next) route();
    else location.hash = next;
  });
  // A select or checkbox applies at once; prices wait for Enter or "Apply".
  for (const name of ["in_stock", "category", "brand"]) {
    $("[data-filters]")[name].addEventListener("change", () => $("[data-filters]").requestSubmit());
  }
  $("[data-clear-filters]").addEventListener("click", () => {
    location.hash = searchHash({ q: currentSearch().q, page: 1 });
  });
  for (const [selector, step] of [["[data-page-prev]", -1], ["[data-page-next]", 1]]) {
    $(selector).addEventListener("click", () => {
      const search = currentSearch();
      state.scrollToResults = true; // a new page starts at its top, as in any shop
      location.hash = searchHash({ ...search, page: search.page + step });
    });
  }
  $("[data-new-user]").addEventListener("click", () => {
    state.userId = newUserId();
    showUser();
    guarded(loadFeed);
  });
}

function showUser() {
  $("[data-user-id]").textContent = `#${state.userId}`;
}

function start() {
  state.userId = loadUserId();
  state.sessionId = sessionStorage.getItem("vitrine.session") || crypto.randomUUID?.() || String(Date.now());
  sessionStorage.setItem("vitrine.session", state.sessionId);
  showUser();
  setUpShop();
  setUpImageSearch();
  setUpOperator();
  window.addEventListener("hashchange", route);
  route();
}

start();
