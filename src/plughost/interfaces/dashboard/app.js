// plughost dashboard: the shared pieces. Calling the API (one call helper, one list helper),
// showing errors where they happened, signing in, the live event stream with reconnection,
// and the page router. The pages are in pages.js and plugin.js.
"use strict";

const API = "/api/v1";
const TOKEN_KEY = "plughost-token";
const App = {
  token: localStorage.getItem(TOKEN_KEY) || "",
  me: null,            // the answer of GET /whoami
  page: null,          // {refresh, onEvent, cleanup} of the page on screen
  routes: {},          // name -> page function (registered by pages.js and plugin.js)
  nav: [],             // [name, label, visible()]
};

// ------------------------------------------------------------------ DOM helpers

// The children h() and put() add: arrays flattened; null, undefined and false left out (a
// missing value is never written as the word "null"); anything else not a node as text.
function childNodes(children) {
  return children.flat(Infinity).filter(c => c != null && c !== false)
    .map(c => (c instanceof Node ? c : String(c)));
}

// Replace an element's children, with the same rules as h().
function put(el, ...children) {
  el.replaceChildren(...childNodes(children));
  return el;
}

// A value as the page shows it: a missing one (null, undefined, "", NaN) as an em dash (or
// `missing`), never as "null" or "undefined". Use it wherever a value goes into text.
function orDash(value, missing = "\u2014") {
  if (value == null || value === "" || (typeof value === "number" && isNaN(value))) return missing;
  return String(value);
}

// An object as one line of JSON for a details column, its missing (null) members left out.
function compactJson(value) {
  return JSON.stringify(value, (key, v) => (v === null && key !== "" ? undefined : v));
}

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value == null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "value") el.value = value;
    else if (key === "checked") el.checked = !!value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  el.append(...childNodes(children));
  return el;
}

function when(value) {
  // API times are ISO strings (older answers: epoch seconds); shown in the viewer's time zone
  if (value == null || value === "") return "";
  const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  return isNaN(date) ? String(value) : date.toLocaleString();
}

function timeOf(value) {
  if (value == null) return 0;
  return typeof value === "number" ? value * 1000 : Date.parse(value) || 0;
}

function badge(text, cls) { return h("span", { class: "badge " + (cls || "") }, text); }

function qs(query) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query || {})) {
    if (Array.isArray(value)) for (const one of value) params.append(key, String(one));
    else if (value != null && value !== "") params.set(key, String(value));
  }
  const text = params.toString();
  return text ? "?" + text : "";
}

const enc = encodeURIComponent;

// ------------------------------------------------------------------ calling the API

class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details || {};
  }
}

function authHeaders() {
  return App.token ? { Authorization: "Bearer " + App.token } : {};
}

async function errorFrom(response) {
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  const err = (body && body.error) || {};
  return new ApiError(response.status, err.code || "http." + response.status,
                      err.message || response.statusText || "the request failed", err.details);
}

// The one way the dashboard calls the API: JSON in and out, errors as ApiError.
async function api(method, path, options = {}) {
  const init = { method, headers: authHeaders(), signal: options.signal };
  if (options.json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(options.json);
  } else if (options.form) {
    init.body = options.form;
  }
  let response;
  try {
    response = await fetch(API + path + qs(options.query), init);
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(0, "network", "the server cannot be reached (" + e.message + ")");
  }
  if (!response.ok) throw await errorFrom(response);
  if (response.status === 204) return null;
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}

// The one place that knows how list answers look: {items, next_cursor, total}. Older
// answers (a bare array, next_before_id, offset/total) are read the same way.
function pageOf(body) {
  if (Array.isArray(body)) return { items: body, next: null, total: body.length };
  const items = body.items || [];
  let next = null;
  if (body.next_cursor != null) next = { cursor: body.next_cursor };
  else if (body.next_before_id != null) next = { before_id: body.next_before_id };
  else if (typeof body.offset === "number" && typeof body.total === "number"
           && body.offset + items.length < body.total) next = { offset: body.offset + items.length };
  return { items, next, total: typeof body.total === "number" ? body.total : null };
}

// One page (or, with all: true, every page) of a list endpoint. `next` continues it.
async function list(path, query = {}, options = {}) {
  const items = [];
  let page = null;
  let params = { ...query };
  for (;;) {
    page = pageOf(await api("GET", path, { query: params, signal: options.signal }));
    items.push(...page.items);
    if (!options.all || !page.next) break;
    params = { ...query, ...page.next };
  }
  return { items, next: page.next, total: page.total };
}

