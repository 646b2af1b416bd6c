// plughost dashboard pages: plugins, install, marketplace, operations, audit log, alerts,
// commands and tokens. The plugin details page is in plugin.js.
"use strict";

App.nav.push(
  ["plugins", "Plugins"],
  ["install", "Install", () => can("POST /plugins/install")],
  ["market", "Marketplace", () => can("GET /market/search")],
  ["operations", "Operations"],
  ["audit", "Audit log"],
  ["alerts", "Alerts", () => can("GET /alerts")],
  ["commands", "Commands"],
  ["tokens", "Tokens", () => can("GET /tokens")],
);

const PAGE_SIZE = 50;
const FILTERS = [["type", "Type"], ["state", "State"], ["runtime", "Runtime"], ["source", "Source"]];
const FILTER_PARAM = { type: "pluginType", state: "state", runtime: "runtime", source: "source" };

function stateBadge(p) {
  return badge(p.state, "state s-" + p.state);
}

// What the operator should know about a plugin's state, in words.
function stateNote(p) {
  if (p.state === "needs-config") {
    return h("a", { href: `#/plugins/${enc(p.id)}/config`, class: "sub" }, "Set its configuration");
  }
  if (p.error) {
    const phase = p.error.phase ? ` while ${p.error.phase}` : "";
    return h("span", { class: "sub" }, `Failed${phase}: ${orDash(p.error.message || p.error.code)}`);
  }
  if (!p.enabled) return h("span", { class: "sub" }, "disabled: not started with the host");
  return null;
}

// Buttons that change a plugin's state; `where` shows a refusal, `then` runs after success.
function stateButtons(p, where, then) {
  const path = `/plugins/${enc(p.id)}`;
  const op = (verb, label) => actionButton(label, `POST /plugins/{plugin_id}/${verb}`, b =>
    run(where, b, `${label} ${p.id}`, () => api("POST", `${path}/${verb}`), then),
    verb === "disable" || verb === "deactivate" ? "danger" : "");
  return [
    p.enabled ? op("disable", "Disable") : op("enable", "Enable"),
    p.enabled && p.state !== "active" ? op("activate", "Activate") : null,
    p.state === "active" ? op("deactivate", "Deactivate") : null,
  ];
}

// ------------------------------------------------------------------ plugins

