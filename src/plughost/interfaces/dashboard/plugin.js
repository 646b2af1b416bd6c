// plughost dashboard: one plugin's page. Summary and actions, configuration (a form made from
// the plugin's JSON Schema; secrets are write-only), permissions, versions, health,
// dependencies, metrics chart, live logs, history and manifest.
"use strict";

function props(pairs) {
  return h("dl", { class: "props" }, pairs.filter(([, v]) => v != null && v !== "").map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

function pluginLink(id) { return h("a", { href: `#/plugins/${enc(id)}` }, id); }

function pluginPage(view, rest) {
  const id = rest[0];
  const focus = rest[1];
  const path = `/plugins/${enc(id)}`;
  const title = h("h1", {}, id);
  const summary = card("Summary", "summary");
  const config = card("Configuration", "config");
  const perms = card("Permissions", "permissions");
  const versions = card("Versions", "versions");
  const health = card("Health", "health");
  const deps = card("Dependencies", "dependencies");
  const metrics = card("Metrics", "metrics");
  const logs = card("Logs", "logs");
  const historyCard = card("History", "history");
  const manifest = card("Manifest", "manifest");
  view.append(title, summary.el, h("div", { class: "grid" }, config.el, perms.el), h("div", { class: "grid" }, health.el, deps.el),
    versions.el, metrics.el, logs.el, historyCard.el, manifest.el);
  const cleanups = [];
  let detail = null;
  let removed = false;
  const shown = {};
  // True when `data` differs from what the card `name` shows (then it is drawn again).
  function changed(name, data) {
    const key = JSON.stringify(data);
    if (shown[name] === key) return false;
    shown[name] = key;
    return true;
  }
  const summaryInfo = h("div");
  const updateBox = can("PUT /plugins/{plugin_id}") ? h("details", {}, h("summary", {}, "Update to a new package"),
    packageForms(summary.errors, "PUT", path, "Update")) : null;
  put(summary.body, summaryInfo, updateBox);

  async function refresh() {
    if (removed) return;
    try {
      detail = await api("GET", path);
    } catch (e) {
      showError(summary.errors, e, "Loading " + id);
      return;
    }
    put(title, detail.name && detail.name !== id ? `${detail.name} (${id})` : id);
    renderSummary();
    renderDeps();
    renderManifest();
    await Promise.all([renderConfig(), renderPermissions(), renderVersions(), renderHealth(), renderHistory()]);
  }

  function renderSummary() {
    const p = detail;
    const uninstall = actionButton("Uninstall", "DELETE /plugins/{plugin_id}", b => {
      if (!confirm(`Uninstall ${id}? Its files and data are removed.`)) return;
      removed = true;  // no refresh of this page meanwhile: it is going away
      return run(summary.errors, b, "Uninstalling " + id, () => api("DELETE", path).catch(e => {
        removed = false;
        throw e;
      }), () => { location.hash = "#/plugins"; });
    }, "danger");
    put(summaryInfo,
      h("p", {}, stateBadge(p), " ", p.enabled ? "enabled" : "disabled", " ", stateNote(p)),
      p.description ? h("p", {}, p.description) : null,
      props([["Version", p.version], ["Type", p.type], ["Runtime", p.runtime], ["Author", p.author],
        ["Source", `${p.source || ""} ${p.source_uri || ""}`.trim()], ["SHA-256", p.sha256],
        ["Installed", when(p.installed_at)], ["Updated", when(p.updated_at)],
        ["Warnings", (p.warnings || []).join("; ")],
        ["Error", p.error ? `${p.error.code}: ${orDash(p.error.message)}` : null]]),
      h("div", {}, stateButtons(p, summary.errors, refresh), uninstall));
  }

  function renderDeps() {
    const needs = Object.entries(detail.dependencies || {});
    const users = detail.dependents || [];
    put(deps.body, 
      h("h3", {}, "Needs"), needs.length ? h("ul", {}, needs.map(([dep, range]) => h("li", {}, pluginLink(dep), " ", range))) : h("p", { class: "muted" }, "Nothing."),
      h("h3", {}, "Needed by"), users.length ? h("ul", {}, users.map(u => h("li", {}, pluginLink(typeof u === "string" ? u : u.id)))) : h("p", { class: "muted" }, "No plugin."));
  }

  function renderManifest() {
    put(manifest.body, h("pre", {}, JSON.stringify(detail.manifest || {}, null, 2)));
  }

  // -------------------------------------------------------------- configuration

  function isSecret(schema) { return !!(schema && (schema["x-secret"] || schema.writeOnly)); }

  function fieldFor(key, schema, value, required) {
    const secret = isSecret(schema);
    const type = Array.isArray(schema.type) ? schema.type.find(t => t !== "null") : schema.type;
    let input;
    if (Array.isArray(schema.enum)) {
      input = h("select", {}, required ? null : h("option", { value: "" }, "(not set)"),
        schema.enum.map(v => h("option", { value: JSON.stringify(v) }, String(v))));
      input.value = value === undefined ? "" : JSON.stringify(value);
    } else if (type === "boolean") {
      input = h("input", { type: "checkbox", checked: value === true });
    } else if (type === "integer" || type === "number") {
      input = h("input", { type: "number", step: type === "integer" ? "1" : "any", value: value ?? "",
                           min: schema.minimum, max: schema.maximum });
    } else if (type === "object" || type === "array" || (type == null && value != null && typeof value === "object")) {
      input = h("textarea", { rows: 4 }, value === undefined ? "" : JSON.stringify(value, null, 2));
    } else {
      input = h("input", secret
        ? { type: "password", autocomplete: "new-password", placeholder: value != null ? "set — leave empty to keep it" : "not set" }
        : { type: "text", value: value ?? "" });
    }
    input.name = key;
    input.id = "cfg-" + key;
    const problem = h("span", { class: "problem", "aria-live": "polite" });
    const field = h("div", { class: "field", "data-key": key },
      h("label", { for: input.id }, key, required ? " (required)" : "", secret ? " (secret, write-only)" : ""),
      input, schema.description ? h("span", { class: "hint" }, schema.description) : null, problem);
    field.read = () => {
      if (input.type === "checkbox") return input.checked;
      const raw = input.value;
      if (secret) return raw === "" ? undefined : raw;
      if (input.tagName === "SELECT") return raw === "" ? null : JSON.parse(raw);
      if (input.tagName === "TEXTAREA") {
        if (!raw.trim()) return null;
        try { return JSON.parse(raw); } catch (e) { throw new ApiError(-1, "page.json", `${key}: not valid JSON (${e.message})`); }
      }
      if (input.type === "number") return raw === "" ? null : Number(raw);
      return raw === "" ? null : raw;
    };
    field.original = value;
    field.secret = secret;
    field.problem = problem;
    return field;
  }

  function markProblems(fields, err) {
    for (const f of fields) { f.classList.remove("invalid"); f.problem.textContent = ""; }
    for (const p of (err.details && err.details.problems) || []) {
      const where = String(p.path || p.location || "");
      let key = where.replace(/^\$\.?/, "").split(/[.[]/)[0];
      const m = /'([^']+)' is a required property/.exec(p.message || "");
      if (!key && m) key = m[1];
      const f = fields.find(x => x.dataset.key === key);
      if (f) { f.classList.add("invalid"); f.problem.textContent = p.message || ""; }
    }
  }

  async function renderConfig() {
    await fill(config, async () => {
      const cfg = await api("GET", `${path}/config`);
      const history = await api("GET", `${path}/config/history?limit=1000`).then(page => page.items).catch(e => {
        showError(config.errors, e, "Loading the configuration history");
        return [];
      });
      if (!changed("config", [cfg, history, detail.state, App.me.role])) return undefined;
      const schema = cfg.schema || {};
      const editable = can("PUT /plugins/{plugin_id}/config");
      const values = cfg.config || {};
      const out = [h("p", { class: "small muted" }, `Version ${orDash(cfg.version)}. `,
        detail.state === "needs-config" ? h("strong", {}, "This plugin waits for its required settings before it can start.") : null)];
      const properties = schema.properties || {};
      const required = new Set(schema.required || []);
      let fields = [];
      let raw = null;
      if (Object.keys(properties).length) {
        fields = Object.entries(properties).map(([k, s]) => fieldFor(k, s || {}, values[k], required.has(k)));
      } else {
        raw = h("textarea", { rows: 6, id: "cfg-raw", "aria-label": "Settings (JSON object)" }, JSON.stringify(cfg.settings || {}, null, 2));
      }
      const form = h("form", { id: "config-form" }, fields, raw,
        editable ? h("button", { type: "submit", class: "primary" }, "Save") : null,
        actionButton("Reset to defaults", "POST /plugins/{plugin_id}/config/reset", b => {
          if (!confirm(`Reset the configuration of ${id} to its defaults?`)) return;
          return run(config.errors, b, "Resetting the configuration", () => api("POST", `${path}/config/reset`), refresh);
        }));
      if (!editable) for (const el of form.querySelectorAll("input, select, textarea")) el.disabled = true;
      form.addEventListener("submit", async e => {
        e.preventDefault();
        await run(config.errors, form.querySelector("button[type=submit]"), "Saving the configuration", () => {
          if (raw) {
            let parsed;
            try { parsed = JSON.parse(raw.value || "{}"); } catch (err) { throw new ApiError(-1, "page.json", "the settings are not valid JSON: " + err.message); }
            return api("PUT", `${path}/config`, { json: { values: parsed, replace: true } });
          }
          const change = {};
          for (const f of fields) {
            const v = f.read();
            if (v === undefined) continue;
            if (JSON.stringify(v) !== JSON.stringify(f.original ?? null)) change[f.dataset.key] = v;
          }
          return api("PUT", `${path}/config`, { json: { values: change } }).catch(err => { markProblems(fields, err); throw err; });
        }, () => { showOk(config.errors, "Saved."); return refresh(); });
      });
      out.push(form);
      if (history.length) {
          out.push(h("details", {}, h("summary", {}, `History (${history.length} versions)`),
            h("ul", {}, history.slice().reverse().map(v => h("li", {}, `version ${v.version} · ${orDash(v.action)} · ${orDash(when(v.time || v.at))} `,
              h("code", { class: "small" }, JSON.stringify(v.settings)), " ",
              v.version !== cfg.version ? actionButton("Restore", "POST /plugins/{plugin_id}/config/restore", b =>
                run(config.errors, b, `Restoring version ${v.version}`, () => api("POST", `${path}/config/restore`, { json: { version: v.version } }), refresh)) : null)))));
      }
      return out;
    });
    if (focus === "config") config.el.scrollIntoView();
  }

  // -------------------------------------------------------------- permissions

  async function renderPermissions() {
    await fill(perms, async () => {
      const [p, requests] = await Promise.all([api("GET", `${path}/permissions`),
        list("/permissions/requests", { plugin_id: id, status: "pending" })]);
      if (!changed("permissions", [p, requests.items])) return undefined;
      const granted = p.granted || [];
      const declared = (p.declared || []).filter(s => !granted.includes(s));
      const scope = h("input", { required: true, id: "grant-scope", placeholder: "net:api.example.com" });
      const reason = h("input", { id: "grant-reason", placeholder: "why" });
      const grantForm = can("POST /plugins/{plugin_id}/permissions/grant") ? h("form", { class: "filters" },
        h("label", {}, "Scope", scope), h("label", {}, "Reason", reason), h("button", { type: "submit" }, "Grant")) : null;
      if (grantForm) grantForm.addEventListener("submit", e => {
        e.preventDefault();
        run(perms.errors, grantForm.querySelector("button"), "Granting " + scope.value,
          () => api("POST", `${path}/permissions/grant`, { json: { scope: scope.value.trim(), reason: reason.value.trim() } }), refresh);
      });
      const grantButton = s => actionButton("Grant", "POST /plugins/{plugin_id}/permissions/grant", b =>
        run(perms.errors, b, "Granting " + s, () => api("POST", `${path}/permissions/grant`, { json: { scope: s } }), refresh));
      return [
        h("h3", {}, "Granted"),
        granted.length ? h("ul", { id: "granted" }, granted.map(s => h("li", {}, h("code", {}, s), " ",
          actionButton("Revoke", "POST /plugins/{plugin_id}/permissions/revoke", b =>
            run(perms.errors, b, "Revoking " + s, () => api("POST", `${path}/permissions/revoke`, { json: { scope: s } }), refresh), "danger"))))
          : h("p", { class: "muted" }, "Nothing granted."),
        declared.length ? [h("h3", {}, "Declared, not granted"), h("ul", {}, declared.map(s => h("li", {}, h("code", {}, s), " ", grantButton(s))))] : null,
        h("h3", {}, "Waiting for a decision"),
        requests.items.length ? h("ul", { id: "requests" }, requests.items.map(r => h("li", { "data-request": r.id }, h("code", {}, r.scope),
          r.reason ? ` — ${r.reason}` : "", " ",
          actionButton("Approve", "POST /permissions/requests/{request_id}/{decision}", b =>
            run(perms.errors, b, "Approving " + r.scope, () => api("POST", `/permissions/requests/${r.id}/approve`), refresh), "primary"),
          actionButton("Refuse", "POST /permissions/requests/{request_id}/{decision}", b =>
            run(perms.errors, b, "Refusing " + r.scope, () => api("POST", `/permissions/requests/${r.id}/refuse`), refresh), "danger"))))
          : h("p", { class: "muted" }, "No request."),
        grantForm];
    });
  }

  // -------------------------------------------------------------- versions, health, history

  async function renderVersions() {
    await fill(versions, async () => {
      const page = await list(`${path}/versions`);
      return h("div", { class: "table-wrap" }, h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Version"),
        h("th", {}, "Installed"), h("th", { class: "hide-narrow" }, "SHA-256"), h("th", { class: "hide-narrow" }, "Signed by"), h("th", {}, ""))),
      h("tbody", {}, page.items.map(v => h("tr", { "data-version": v.version }, h("td", {}, v.version, v.current ? [" ", badge("current", "s-active")] : null),
        h("td", {}, when(v.installed_at)), h("td", { class: "hide-narrow small" }, (v.sha256 || "").slice(0, 16)),
        h("td", { class: "hide-narrow" }, v.signed_by || "unsigned"),
        h("td", {}, v.current ? null : actionButton("Roll back to this", "POST /plugins/{plugin_id}/rollback", b => {
          if (!confirm(`Roll ${id} back to ${v.version}?`)) return;
          return run(versions.errors, b, `Rolling back to ${v.version}`, () => api("POST", `${path}/rollback`, { json: { to: v.version } }), refresh);
        })))))));
    });
  }

  async function renderHealth() {
    await fill(health, async () => {
      const report = await api("GET", `${path}/health`);
      return [props([["Healthy", report.healthy == null ? orDash(null) : report.healthy ? "yes" : "no"], ["State", report.state], ["Detail", report.detail],
        ["Data", report.data && Object.keys(report.data).length ? compactJson(report.data) : null]]),
        actionButton("Check now", "POST /health/{plugin_id}/check", b =>
          run(health.errors, b, "Checking " + id, () => api("POST", `/health/${enc(id)}/check`), renderHealth))];
    });
  }

  async function renderHistory() {
    await fill(historyCard, async () => {
      const entries = await auditEntries({ plugin_id: id }, 50);
      return entries.length ? auditTable(entries) : h("p", { class: "muted" }, "Nothing recorded yet.");
    });
  }

  // -------------------------------------------------------------- metrics

  const series = { t: [], calls: [], errors: [], latency: [] };
  let last = null;
  let chart = null;
  const chartBox = h("div", { class: "chart", id: "metrics-chart", role: "img", "aria-label": "Calls, errors and mean latency over time" });
  const figures = h("div", {}, h("p", { class: "muted" }, "Collecting figures…"));
  put(metrics.body, figures, chartBox);

  async function sampleMetrics() {
    try {
      const one = await api("GET", `/plugins/metrics?plugin_id=${enc(id)}`);
      const m = (Array.isArray(one) ? one : pageOf(one).items).find(x => x.id === id);
      if (!m) { put(figures, h("p", { class: "muted" }, "No figures: the plugin is not loaded.")); return; }
      const now = Date.now() / 1000;
      const lat = m.latency || { sum: 0, count: 0 };
      if (last) {
        const dt = Math.max(now - last.t, 0.001);
        const dc = Math.max(lat.count - last.count, 0);
        series.t.push(now);
        series.calls.push(Math.max(m.calls - last.calls, 0) / dt);
        series.errors.push(Math.max(m.errors - last.errors, 0) / dt);
        series.latency.push(dc ? (Math.max(lat.sum - last.sum, 0) / dc) * 1000 : null);
        for (const k of Object.keys(series)) if (series[k].length > 120) series[k].shift();
      }
      last = { t: now, calls: m.calls, errors: m.errors, sum: lat.sum, count: lat.count };
      put(figures, props([["Calls", m.calls], ["Errors", m.errors],
        ["Mean latency", lat.count ? `${(lat.sum / lat.count * 1000).toFixed(2)} ms` : orDash(null)],
        ["Busy", `${(m.busy_seconds || 0).toFixed(3)} s`],
        ["Errors by code", Object.entries(m.errors_by_code || {}).map(([k, v]) => `${k}: ${v}`).join(", ")],
        ["Limits hit", Object.entries(m.limit_hits || {}).map(([k, v]) => `${k}: ${v}`).join(", ")],
        ...(await runtimeCounters())]));
      drawChart();
    } catch (e) {
      showError(metrics.errors, e, "Reading the metrics");
    }
  }

  // Restarts, crashes and timeouts of isolated runtimes, from the Prometheus endpoint.
  async function runtimeCounters() {
    if (!can("GET /metrics")) return [];
    const response = await fetch("/metrics", { headers: authHeaders(), cache: "no-store" });
    if (!response.ok) return [];
    const text = await response.text();
    const out = [];
    const needle = `plugin="${id}"`;
    for (const line of text.split("\n")) {
      const m = /^plughost_plugin_(restarts|crashes|timeouts)_total\{([^}]*)\} (\S+)/.exec(line);
      if (m && m[2].split(",").includes(needle)) out.push([m[1][0].toUpperCase() + m[1].slice(1), Number(m[3])]);
    }
    return out;
  }

  function drawChart() {
    if (series.t.length < 2 || !window.uPlot) {
      if (!chart) chartBox.textContent = "The chart appears after the second sample (every 5 s).";
      return;
    }
    if (!chart) chartBox.textContent = "";
    const data = [series.t, series.calls, series.errors, series.latency];
    if (chart) { chart.setData(data); return; }
    const width = Math.max(chartBox.clientWidth, 260);
    chart = new window.uPlot({
      width, height: 180,
      series: [{}, { label: "calls/s", stroke: "#0969da" }, { label: "errors/s", stroke: "#cf222e" },
        { label: "latency ms", stroke: "#9a6700", scale: "ms" }],
      axes: [{}, { label: "per second" }, { side: 1, scale: "ms", label: "ms", grid: { show: false } }],
    }, data, chartBox);
  }

  loadChartLibrary().then(drawChart).catch(e => showError(metrics.errors, e, "Loading the chart"));
  sampleMetrics();
  const sampler = setInterval(sampleMetrics, 5000);
  cleanups.push(() => clearInterval(sampler));
  const resize = () => { if (chart) chart.setSize({ width: Math.max(chartBox.clientWidth, 260), height: 180 }); };
  window.addEventListener("resize", resize);
  cleanups.push(() => window.removeEventListener("resize", resize));

  // -------------------------------------------------------------- live logs

  const logBox = h("div", { class: "log", id: "log-lines", role: "log", "aria-live": "off", tabindex: "0" });
  const level = h("select", { id: "log-level" }, ["", "debug", "info", "warning", "error"].map(l => h("option", { value: l }, l || "all levels")));
  const pause = h("input", { type: "checkbox", id: "log-pause" });
  const logState = h("span", { class: "small muted", role: "status" });
  put(logs.body, h("div", { class: "filters" }, h("label", {}, "Level", level),
    h("label", { class: "check" }, pause, " Pause"),
    h("button", { type: "button", onclick: () => put(logBox) }, "Clear"), logState), logBox);
  let lastLogId = 0;
  let stopLogs = null;
  function tail() {
    if (stopLogs) stopLogs();
    put(logBox);
    lastLogId = 0;
    stopLogs = follow("/logs/stream", { plugin_id: id, level: level.value, backlog: 200 }, {
      open() { logState.textContent = "following"; },
      down(err, delay) { logState.textContent = delay == null ? "stopped: " + err.message : "reconnecting…"; },
      event(kind, line) {
        if (kind === "dropped") { logBox.append(h("div", { class: "l-warning" }, `(${line.count} lines skipped: the page fell behind)`)); return; }
        if (kind !== "log" || pause.checked || (line.id && line.id <= lastLogId)) return;
        lastLogId = line.id || lastLogId;
        const stick = logBox.scrollTop + logBox.clientHeight >= logBox.scrollHeight - 4;
        logBox.append(h("div", { class: "l-" + line.level }, `${when(line.time)} ${line.level} ${orDash(line.message, "")}`));
        while (logBox.childElementCount > 1000) logBox.firstChild.remove();
        if (stick) logBox.scrollTop = logBox.scrollHeight;
      },
    });
  }
  level.addEventListener("change", tail);
  tail();
  cleanups.push(() => stopLogs && stopLogs());

  refresh();
  return {
    refresh,
    onEvent(kind, data) {
      if (kind === "lifecycle" && data && data.plugin_id === id && data.new === "uninstalled") removed = true;
    },
    cleanup() { for (const f of cleanups) f(); },
  };
}
App.routes.plugin = pluginPage;

let chartLibrary = null;
// uPlot is loaded only on a plugin's page (it is not part of the dashboard's first load).
function loadChartLibrary() {
  if (!chartLibrary) {
    chartLibrary = new Promise((resolve, reject) => {
      document.head.append(h("link", { rel: "stylesheet", href: "/dashboard/vendor/uplot/uPlot.min.css" }));
      document.head.append(h("script", { src: "/dashboard/vendor/uplot/uPlot.iife.min.js",
        onload: resolve, onerror: () => reject(new ApiError(-1, "page.asset", "the chart library could not be loaded")) }));
    });
  }
  return chartLibrary;
}