// ------------------------------------------------------------------ roles

// May the caller call this operation? `op` is "METHOD /path" as in the API reference
// (API paths without the /api/v1 prefix). The server says which ones (GET /whoami).
function can(op) {
  if (!App.me) return false;
  const [method, path] = op.split(" ");
  const full = path.startsWith("/api/") || !path.startsWith("/") || path === "/metrics"
    ? path : API + path;
  return App.me.operations.includes(method + " " + full);
}

// A button for an operation, or nothing when the caller's role may not call it.
function actionButton(label, op, onClick, cls) {
  if (!can(op)) return null;
  const button = h("button", { type: "button", class: cls || "" }, label);
  button.addEventListener("click", () => onClick(button));
  return button;
}

// ------------------------------------------------------------------ errors

const HINTS = {
  0: "Check that the server is running; the page reconnects by itself.",
  400: "Correct the request and try again.",
  401: "Sign in with a valid API token (top right).",
  404: "It may have been removed meanwhile; the page shows the current state.",
  409: "The current state does not allow this; the message says what to change first.",
  413: "The file is larger than the server accepts.",
  422: "Correct the values and try again.",
  501: "This server does not provide it.",
  503: "The server is starting, stopping or cannot reach its database; try again shortly.",
  504: "The plugin did not answer in time; try again or check its logs.",
};

function hintFor(err) {
  if (err.details && typeof err.details.hint === "string") return err.details.hint;
  if (err.status === 403) {
    const d = err.details || {};
    return `Your role is ${d.role || (App.me && App.me.role) || "too weak"}; this needs ` +
      `${d.required || "a stronger role"}. Ask an admin for a token with that role.`;
  }
  if (err.status >= 500 && !(err.status in HINTS)) return "An unexpected error on the server; its log has the details.";
  return HINTS[err.status] || "";
}

function problemsOf(err) {
  const problems = (err.details && err.details.problems) || [];
  return problems.map(p => (p.path || p.location ? (p.path || p.location) + ": " : "") + (p.message || JSON.stringify(p)));
}

// Show an error in `where` (an element with class "errors") until the user dismisses it.
// Refreshing a page never removes it; the same error again is not shown twice.
function showError(where, err, context) {
  if (err && err.name === "AbortError") return;
  if (!(err instanceof ApiError)) err = new ApiError(-1, "page.error", String(err && err.message || err));
  const key = (context || "") + "|" + err.code + "|" + err.message;
  for (const box of where.children) if (box.dataset.key === key) { box.remove(); break; }
  const hint = hintFor(err);
  const problems = problemsOf(err);
  const box = h("div", { class: "error", role: "alert", "data-key": key, "data-code": err.code },
    h("div", { class: "body" },
      context ? h("div", { class: "small muted" }, context) : null,
      h("code", {}, err.code), err.status > 0 ? h("span", { class: "muted" }, ` (HTTP ${err.status})`) : null,
      " ", h("span", { class: "message" }, err.message),
      problems.length ? h("ul", {}, problems.map(p => h("li", {}, p))) : null,
      hint ? h("div", { class: "hint" }, hint) : null),
    h("button", { type: "button", class: "dismiss", "aria-label": "Dismiss this message",
                  onclick: () => box.remove() }, "Dismiss"));
  where.append(box);
  return box;
}

function showOk(where, text) {
  const box = h("div", { class: "ok", role: "status" }, text,
    " ", h("button", { type: "button", onclick: () => box.remove() }, "Dismiss"));
  where.append(box);
  return box;
}

// Run an action from a button: the button is disabled while it runs; a refusal is shown in
// `where` and stays; `then` runs after a success (usually a refresh, which keeps errors).
async function run(where, button, context, action, then) {
  if (button) button.disabled = true;
  try {
    const result = await action();
    if (then) await then(result);
    return result;
  } catch (e) {
    showError(where, e, context);
    return undefined;
  } finally {
    if (button && button.isConnected) button.disabled = false;
  }
}

// A card: a section with a heading, its own error area and a content area that a refresh
// replaces (the error area is kept).
function card(title, id) {
  const errors = h("div", { class: "errors" });
  const body = h("div", { class: "content" });
  const heading = h("h2", {}, title);
  const el = h("section", { class: "card", id: id || null, "aria-label": title }, heading, errors, body);
  return { el, errors, body, heading };
}

// Fill a card's content from `loader`; a loader answering undefined keeps what is shown
// (nothing changed: a form being edited is left alone).
async function fill(c, loader) {
  try {
    const nodes = await loader();
    if (nodes === undefined) return;
    put(c.body, nodes);
  } catch (e) {
    showError(c.errors, e, "Loading " + c.heading.textContent.toLowerCase());
  }
}