// The list is asked of the server a page at a time, with its filters; the filter menus and
// the counts by state come from /plugin-counts, and the health of the plugins on screen from
// /health: what the page costs the server is a page, whatever is installed.
function pluginsPage(view) {
  const c = card("Plugins");
  const state = { items: [], counts: null, everything: null, health: {}, cursors: [null], page: 0,
                  next: null, total: 0, q: "", type: "", state: "", runtime: "", source: "" };
  const search = h("input", { type: "search", id: "plugin-search", placeholder: "id, name or description" });
  const selects = {};
  const filterBar = h("div", { class: "filters", role: "search" },
    h("label", {}, "Search", search),
    FILTERS.map(([key, label]) => h("label", {}, label, selects[key] = h("select", { "data-filter": key }))));
  const counts = h("div", { class: "counts", "aria-label": "Counts by state" });
  const tbody = h("tbody");
  const pager = h("div", { class: "pager" });
  const table = h("div", { class: "table-wrap" }, h("table", {},
    h("thead", {}, h("tr", {}, h("th", {}, "Plugin"), h("th", {}, "Version"),
      h("th", { class: "hide-narrow" }, "Type"), h("th", { class: "hide-narrow" }, "Runtime"),
      h("th", {}, "State"), h("th", { class: "hide-narrow" }, "Health"), h("th", {}, "Actions"))),
    tbody));
  c.body.replaceWith(h("div", {}, filterBar, counts, table, pager));
  view.append(c.el);

  function restart() { state.cursors = [null]; state.page = 0; refresh(); }
  let typing = null;
  search.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => { state.q = search.value.trim(); restart(); }, 120);
  });
  for (const [key, select] of Object.entries(selects)) {
    select.addEventListener("change", () => { state[key] = select.value; restart(); });
  }

  function filters() {
    const query = { q: state.q };
    for (const [key] of FILTERS) query[FILTER_PARAM[key]] = state[key];
    return query;
  }
  const filtered = () => Boolean(state.q || FILTERS.some(([key]) => state[key]));

  function renderFilters() {
    const by = (state.counts && state.counts.by) || {};
    for (const [key, label] of FILTERS) {
      const tally = { ...(by[key] || {}) };
      if (state[key] && !(state[key] in tally)) tally[state[key]] = 0;
      const total = Object.values(tally).reduce((a, b) => a + b, 0);
      put(selects[key], h("option", { value: "" }, `All ${label.toLowerCase()}s (${total})`),
        ...Object.keys(tally).sort().map(v => h("option", { value: v }, `${v || "(none)"} (${tally[v]})`)));
      selects[key].value = state[key];
    }
  }

  function row(p) {
    const health = state.health[p.id];
    return h("tr", { "data-plugin": p.id },
      h("td", {}, h("a", { href: `#/plugins/${enc(p.id)}` }, p.id),
        p.name && p.name !== p.id ? h("span", { class: "sub" }, p.name) : null),
      h("td", {}, orDash(p.version)),
      h("td", { class: "hide-narrow" }, orDash(p.type)),
      h("td", { class: "hide-narrow" }, orDash(p.runtime)),
      h("td", {}, stateBadge(p), stateNote(p)),
      h("td", { class: "hide-narrow" }, health && health.status !== "unknown" ? badge(health.status, "h-" + health.status) : h("span", { class: "muted" }, orDash(null)),
        health && health.message ? h("span", { class: "sub" }, health.message) : null),
      h("td", { class: "row-actions" }, stateButtons(p, c.errors, refresh)));
  }

  function render() {
    renderFilters();
    const every = state.everything || state.counts;
    const byState = (every && every.by && every.by.state) || {};
    put(counts, badge(`${every ? every.total : state.total} installed`),
      ...(every ? Object.keys(byState).sort().map(s => badge(`${byState[s]} ${s}`, "s-" + s))
        : [h("span", { class: "muted" }, "counting…")]));
    put(tbody, ...state.items.map(row));
    if (!state.items.length) {
      tbody.append(h("tr", {}, h("td", { colspan: 7, class: "muted" },
        filtered() ? "No plugin matches these filters." : "No plugin is installed yet.")));
    }
    // the moment the list is usable (bench/bench_dashboard.py reads it)
    if (!performance.getEntriesByName("plugins-usable").length) performance.mark("plugins-usable");
    const first = state.page * PAGE_SIZE;
    put(pager,
      h("span", { id: "plugin-range" }, state.items.length
        ? `Showing ${first + 1}–${first + state.items.length} of ${state.total}` : ""),
      h("button", { type: "button", id: "prev-page", disabled: state.page === 0,
                    onclick: () => { state.page -= 1; refresh(); } }, "Previous"),
      h("button", { type: "button", id: "next-page", disabled: !state.next,
                    onclick: () => { state.cursors[state.page + 1] = state.next; state.page += 1; refresh(); } },
        "Next"));
  }

  // Each refresh asks again for the page on screen (the same cursor), its health and the
  // counts; an answer overtaken by a later refresh (typing, paging) is dropped.
  let asked = 0;
  async function refresh() {
    const mine = ++asked;
    const query = filters();
    // the first refresh takes what the page load asked for early (the first page, unfiltered)
    const early = (key, make) => mine === 1 ? takeEarly(key, make) : make();
    try {
      const page = await early("plugins-first",
        () => list("/plugins", { ...query, limit: PAGE_SIZE, cursor: state.cursors[state.page] }));
      if (mine !== asked) return;
      if (!page.items.length && state.page > 0) { state.cursors = [null]; state.page = 0; return refresh(); }
      state.items = page.items;
      state.next = page.next && page.next.cursor;
      state.total = page.total ?? page.items.length;
      render();  // the page is on screen; the counts and the health follow
      const ids = page.items.map(p => p.id);
      const [countsNow, everything, health] = await Promise.all([
        early("plugin-counts", () => api("GET", "/plugin-counts", { query })),
        filtered() ? api("GET", "/plugin-counts") : null,
        ids.length ? api("GET", "/health", { query: { plugin_id: ids } }).catch(() => ({ plugins: [] }))
          : { plugins: [] }]);
      if (mine !== asked) return;
      state.counts = countsNow;
      state.everything = everything;
      state.health = Object.fromEntries((health.plugins || []).map(x => [x.plugin_id, x]));
      render();
    } catch (e) {
      if (mine === asked) showError(c.errors, e, "Loading the plugins");
    }
  }
  refresh();
  return { refresh };
}
App.routes.plugins = (view, rest) => rest.length ? App.routes.plugin(view, rest) : pluginsPage(view);

