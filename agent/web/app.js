// scenewright chat page: plain JavaScript, no build step. Talks to the HTTP API of `scenewright serve`.
// A token (when the server needs one) comes from the page address, `/#token=...`, and is kept for this tab only.
"use strict";

const state = { session: null, polling: null, streams: new Map(), rendered: new Map() };

const token = (() => {
  const m = location.hash.match(/token=([^&]+)/);
  if (m) { sessionStorage.setItem("scenewright-token", decodeURIComponent(m[1])); history.replaceState(null, "", location.pathname); }
  return sessionStorage.getItem("scenewright-token") || "";
})();

function withToken(url) {
  return token ? url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token) : url;
}

async function api(method, path, body) {
  const headers = { "Accept": "application/json" };
  if (token) headers["Authorization"] = "Bearer " + token;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) {
    const detail = typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail || data);
    throw new Error(detail || res.statusText);
  }
  return data;
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c) e.append(c);
  return e;
}

function showError(message) { document.getElementById("error").textContent = message || ""; }

// --- sessions list --------------------------------------------------------------------------------------------
async function loadSessions() {
  const list = document.getElementById("sessions");
  const sessions = await api("GET", "/api/sessions");
  list.replaceChildren(...sessions.map((s) => {
    const li = el("li", { "data-id": s.session_id, title: s.title, onclick: () => openSession(s.session_id) },
      document.createTextNode(s.title + " "), el("small", { text: `(${s.turns})` }));
    if (state.session === s.session_id) li.classList.add("active");
    return li;
  }));
}

async function openSession(id) {
  if (state.session !== id) { state.rendered.clear(); document.getElementById("conversation").replaceChildren(); }
  state.session = id;
  location.hash = "session=" + id;
  await refresh();
  loadSessions().catch(() => {});
}

// --- one turn -------------------------------------------------------------------------------------------------
function overlay(layout) {
  const o = el("div", { class: "overlay" });
  const place = (node, box) => {
    node.style.left = box[0] * 100 + "%"; node.style.top = box[1] * 100 + "%";
    node.style.width = (box[2] - box[0]) * 100 + "%"; node.style.height = (box[3] - box[1]) * 100 + "%";
  };
  for (const obj of layout.objects) {
    const b = el("div", { class: "box", title: obj.description || obj.name }, el("span", { text: obj.name }));
    place(b, obj.box); o.append(b);
  }
  for (const t of layout.texts) {
    const b = el("div", { class: "box text", title: t.content }, el("span", { text: "“" + t.content + "”" }));
    place(b, t.box); o.append(b);
  }
  return o;
}

function renderTurn(turn) {
  const pending = ["queued", "planning", "running"].includes(turn.status);
  const reply = el("div", { class: "reply" });
  const status = el("div", { class: "status " + turn.status, text: turn.status + (turn.error ? ": " + turn.error : "") });
  reply.append(status);
  if (pending) {
    const p = turn.progress || { done: 0, total: 0 };
    const bar = el("div", { class: "bar" }, el("div"));
    bar.firstChild.style.width = (p.total ? (100 * p.done) / p.total : 5) + "%";
    reply.append(bar);
    status.textContent = `${turn.status}… ${p.done}/${p.total || "?"} nodes` +
      (p.step ? `, step ${p.step}/${p.steps} of ${p.node}` : "");
    status.setAttribute("data-progress", "1");
  }
  if (turn.image_url) {
    const fig = el("div", { class: "figure" },
      el("img", { class: "result", src: withToken(turn.image_url), alt: "turn " + turn.index, onload: keepAtBottom }));
    if (turn.layout) fig.append(overlay(turn.layout));
    reply.append(fig);
  }
  if (turn.changes && turn.changes.length) reply.append(el("ul", { class: "changes" }, ...turn.changes.map((c) => el("li", { text: c }))));
  if (!pending && turn.run_id) {
    const ran = turn.reran.length ? turn.reran.map((n) => `<code>${escapeHtml(n)}</code>`).join(" ") : "nothing";
    const nodes = el("div", { class: "nodes" });
    nodes.innerHTML = `re-ran: ${ran} · ${turn.cached.length} from cache` + (turn.seconds != null ? ` · ${turn.seconds.toFixed(2)}s` : "");
    reply.append(nodes);
  }
  const loops = Object.entries(turn.loops || {});
  if (loops.length) {
    const trace = el("div", { class: "trace" }, el("div", { text: "refinement:" }));
    for (const [name, steps] of loops) {
      trace.append(el("div", { text: `${name}: ` + steps.map((s) => s.score.toFixed(3) + (s.kept ? "*" : "")).join(" → ") }));
    }
    reply.append(trace);
  }
  if (!pending && turn.status !== "rejected" && turn.layout) {
    reply.append(el("div", { class: "actions" },
      el("button", { type: "button", class: "branch", onclick: () => branchFrom(turn.index), text: "branch from here" })));
  }
  return el("div", { class: "turn", "data-index": String(turn.index), "data-status": turn.status },
    el("div", { class: "msg", text: turn.message }), reply);
}