// ------------------------------------------------------------------ live streams

// Follow a Server-Sent Events endpoint with fetch (so the token header can be sent).
// Reconnects with backoff (0.5 s doubling to 15 s) when it drops; stops on 401/403 or when
// the token is refused mid-stream (a `closed` event). Returns a function that stops it.
function follow(path, query, handlers) {
  const controller = new AbortController();
  let attempt = 0;
  let timer = null;
  let stopped = false;
  async function connect() {
    try {
      const response = await fetch(API + path + qs(query),
        { headers: authHeaders(), signal: controller.signal, cache: "no-store" });
      if (!response.ok) throw await errorFrom(response);
      attempt = 0;
      if (handlers.open) handlers.open();
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true }).replace(/\r\n/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let kind = "message";
          let data = "";
          for (const line of block.split("\n")) {
            if (line.startsWith("event:")) kind = line.slice(6).trim();
            else if (line.startsWith("data:")) data += line.slice(5).trim();
          }
          if (!data) continue;
          let payload;
          try { payload = JSON.parse(data); } catch (e) { payload = data; }
          if (kind === "closed") {
            throw new ApiError(401, "auth.invalid",
              (payload && payload.reason) || "the server closed the live connection");
          }
          handlers.event(kind, payload);
        }
      }
      throw new ApiError(0, "stream.ended", "the server ended the live connection");
    } catch (e) {
      if (stopped || e.name === "AbortError") return;
      const fatal = e.status === 401 || e.status === 403;
      const delay = fatal ? null : Math.min(15000, 500 * 2 ** attempt) * (0.8 + Math.random() * 0.4);
      attempt += 1;
      if (handlers.down) handlers.down(e, delay, attempt);
      if (delay != null) timer = setTimeout(connect, delay);
    }
  }
  connect();
  return () => { stopped = true; clearTimeout(timer); controller.abort(); };
}

// The header's connection state, always the truth: live, reconnecting, or stopped.
function setConnection(state, text) {
  const el = document.getElementById("conn");
  el.className = "conn conn-" + state;
  el.textContent = text;
}

let stopEvents = null;
let resyncTimer = null;
let connectionError = null;

function startEvents() {
  if (stopEvents) stopEvents();
  setConnection("connecting", "Connecting…");
  stopEvents = follow("/events", {}, {
    open() {
      setConnection("live", "Live");
      if (connectionError) { connectionError.remove(); connectionError = null; }
      resync();   // whatever happened while disconnected is read again
    },
    event(kind, data) {
      if (["lifecycle", "operation", "alert", "health"].includes(kind)) scheduleResync(kind, data);
    },
    down(err, delay, attempt) {
      if (delay == null) {
        setConnection("off", "Not connected");
        if (connectionError) connectionError.remove();
        connectionError = showError(document.getElementById("signin-errors"), err, "Live updates stopped");
        return;
      }
      setConnection("down", `Reconnecting in ${Math.ceil(delay / 1000)} s (attempt ${attempt})`);
      document.getElementById("ready").textContent = "";
    },
  });
}

function scheduleResync(kind, data) {
  if (App.page && App.page.onEvent) App.page.onEvent(kind, data);
  clearTimeout(resyncTimer);
  resyncTimer = setTimeout(resync, 300);
}

async function resync() {
  refreshReady();
  if (App.page && App.page.refresh) {
    try { await App.page.refresh(); } catch (e) { /* each page shows its own errors */ }
  }
}

async function refreshReady() {
  const el = document.getElementById("ready");
  try {
    const response = await fetch("/readyz", { cache: "no-store" });
    const body = await response.json();
    el.textContent = body.ready
      ? `Ready · ${body.plugins} plugins, ${body.active} active, ${body.failed} failed`
      : "Not ready: " + body.reason;
  } catch (e) {
    el.textContent = "";
  }
}

// ------------------------------------------------------------------ signing in