// ------------------------------------------------------------------ install

// Send a package (multipart) with upload progress; resolves with the parsed answer.
function upload(method, path, form, progress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, API + path);
    for (const [k, v] of Object.entries(authHeaders())) xhr.setRequestHeader(k, v);
    xhr.upload.addEventListener("progress", e => { if (e.lengthComputable) progress(e.loaded / e.total); });
    xhr.addEventListener("load", () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch (e) { body = null; }
      if (xhr.status >= 200 && xhr.status < 300) return resolve(body);
      const err = (body && body.error) || {};
      reject(new ApiError(xhr.status, err.code || "http." + xhr.status, err.message || xhr.statusText, err.details));
    });
    xhr.addEventListener("error", () => reject(new ApiError(0, "network", "the upload did not reach the server")));
    xhr.send(form);
  });
}

// Wait for a background operation, showing its progress in `bar` and `label`.
async function awaitOperation(op, bar, label) {
  for (;;) {
    bar.value = op.progress || 0;
    label.textContent = `${op.status}: ${op.message || ""}`;
    if (!["pending", "running"].includes(op.status)) break;
    await new Promise(r => setTimeout(r, 400));
    op = await api("GET", `/operations/${enc(op.id)}`);
  }
  if (op.status !== "succeeded") {
    const err = op.error || {};
    throw new ApiError(409, err.code || "operation." + op.status, err.message || op.message || op.status, err.details);
  }
  return op;
}

// What an install or update did, in words: "Installed hello 1.0.0." or "Updated hello from
// 1.0.0 to 1.1.0." (an update's result has from_version and to_version).
function installResult(where, op) {
  const r = op.result || {};
  const id = r.plugin_id || r.id || op.plugin_id;
  const name = id || "the plugin";
  const text = r.to_version != null
    ? `Updated ${name} from ${r.from_version} to ${r.to_version}. `
    : `Installed ${name}${r.version ? " " + r.version : ""}. `;
  showOk(where, h("span", { class: "result" }, text,
    id ? h("a", { href: `#/plugins/${enc(id)}` }, "Open its page") : null));
}