// follow the conversation: when the newest turn's image arrives, scroll to it
function keepAtBottom(ev) {
  const conv = document.getElementById("conversation");
  const turn = ev.target.closest(".turn");
  if (turn && turn === conv.lastElementChild) conv.scrollTop = conv.scrollHeight;
}

function escapeHtml(s) { return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]); }

// --- refreshing -----------------------------------------------------------------------------------------------
async function refresh() {
  if (!state.session) return;
  const view = await api("GET", "/api/sessions/" + encodeURIComponent(state.session));
  document.getElementById("session-title").textContent = view.title + (view.parent_session ? `  (branch of turn ${view.parent_turn})` : "");
  const conv = document.getElementById("conversation");
  let pending = false;
  for (const turn of view.turns) {
    const key = `${turn.status}|${turn.updated}|${turn.progress ? turn.progress.done : ""}`;
    const old = conv.querySelector(`.turn[data-index="${turn.index}"]`);
    if (!old || state.rendered.get(turn.index) !== key) {
      const node = renderTurn(turn);
      if (old) old.replaceWith(node); else conv.append(node);
      if (node === conv.lastElementChild) conv.scrollTop = conv.scrollHeight;
      state.rendered.set(turn.index, key);
    }
    if (["queued", "planning", "running"].includes(turn.status)) {
      pending = true;
      if (turn.run_id) stream(turn);
    }
  }
  setBusy(pending);
  if (pending && !state.polling) state.polling = setTimeout(() => { state.polling = null; refresh().catch((e) => showError(e.message)); }, 400);
}

// live progress from the run's event stream; the polling above is the fallback and the source of truth
function stream(turn) {
  if (state.streams.has(turn.run_id) || typeof EventSource === "undefined") return;
  const es = new EventSource(withToken(`/api/runs/${turn.run_id}/events/stream`));
  state.streams.set(turn.run_id, es);
  let done = 0, total = 0;
  es.addEventListener("node", (e) => {
    const ev = JSON.parse(e.data);
    if (ev.event === "run_started" || ev.event === "loop_expanded") total += ev.nodes;
    if (["finished", "cached", "failed", "skipped"].includes(ev.event)) done += 1;
    const node = document.querySelector(`.turn[data-index="${turn.index}"] .status[data-progress]`);
    if (!node) return;
    node.textContent = ev.event === "progress"  // a model call's denoising steps
      ? `running… ${done}/${total} nodes, step ${ev.step}/${ev.total} of ${ev.node}`
      : `running… ${done}/${total} nodes (${ev.node || ev.event})`;
  });
  es.addEventListener("end", () => { es.close(); refresh().catch(() => {}); });
  es.onerror = () => { es.close(); };
}

function setBusy(busy) {
  const has = !!state.session;
  document.getElementById("message").disabled = !has;
  document.getElementById("send").disabled = !has || busy;
  document.getElementById("undo").disabled = !has || busy;
}

// --- actions --------------------------------------------------------------------------------------------------
async function startSession(ev) {
  ev.preventDefault();
  showError("");
  const prompt = document.getElementById("prompt").value.trim();
  if (!prompt) { showError("describe the picture first"); return; }
  try {
    const body = { seed: Number(document.getElementById("seed").value || 0) };
    if (prompt.startsWith("{")) body.blueprint = JSON.parse(prompt); else body.prompt = prompt;
    const view = await api("POST", "/api/sessions", body);
    await openSession(view.session_id);
  } catch (e) { showError(e.message); }
}

async function sendMessage(ev) {
  ev.preventDefault();
  showError("");
  const input = document.getElementById("message");
  const text = input.value.trim();
  if (!text || !state.session) return;
  try {
    setBusy(true);
    await api("POST", `/api/sessions/${encodeURIComponent(state.session)}/messages`, { text });
    input.value = "";
    await refresh();
  } catch (e) { showError(e.message); setBusy(false); }
}

async function undo() {
  showError("");
  try { await api("POST", `/api/sessions/${encodeURIComponent(state.session)}/undo`, {}); await refresh(); }
  catch (e) { showError(e.message); }
}

async function branchFrom(index) {
  showError("");
  try {
    const view = await api("POST", `/api/sessions/${encodeURIComponent(state.session)}/branch`, { turn: index });
    await openSession(view.session_id);
  } catch (e) { showError(e.message); }
}

document.getElementById("new-session").addEventListener("submit", startSession);
document.getElementById("composer").addEventListener("submit", sendMessage);
document.getElementById("undo").addEventListener("click", undo);
document.getElementById("overlay-toggle").addEventListener("change", (e) => document.body.classList.toggle("no-overlay", !e.target.checked));

(async () => {
  try {
    await loadSessions();
    const m = location.hash.match(/session=([A-Za-z0-9_-]+)/);
    if (m) await openSession(m[1]);
  } catch (e) { showError(e.message); }
})();