// The first requests of a page load start as soon as this script runs, before the page is
// built: who the caller is, then (on the plugin list, the default page, once the server has
// said the caller may read it) its first page and the counts of its filter menus. Each is
// taken once, by the code that would otherwise ask for it; a failed one is asked again there.
const early = {};
function prefetch(key, make) {
  early[key] = make();
  early[key].catch(() => {});  // handled when taken
}
function takeEarly(key, make) {
  const promise = early[key];
  delete early[key];
  return promise ? promise.catch(() => make()) : make();
}
prefetch("whoami", () => api("GET", "/whoami").then(me => {
  const onList = !location.hash.replace(/^#\/?/, "") || /^#\/?plugins\/?$/.test(location.hash);
  if (onList && (me.signed_in || !me.token_required)) {
    prefetch("plugins-first", () => list("/plugins", { limit: 50 }));
    prefetch("plugin-counts", () => api("GET", "/plugin-counts"));
  }
  return me;
}));

async function loadMe() {
  try {
    App.me = await takeEarly("whoami", () => api("GET", "/whoami"));
  } catch (e) {
    App.me = null;
    if (e.status === 401 && App.token) {
      showError(document.getElementById("signin-errors"), e, "Signing in");
      setToken("");
      App.me = await api("GET", "/whoami");
    } else {
      throw e;
    }
  }
  renderWho();
  renderNav();
}

function setToken(token) {
  App.token = token;
  if (token) localStorage.setItem(TOKEN_KEY, token);
  else localStorage.removeItem(TOKEN_KEY);
}

function renderWho() {
  const el = document.getElementById("who");
  const me = App.me;
  if (!me) { put(el); return; }
  if (me.signed_in) {
    put(el, `${me.name} (${me.role}) `,
      h("button", { type: "button", id: "signout", onclick: signOut }, "Sign out"));
  } else if (me.token_required) {
    put(el, h("a", { href: "#/signin" }, "Sign in"));
  } else {
    put(el, h("span", { title: "No token is needed on this local server" }, "Open local server (admin) "),
      h("a", { href: "#/signin" }, "Use a token"));
  }
}

async function signOut() {
  setToken("");
  await start();
}

function signInPage(view) {
  const errors = h("div", { class: "errors" });
  const input = h("input", { id: "token-input", type: "password", autocomplete: "off", required: true,
                             placeholder: "paste the token" });
  const form = h("form", { class: "card signin" },
    h("h1", {}, "Sign in"),
    h("p", {}, App.me && App.me.token_required
      ? "This server needs an API token. An admin creates one with " : "Use a token instead of the open access. An admin creates one with ",
      h("code", {}, "plughost token create --role viewer"), "."),
    errors,
    h("label", { class: "field" }, "API token", input),
    h("button", { type: "submit", class: "primary" }, "Sign in"));
  form.addEventListener("submit", async event => {
    event.preventDefault();
    const previous = App.token;
    setToken(input.value.trim());
    try {
      const me = await api("GET", "/whoami");
      if (!me.signed_in) throw new ApiError(401, "auth.required", "the token was not accepted");
      location.hash = "#/plugins";
      await start();
    } catch (e) {
      setToken(previous);
      showError(errors, e, "Signing in");
    }
  });
  put(view, form);
  input.focus();
  return {};
}
App.routes.signin = signInPage;

// ------------------------------------------------------------------ router

function renderNav() {
  const nav = document.getElementById("nav");
  const current = (location.hash.slice(2).split(/[/?]/)[0]) || "plugins";
  put(nav, ...App.nav.filter(([, , visible]) => !visible || visible()).map(([name, label]) =>
    h("a", { href: "#/" + name, "aria-current": name === current ? "page" : null }, label)),
    h("a", { href: "/docs" }, "API reference"));
}

function route() {
  if (App.page && App.page.cleanup) App.page.cleanup();
  App.page = null;
  const view = document.getElementById("view");
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  let name = parts[0] || "plugins";
  if (App.me && App.me.token_required && !App.me.signed_in) name = "signin";
  const page = App.routes[name];
  renderNav();
  if (!page) {
    put(view, h("p", {}, "There is no such page. ", h("a", { href: "#/plugins" }, "Go to the plugins")));
    return;
  }
  put(view);
  App.page = page(view, parts.slice(1)) || {};
  document.title = "plughost · " + (name === "plugins" && parts[1] ? parts[1] : name);
}

async function start() {
  try {
    await loadMe();
  } catch (e) {
    setConnection("down", "Server not reachable");
    showError(document.getElementById("signin-errors"), e, "Opening the dashboard");
    setTimeout(start, 3000);
    return;
  }
  route();
  if (App.me.signed_in || !App.me.token_required) startEvents();
  else { if (stopEvents) stopEvents(); setConnection("off", "Not signed in"); }
  refreshReady();
}

window.addEventListener("hashchange", () => {
  route();
  document.getElementById("view").focus({ preventScroll: true });
});
window.addEventListener("DOMContentLoaded", start);