// The package form for install and update: file upload with progress, or a URL.
function packageForms(where, method, path, label) {
  const file = h("input", { type: "file", id: "package-file", accept: ".zip,.plugin,.whl", required: true });
  const sha = h("input", { type: "text", id: "package-sha256", placeholder: "optional", pattern: "[0-9a-fA-F]{64}" });
  const bar = h("progress", { max: 1, value: 0, id: "upload-progress", hidden: true });
  const status = h("div", { class: "small muted", role: "status", "aria-live": "polite" });
  const fileForm = h("form", {},
    h("label", { class: "field" }, "Package file", file),
    h("label", { class: "field" }, "Expected SHA-256", sha),
    h("button", { type: "submit", class: "primary" }, label + " from file"), bar, status);
  fileForm.addEventListener("submit", async event => {
    event.preventDefault();
    if (!file.files.length) return;
    const form = new FormData();
    form.set("source", "local");
    form.set("file", file.files[0]);
    if (sha.value.trim()) form.set("sha256", sha.value.trim());
    bar.hidden = false;
    bar.value = 0;
    const button = fileForm.querySelector("button[type=submit]");
    await run(where, button, `${label} ${file.files[0].name}`, async () => {
      status.textContent = "Uploading…";
      const op = await upload(method, path + "?async=true", form, f => { bar.value = f; status.textContent = `Uploading… ${Math.round(f * 100)} %`; });
      return awaitOperation(op, bar, status);
    }, op => { installResult(where, op); fileForm.reset(); });
  });
  const url = h("input", { type: "url", id: "package-url", required: true, placeholder: "https://…/plugin.zip" });
  const urlSha = h("input", { type: "text", placeholder: "optional", pattern: "[0-9a-fA-F]{64}" });
  const urlBar = h("progress", { max: 1, value: 0, hidden: true });
  const urlStatus = h("div", { class: "small muted", role: "status", "aria-live": "polite" });
  const urlForm = h("form", {},
    h("label", { class: "field" }, "Package URL", url),
    h("label", { class: "field" }, "Expected SHA-256", urlSha),
    h("button", { type: "submit" }, label + " from URL"), urlBar, urlStatus);
  urlForm.addEventListener("submit", async event => {
    event.preventDefault();
    urlBar.hidden = false;
    await run(where, urlForm.querySelector("button"), `${label} ${url.value}`, async () => {
      const op = await api(method, path, { query: { async: true },
        json: { source: "url", url: url.value.trim(), sha256: urlSha.value.trim() || undefined } });
      return awaitOperation(op, urlBar, urlStatus);
    }, op => installResult(where, op));
  });
  return [fileForm, h("hr"), urlForm];
}

function installPage(view) {
  view.append(h("h1", {}, "Install a plugin"));
  const c = card("From a package");
  c.body.append(...packageForms(c.errors, "POST", "/plugins/install", "Install"));
  const v = card("Check a manifest");
  const text = h("textarea", { id: "manifest-text", rows: 8, placeholder: '{"id": "my-plugin", "version": "1.0.0", ...}' });
  const out = h("div");
  const form = h("form", {}, h("label", { class: "field" }, "Manifest (JSON)", text),
    h("button", { type: "submit" }, "Check"), out);
  form.addEventListener("submit", async event => {
    event.preventDefault();
    put(out);
    await run(v.errors, form.querySelector("button"), "Checking the manifest", () => {
      let manifest;
      try { manifest = JSON.parse(text.value); } catch (e) { throw new ApiError(-1, "page.json", "the manifest is not valid JSON: " + e.message); }
      return api("POST", "/plugins/validate-manifest", { json: manifest });
    }, result => {
      const problems = result.problems || result.errors || [];
      if (result.valid === false || problems.length) {
        out.append(h("div", { class: "error" }, h("div", { class: "body" }, "The manifest has problems:",
          h("ul", {}, problems.map(p => h("li", {}, (p.path ? p.path + ": " : "") + (p.message || JSON.stringify(p))))))));
      } else {
        showOk(out, "The manifest is valid.");
      }
    });
  });
  v.body.append(form);
  view.append(c.el, v.el);
  return {};
}
App.routes.install = installPage;

// ------------------------------------------------------------------ marketplace

