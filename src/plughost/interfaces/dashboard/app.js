// plughost dashboard: lists plugins with their health, enables/disables them, shows alerts
// and the live event stream.
"use strict";
const API = "/api/v1";
const tokenInput = document.getElementById("token");
tokenInput.value = localStorage.getItem("plughost-token") || "";
tokenInput.addEventListener("change", () => {
  localStorage.setItem("plughost-token", tokenInput.value.trim());
  refresh();
  connectEvents();
});

function headers() {
  const token = tokenInput.value.trim();
  return token ? { Authorization: "Bearer " + token } : {};
}

function showError(text) {
  document.getElementById("message").textContent = text || "";
}

async function call(method, path) {
  const response = await fetch(API + path, { method, headers: headers() });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const err = body.error || {};
    throw new Error((err.code || response.status) + ": " + (err.message || response.statusText));
  }
  return body;
}

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text;
  return td;
}

async function healthById() {
  try {
    const report = await call("GET", "/health");
    return Object.fromEntries(report.plugins.map(h => [h.plugin_id, h]));
  } catch (e) { return {}; }  // health checks not started yet
}

async function refreshAlerts() {
  const list = document.getElementById("alerts");
  try {
    const report = await call("GET", "/alerts");
    list.replaceChildren();
    for (const a of report.alerts) {
      const li = document.createElement("li");
      li.className = "alert alert-" + a.state;
      li.textContent = `${a.state} ${a.severity}: ${a.rule}` +
        (a.plugin_id ? ` (${a.plugin_id})` : "") + ` — ${a.expr} ${a.op} ${a.threshold}, now ${a.value}`;
      list.append(li);
    }
    if (!report.alerts.length) list.textContent = "none";
  } catch (e) { list.textContent = "not available: " + e.message; }
}

async function refresh() {
  refreshAlerts();
  try {
    const health = await healthById();
    const page = await call("GET", "/plugins?limit=1000");
    const tbody = document.getElementById("plugins");
    tbody.replaceChildren();
    for (const p of page.items) {
      const tr = document.createElement("tr");
      tr.append(cell(p.id), cell(p.version), cell(p.type || "-"));
      const state = cell(p.state);
      state.className = "state state-" + p.state;
      if (p.error) state.title = p.error.message || "";
      tr.append(state);
      const h = health[p.id];
      const healthCell = cell(h ? h.status : "-");
      healthCell.className = "health health-" + (h ? h.status : "unknown");
      if (h && h.message) healthCell.title = h.message;
      tr.append(healthCell);
      const actions = document.createElement("td");
      const button = document.createElement("button");
      button.textContent = p.enabled ? "Disable" : "Enable";
      button.addEventListener("click", async () => {
        button.disabled = true;
        try {
          await call("POST", `/plugins/${encodeURIComponent(p.id)}/${p.enabled ? "disable" : "enable"}`);
          showError("");
        } catch (e) { showError(e.message); }
        refresh();
      });
      actions.append(button);
      tr.append(actions);
      tbody.append(tr);
    }
    document.getElementById("count").textContent = `(${page.total})`;
    showError("");
  } catch (e) { showError(e.message); }
  fetch("/readyz").then(r => r.json()).then(r => {
    document.getElementById("ready").textContent = r.ready ? "ready" : "not ready: " + r.reason;
  }).catch(() => {});
}

let controller = null;
async function connectEvents() {
  if (controller) controller.abort();
  controller = new AbortController();
  const log = document.getElementById("events");
  try {
    // fetch (not EventSource) so the Authorization header can be sent
    const response = await fetch(API + "/events", { headers: headers(), signal: controller.signal });
    if (!response.ok) { showError("event stream: HTTP " + response.status); return; }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let kind = "message", data = "";
        for (const line of block.split("\n")) {
          if (line.startsWith("event: ")) kind = line.slice(7);
          else if (line.startsWith("data: ")) data += line.slice(6);
        }
        if (!data) continue;
        log.textContent += `[${new Date().toLocaleTimeString()}] ${kind} ${data}\n`;
        log.scrollTop = log.scrollHeight;
        if (["lifecycle", "operation", "alert", "health"].includes(kind)) refresh();
      }
    }
  } catch (e) {
    if (e.name !== "AbortError") setTimeout(connectEvents, 3000);
  }
}

refresh();
connectEvents();