function marketPage(view) {
  view.append(h("h1", {}, "Marketplace"));
  const c = card("Catalog");
  const q = h("input", { type: "search", id: "market-search", placeholder: "search the catalog" });
  const results = h("div");
  const more = h("div");
  const form = h("form", { role: "search", class: "filters" }, h("label", {}, "Search", q), h("button", { type: "submit" }, "Search"));
  c.body.append(form, results, more);
  view.append(c.el);
  let installed = {};

  function item(m) {
    const have = installed[m.id] || m.installed_version;
    const bar = h("progress", { max: 1, value: 0, hidden: true });
    const status = h("span", { class: "small muted", role: "status" });
    return h("tr", { "data-market": m.id },
      h("td", {}, h("strong", {}, m.id), h("span", { class: "sub" }, m.description || "")),
      h("td", {}, orDash(m.version), m.yanked ? badge("withdrawn", "s-failed") : null),
      h("td", { class: "hide-narrow" }, orDash(m.type), h("span", { class: "sub" }, (m.tags || []).join(", "))),
      h("td", { class: "hide-narrow" }, m.rating != null ? `${Number(m.rating).toFixed(1)} (${m.ratings_count || 0})` : orDash(null),
        h("span", { class: "sub" }, `${m.downloads || 0} download${m.downloads === 1 ? "" : "s"}`)),
      h("td", {}, have ? [h("a", { href: `#/plugins/${enc(m.id)}` }, `installed ${have}`), " "] : null,
        !have || have !== m.version ? actionButton(have ? "Update" : "Install", have ? "PUT /plugins/{plugin_id}" : "POST /plugins/install", b => {
          bar.hidden = false;
          return run(c.errors, b, `${have ? "Updating" : "Installing"} ${m.id} ${m.version}`, async () => {
            const body = { source: "market", marketId: m.id, version: m.version };
            const op = have
              ? await api("PUT", `/plugins/${enc(m.id)}`, { query: { async: true }, json: body })
              : await api("POST", "/plugins/install", { query: { async: true }, json: body });
            return awaitOperation(op, bar, status);
          }, op => { installResult(c.errors, op); search(); });
        }) : null, bar, status));
  }

  async function search(next) {
    try {
      if (!next) {
        const mine = await list("/plugins", { limit: 500 }, { all: true });
        installed = Object.fromEntries(mine.items.map(p => [p.id, p.version]));
      }
      const page = await list("/market/search", { q: q.value.trim(), limit: 50, ...(next || {}) });
      const rows = page.items.map(item);
      if (!next) {
        put(results, page.items.length ? h("div", { class: "table-wrap" }, h("table", {},
          h("thead", {}, h("tr", {}, h("th", {}, "Plugin"), h("th", {}, "Version"), h("th", { class: "hide-narrow" }, "Type"),
            h("th", { class: "hide-narrow" }, "Rating"), h("th", {}, ""))), h("tbody", {}, rows)))
          : h("p", { class: "muted" }, "Nothing in the catalog matches."));
      } else {
        results.querySelector("tbody").append(...rows);
      }
      put(more, page.total != null ? h("span", { class: "muted" }, `${page.total} in the catalog `) : "",
        page.next ? h("button", { type: "button", onclick: () => search(page.next) }, "Show more") : "");
    } catch (e) {
      showError(c.errors, e, "Searching the catalog");
    }
  }
  form.addEventListener("submit", e => { e.preventDefault(); search(); });
  search();
  return {};
}
App.routes.market = marketPage;

// ------------------------------------------------------------------ operations

function pluginOf(op) { return op.plugin_id || (op.result && op.result.plugin_id) || ""; }

function operationRow(op) {
  return h("tr", { "data-operation": op.id },
    h("td", {}, op.kind, h("span", { class: "sub" }, op.id)),
    h("td", {}, pluginOf(op) ? h("a", { href: `#/plugins/${enc(pluginOf(op))}` }, pluginOf(op)) : ""),
    h("td", {}, badge(op.status, "st-" + op.status),
      ["pending", "running"].includes(op.status) ? h("progress", { max: 1, value: op.progress || 0 }) : null),
    h("td", {}, op.error ? `${op.error.code}: ${orDash(op.error.message)}` : op.message || ""),
    h("td", { class: "hide-narrow" }, when(op.created_at), h("span", { class: "sub" }, op.actor || "")));
}

function operationsPage(view) {
  view.append(h("h1", {}, "Operations"));
  const c = card("Recent operations");
  const onlyOpen = h("input", { type: "checkbox", id: "only-unfinished" });
  const tbody = h("tbody");
  c.body.replaceWith(h("div", {}, h("label", { class: "check" }, onlyOpen, " Only those in progress"),
    h("div", { class: "table-wrap" }, h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Operation"),
      h("th", {}, "Plugin"), h("th", {}, "Status"), h("th", {}, "Message"), h("th", { class: "hide-narrow" }, "Started"))), tbody))));
  view.append(c.el);
  async function refresh() {
    try {
      const page = await list("/operations", { limit: 100, unfinished: onlyOpen.checked || null });
      put(tbody, ...page.items.map(operationRow));
      if (!page.items.length) tbody.append(h("tr", {}, h("td", { colspan: 5, class: "muted" }, "No operation.")));
    } catch (e) { showError(c.errors, e, "Loading the operations"); }
  }
  onlyOpen.addEventListener("change", refresh);
  refresh();
  return { refresh };
}
App.routes.operations = operationsPage;

// ------------------------------------------------------------------ audit log

// Operations (install, enable, config, ...) and security decisions (grants, denials): one
// audit log, one entry shape (GET /audit), newest first.
function auditEntry(e) {
  const d = e.details || {};
  const security = e.kind === "security";
  return { time: e.at, actor: e.actor, plugin: e.plugin_id, outcome: security ? (d.decision || e.outcome) : e.outcome,
    action: security ? `${e.action} ${d.scope || d.kind || ""}`.trim() : e.action,
    detail: security ? (d.reason || d.target || "") : (e.details ? compactJson(e.details) : ""),
    kind: e.kind };
}

function auditTable(entries) {
  return h("div", { class: "table-wrap" }, h("table", {},
    h("thead", {}, h("tr", {}, h("th", {}, "When"), h("th", {}, "What"), h("th", {}, "Plugin"),
      h("th", {}, "Outcome"), h("th", { class: "hide-narrow" }, "Who"), h("th", { class: "hide-narrow" }, "Details"))),
    h("tbody", {}, entries.map(e => h("tr", { "data-kind": e.kind },
      h("td", {}, when(e.time)), h("td", {}, e.action, h("span", { class: "sub" }, e.kind)),
      h("td", {}, e.plugin ? h("a", { href: `#/plugins/${enc(e.plugin)}` }, e.plugin) : ""),
      h("td", {}, e.outcome || ""), h("td", { class: "hide-narrow" }, e.actor || ""),
      h("td", { class: "hide-narrow small" }, e.detail))))));
}

async function auditEntries(query, limit) {
  const page = await list("/audit", { ...query, limit });
  return page.items.map(auditEntry);
}

function auditPage(view) {
  view.append(h("h1", {}, "Audit log"));
  const c = card("Operations and security decisions");
  const plugin = h("input", { type: "search", id: "audit-plugin", placeholder: "plugin id" });
  const limit = h("select", {}, [100, 500, 1000].map(n => h("option", { value: n }, String(n))));
  const out = h("div");
  const form = h("form", { class: "filters" }, h("label", {}, "Plugin", plugin), h("label", {}, "Latest", limit),
    h("button", { type: "submit" }, "Show"));
  c.body.replaceWith(h("div", {}, form, out));
  view.append(c.el);
  async function refresh() {
    try {
      put(out, auditTable(await auditEntries({ plugin_id: plugin.value.trim() }, Number(limit.value))));
    } catch (e) { showError(c.errors, e, "Loading the audit log"); }
  }
  form.addEventListener("submit", e => { e.preventDefault(); refresh(); });
  refresh();
  return { refresh };
}
App.routes.audit = auditPage;

// ------------------------------------------------------------------ alerts

function alertsPage(view) {
  view.append(h("h1", {}, "Alerts"));
  const now = card("Firing and pending", "alerts-now");
  const rules = card("Rules", "rules");
  const history = card("History", "alert-history");
  const ruleForm = can("POST /alerts/rules") ? newRuleForm() : null;
  view.append(now.el, rules.el, history.el);

  function newRuleForm() {
    const f = {
      name: h("input", { required: true, id: "rule-name" }),
      expr: h("input", { required: true, id: "rule-expr", placeholder: "error_rate" }),
      op: h("select", { id: "rule-op" }, [">", ">=", "<", "<=", "==", "!="].map(o => h("option", {}, o))),
      threshold: h("input", { type: "number", step: "any", required: true, id: "rule-threshold" }),
      for: h("input", { placeholder: "2m", id: "rule-for" }),
      plugin: h("input", { placeholder: "all plugins", id: "rule-plugin" }),
      severity: h("select", { id: "rule-severity" }, ["warning", "critical", "info"].map(o => h("option", {}, o))),
    };
    const form = h("form", { class: "filters" }, Object.entries(f).map(([k, el]) => h("label", {}, k, el)),
      h("button", { type: "submit" }, "Add rule"));
    form.addEventListener("submit", async e => {
      e.preventDefault();
      const body = { name: f.name.value.trim(), expr: f.expr.value.trim(), op: f.op.value,
                     threshold: Number(f.threshold.value), severity: f.severity.value };
      if (f.for.value.trim()) body.for = f.for.value.trim();
      if (f.plugin.value.trim()) body.plugin = f.plugin.value.trim();
      await run(rules.errors, form.querySelector("button"), "Adding the rule " + body.name,
        () => api("POST", "/alerts/rules", { json: body }), () => { form.reset(); refresh(); });
    });
    return form;
  }

  async function refresh() {
    fill(now, async () => {
      const report = await api("GET", "/alerts");
      const items = report.alerts || report.items || [];
      if (!items.length) return h("p", { class: "muted" }, "No alert is pending or firing.");
      return h("ul", {}, items.map(a => h("li", {}, badge(a.state, "a-" + a.state), ` ${orDash(a.severity)}: ${a.rule}`,
        a.plugin_id ? ` (${a.plugin_id})` : "", ` — ${a.expr} ${a.op} ${a.threshold}, now ${orDash(a.value)}`)));
    });
    fill(rules, async () => {
      const page = await list("/alerts/rules");
      return [h("div", { class: "table-wrap" }, h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Rule"),
        h("th", {}, "Condition"), h("th", { class: "hide-narrow" }, "Plugin"), h("th", {}, "Severity"), h("th", {}, ""))),
        h("tbody", {}, page.items.map(r => h("tr", {}, h("td", {}, r.name, h("span", { class: "sub" }, r.origin || r.source || "")),
          h("td", {}, `${r.expr} ${r.op} ${r.threshold}${r.for ? " for " + r.for : ""}`),
          h("td", { class: "hide-narrow" }, r.plugin || "all"), h("td", {}, r.severity),
          h("td", {}, actionButton("Remove", "DELETE /alerts/rules/{name}", b =>
            run(rules.errors, b, "Removing the rule " + r.name, () => api("DELETE", `/alerts/rules/${enc(r.name)}`), refresh), "danger"))))))),
        ruleForm];
    });
    fill(history, async () => {
      const page = await list("/alerts/history", { limit: 50 });
      if (!page.items.length) return h("p", { class: "muted" }, "No alert has fired yet.");
      return h("ul", {}, page.items.map(a => h("li", {}, `${when(a.at || a.time || a.started_at)} `,
        badge(a.state, "a-" + a.state), ` ${a.rule}${a.plugin_id ? " (" + a.plugin_id + ")" : ""} ${a.value != null ? "value " + a.value : ""}`)));
    });
  }
  refresh();
  return { refresh };
}
App.routes.alerts = alertsPage;

// ------------------------------------------------------------------ commands

function commandsPage(view) {
  view.append(h("h1", {}, "Commands"));
  const c = card("Commands of active plugins");
  view.append(c.el);
  async function refresh() {
    fill(c, async () => {
      const page = await list("/commands");
      if (!page.items.length) return h("p", { class: "muted" }, "No active plugin registered a command.");
      return page.items.map(name => {
        const args = h("textarea", { rows: 2, "aria-label": `Arguments of ${name} (JSON object)`, placeholder: "{}" });
        const out = h("div");
        return h("div", { class: "command", "data-command": name }, h("h3", {}, name),
          can("POST /commands/{name}") ? args : null, out,
          actionButton("Run", "POST /commands/{name}", b => run(c.errors, b, "Running " + name, () => {
            let parsed = {};
            if (args.value.trim()) {
              try { parsed = JSON.parse(args.value); } catch (e) { throw new ApiError(-1, "page.json", "the arguments are not valid JSON: " + e.message); }
            }
            return api("POST", `/commands/${enc(name)}`, { json: { args: parsed } });
          }, result => put(out, h("pre", {}, JSON.stringify(result.result, null, 2))))));
      });
    });
  }
  refresh();
  return {};
}
App.routes.commands = commandsPage;

// ------------------------------------------------------------------ tokens

function tokensPage(view) {
  view.append(h("h1", {}, "API tokens"));
  const c = card("Tokens");
  const created = h("div");
  const name = h("input", { required: true, id: "new-token-name", pattern: "[A-Za-z0-9._\\-]+" });
  const role = h("select", { id: "new-token-role" }, (App.me.roles || []).map(r => h("option", {}, r)));
  const days = h("input", { type: "number", min: 1, id: "new-token-days", placeholder: "never" });
  const note = App.me.signed_in ? null : h("p", { class: "hint" },
    "This server is open because no token exists. Creating the first token closes it: every request then needs a token.");
  const form = h("form", { class: "filters" }, h("label", {}, "Name", name), h("label", {}, "Role", role),
    h("label", {}, "Expires in days", days), h("button", { type: "submit" }, "Create token"));
  const tableBox = h("div");
  c.body.replaceWith(h("div", {}, tableBox, can("POST /tokens") ? [note, form] : null, created));
  view.append(c.el);
  form.addEventListener("submit", async e => {
    e.preventDefault();
    await run(c.errors, form.querySelector("button"), "Creating the token " + name.value, () =>
      api("POST", "/tokens", { json: { name: name.value.trim(), role: role.value, expires_in_days: days.value ? Number(days.value) : null } }),
      token => {
        const open = !App.me.signed_in;
        put(created, h("div", { class: "ok", role: "status" }, `Token ${token.name} (${token.role}) created. Copy it now, it is not shown again: `,
          h("code", { id: "new-token-secret" }, token.secret),
          open ? h("p", {}, "From now on every request needs a token. ",
            h("button", { type: "button", id: "use-new-token", onclick: async () => { setToken(token.secret); await start(); } },
              "Sign in with this token")) : null));
        form.reset();
        if (!open) refresh();
      });
  });
  async function refresh() {
    try {
      const page = await list("/tokens");
      put(tableBox, h("div", { class: "table-wrap" }, h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Name"),
        h("th", {}, "Role"), h("th", { class: "hide-narrow" }, "Created"), h("th", { class: "hide-narrow" }, "Last used"),
        h("th", {}, "Expires"), h("th", {}, ""))),
      h("tbody", {}, page.items.map(t => h("tr", { "data-token": t.name }, h("td", {}, t.name), h("td", {}, t.role),
        h("td", { class: "hide-narrow" }, when(t.created_at)), h("td", { class: "hide-narrow" }, when(t.last_used_at) || "never"),
        h("td", {}, when(t.expires_at) || "never"),
        h("td", {}, actionButton("Revoke", "DELETE /tokens/{name}", b => {
          if (!confirm(`Revoke the token ${t.name}? Requests with it fail from now on.`)) return;
          return run(c.errors, b, "Revoking " + t.name, () => api("DELETE", `/tokens/${enc(t.name)}`), refresh);
        }, "danger"))))))));
    } catch (e) { showError(c.errors, e, "Loading the tokens"); }
  }
  refresh();
  return { refresh };
}
App.routes.tokens = tokensPage;
