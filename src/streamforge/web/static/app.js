// StreamForge web page: send a message to POST /chat, read the Server-Sent Events from a fetch stream
// (EventSource can only GET), and render each frame as it arrives. A frame whose id is already on
// screen updates that component in place, which is how progressive tables and charts fill in.
"use strict";

const STORAGE_KEY = "streamforge.conversation.v1";
const API_KEY_STORAGE = "streamforge.apiKey";
const MAX_SAVED_MESSAGES = 200;
const numberFormat = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });

const state = {
  sessionId: null,
  conversation: [], // [{role: "user" | "assistant" | "notice" | "error", text}], mirrored in localStorage
  components: new Map(), // component id -> {article, frame}
  controller: null, // AbortController of the request in flight, if any
};

const ui = {
  form: document.getElementById("ask"),
  input: document.getElementById("message"),
  send: document.getElementById("send"),
  conversation: document.getElementById("conversation"),
  dashboard: document.getElementById("dashboard"),
  empty: document.getElementById("empty"),
  newConversation: document.getElementById("new-conversation"),
  keyRow: document.getElementById("key-row"),
  apiKey: document.getElementById("api-key"),
};

// A server with API keys on answers 401 until the person gives a key; it stays in this browser.
function authHeaders() {
  let key = "";
  try {
    key = localStorage.getItem(API_KEY_STORAGE) || "";
  } catch {
    // storage blocked: no key
  }
  key = key || ui.apiKey.value.trim();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

function askForKey() {
  ui.keyRow.hidden = false;
  ui.apiKey.focus();
}

// ---------------------------------------------------------------- small DOM helpers

function h(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function formatValue(value) {
  if (value === null || value === undefined) return "—";
  return typeof value === "number" ? numberFormat.format(value) : String(value);
}

// ---------------------------------------------------------------- conversation and storage

function saveState() {
  try {
    const saved = { sessionId: state.sessionId, conversation: state.conversation.slice(-MAX_SAVED_MESSAGES) };
    localStorage.setItem(STORAGE_KEY, JSON.stringify(saved));
  } catch {
    // Private mode or a full quota: the page still works, it just won't survive a reload.
  }
}

function loadState() {
  try {
    return JSON.parse(localStorage.getItem(STORAGE_KEY) || "null");
  } catch {
    return null;
  }
}

function showMessage(role, text) {
  const item = h("li", `message message--${role}`);
  const who = { user: "You", assistant: "StreamForge", notice: "Note", error: "Problem" }[role];
  item.append(h("span", "message__who", who), h("p", "message__text", text));
  if (role === "error") item.setAttribute("role", "alert");
  ui.conversation.append(item);
  item.scrollIntoView({ block: "nearest" });
}

function addMessage(role, text) {
  state.conversation.push({ role, text });
  showMessage(role, text);
  saveState();
}

// ---------------------------------------------------------------- dashboard: turns and components

// Each message gets its own section on the dashboard, newest first, headed by what was asked. KPI cards
// go in a strip above the charts and tables, as dashboards usually put them, whatever order they came in.
function startTurn(message) {
  const section = h("section", "turn");
  section.setAttribute("aria-label", `Answer to: ${message}`);
  const cards = h("div", "turn__cards");
  const grid = h("div", "turn__grid");
  section.append(h("h3", "turn__question", message), cards, grid);
  ui.empty.hidden = true;
  ui.dashboard.querySelector("h2").after(section);
  return { section, cards, grid, ids: new Set() };
}

function finishTurn(turn) {
  turn.section.removeAttribute("aria-busy");
  if (!turn.section.querySelector(".component")) turn.section.remove(); // nothing arrived: the error says why
  ui.empty.hidden = state.components.size > 0;
}

function badgeFor(data) {
  return data.sample
    ? h("span", "badge badge--sample", "sample data")
    : h("span", "badge badge--db", "from database");
}

function sqlDisclosure(source) {
  const details = h("details", "sql");
  details.append(h("summary", null, "SQL"));
  const pre = h("pre", "sql__code");
  pre.append(h("code", null, source.sql));
  details.append(pre);
  if (source.table) details.append(h("p", "sql__meta", `Table: ${source.table}`));
  return details;
}

function createArticle(frame) {
  const article = h("article", `component component--${frame.type}`);
  article.dataset.id = frame.id;
  article.dataset.type = frame.type;
  const header = h("header", "component__header");
  header.append(h("h4", "component__title"), h("span", "component__badge"));
  article.append(
    header,
    h("p", "component__description"),
    h("div", "component__body"),
    h("div", "skeleton"), // visible only while the frame is partial (see app.css)
    h("div", "component__footer"),
  );
  article.querySelector(".skeleton").setAttribute("aria-hidden", "true");
  return article;
}

function renderCard(body, data) {
  body.replaceChildren();
  const value = h("p", "card__value");
  const kind = typeof data.value === "number" ? "card__number" : "card__number card__number--text";
  value.append(h("span", kind, formatValue(data.value)));
  if (data.unit) value.append(h("span", "card__unit", data.unit));
  body.append(value);
  if (data.delta) {
    // The first signed number decides the colour: "+4.2%", or "2025-12: -1.3% vs 2025-11".
    const sign = (data.delta.match(/(?:^|\s|\()([+\-−])\d/) || [])[1];
    const trend = sign === "+" ? "up" : sign ? "down" : "flat";
    const delta = h("p", `card__delta card__delta--${trend}`, data.delta);
    delta.setAttribute("aria-label", `Change: ${data.delta}`);
    body.append(delta);
  }
}

function renderTable(body, data) {
  // The wrapper is kept between updates so a reader's scroll position survives new rows.
  let wrap = body.querySelector(".table-wrap");
  if (!wrap) {
    wrap = h("div", "table-wrap");
    wrap.tabIndex = 0; // a scrollable region must be reachable by keyboard
    wrap.setAttribute("role", "region");
    body.replaceChildren(wrap);
  }
  wrap.setAttribute("aria-label", data.title || "Table");
  const table = h("table", "table");
  const isNumber = (cell) => cell === null || typeof cell === "number";
  const numeric = data.columns.map((_, c) => data.rows.length > 0 && data.rows.every((r) => isNumber(r[c])));
  // Years and ids are numbers but not quantities: "2024", not "2,024".
  const plain = data.columns.map((name) => /(^|[\s_])(year|id)$/i.test(name));
  const headRow = h("tr");
  data.columns.forEach((name, c) => {
    const th = h("th", numeric[c] ? "num" : null, name);
    th.scope = "col";
    headRow.append(th);
  });
  const thead = h("thead");
  thead.append(headRow);
  const tbody = h("tbody");
  for (const row of data.rows) {
    const tr = h("tr");
    row.forEach((cell, c) => {
      const text = plain[c] ? String(cell ?? "—") : formatValue(cell);
      tr.append(h("td", numeric[c] ? "num" : null, text));
    });
    tbody.append(tr);
  }
  table.append(thead, tbody);
  wrap.replaceChildren(table);
}

const CHART_COLORS = ["#2563eb", "#f97316", "#16a34a", "#9333ea", "#dc2626", "#0891b2", "#ca8a04", "#db2777"];

function chartTraces(data) {
  if (data.chart_type === "pie") {
    const series = data.series[0];
    return [{
      type: "pie", labels: data.x_axis, values: series.values, name: series.label, hole: 0.45,
      sort: false, textinfo: "percent", hovertemplate: "%{label}: %{value:,}<br>%{percent}<extra></extra>",
    }];
  }
  return data.series.map((series) => {
    if (data.chart_type === "scatter" && data.x_axis.length) {
      // dots over a category axis (e.g. counts per gender)
      return { type: "scatter", mode: "markers", name: series.label, x: data.x_axis, y: series.values };
    }
    if (data.chart_type === "scatter") {
      const points = series.values;
      const [x, y] = [points.map((p) => p[0]), points.map((p) => p[1])];
      return { type: "scatter", mode: "markers", name: series.label, x, y };
    }
    const [x, y] = [data.x_axis, series.values];
    if (data.chart_type === "bar") return { type: "bar", name: series.label, x, y };
    const trace = { type: "scatter", mode: "lines+markers", name: series.label, x, y };
    // An area chart is a filled line; each series fills to zero (not stacked), so values keep meaning.
    if (data.chart_type === "area") trace.fill = "tozeroy";
    return trace;
  });
}

function chartLayout(data) {
  const axisTitle = (text) => ({
    title: { text: text || "" }, automargin: true, gridcolor: "#e5e7eb", zeroline: false,
  });
  return {
    autosize: true,
    height: 300,
    margin: { l: 48, r: 16, t: 36, b: 40 },
    paper_bgcolor: "rgba(0,0,0,0)",
    plot_bgcolor: "rgba(0,0,0,0)",
    font: { family: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size: 12, color: "#1f2937" },
    colorway: CHART_COLORS,
    showlegend: true,
    legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom" },
    hovermode: data.chart_type === "pie" || data.chart_type === "scatter" ? "closest" : "x unified",
    xaxis: axisTitle(data.x_label),
    yaxis: axisTitle(data.y_label),
  };
}

function renderChart(body, data) {
  let plot = body.querySelector(".chart");
  if (!plot) {
    plot = h("div", "chart");
    plot.setAttribute("role", "figure");
    body.replaceChildren(plot);
  }
  const points = data.chart_type === "scatter" && !data.x_axis.length ? (data.series[0]?.values.length ?? 0) : data.x_axis.length;
  const summary = `${data.title}, ${data.series.length} series, ${points} points`;
  plot.setAttribute("aria-label", `${data.chart_type} chart: ${summary}`);
  if (!window.Plotly) {
    plot.textContent = "The chart library did not load, so this chart cannot be drawn. Reload to try again.";
    return;
  }
  // Plotly.react diffs against what is drawn, so a progressive update redraws only what changed.
  // The page never talks to another host, so plotly's "Share chart" (upload to Plotly Cloud) is off.
  window.Plotly.react(plot, chartTraces(data), chartLayout(data), {
    responsive: true, displaylogo: false, showSendToCloud: false,
    modeBarButtonsToRemove: ["lasso2d", "select2d"],
  });
}

function renderComponent(frame, turn) {
  let entry = state.components.get(frame.id);
  if (!entry) {
    entry = { article: createArticle(frame), frame };
    state.components.set(frame.id, entry);
    (frame.type === "SimpleComponent" ? turn.cards : turn.grid).append(entry.article);
  }
  const { article } = entry;
  const data = frame.data || {};
  entry.frame = frame;
  turn.ids.add(frame.id);

  article.querySelector(".component__title").textContent = data.title || "Untitled";
  article.querySelector(".component__badge").replaceChildren(badgeFor(data));
  const description = article.querySelector(".component__description");
  description.textContent = data.description || "";
  description.hidden = !data.description;

  const body = article.querySelector(".component__body");
  if (frame.type === "SimpleComponent") renderCard(body, data);
  else if (frame.type === "TableA") renderTable(body, data);
  else if (frame.type === "ChartComponent") renderChart(body, data);

  // Keep an open SQL disclosure open across updates: rebuild it only if the statement changed.
  const footer = article.querySelector(".component__footer");
  const sql = data.source && data.source.sql;
  if ((footer.dataset.sql || "") !== (sql || "")) {
    footer.replaceChildren(...(sql ? [sqlDisclosure(data.source)] : []));
    footer.dataset.sql = sql || "";
  }

  const partial = frame.partial === true;
  article.classList.toggle("is-partial", partial);
  if (partial) article.setAttribute("aria-busy", "true");
  else article.removeAttribute("aria-busy");
}

function removeComponent(id) {
  const entry = state.components.get(id);
  if (!entry) return;
  const plot = entry.article.querySelector(".chart");
  if (plot && window.Plotly) window.Plotly.purge(plot);
  entry.article.remove();
  state.components.delete(id);
}

function clearDashboard() {
  for (const id of [...state.components.keys()]) removeComponent(id);
  ui.dashboard.querySelectorAll(".turn").forEach((section) => section.remove());
  ui.empty.hidden = false;
}

// ---------------------------------------------------------------- reading the stream

// Yields {event, data} for each SSE event of a fetch response body. sse-starlette ends lines with
// CRLF; only complete "\r\n" pairs are normalised, so a CR at the end of one chunk waits for its LF.
async function* sseEvents(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (value) buffer = (buffer + value).replace(/\r\n/g, "\n");
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const event = parseSseBlock(buffer.slice(0, cut));
      buffer = buffer.slice(cut + 2);
      if (event) yield event;
    }
    if (done) break;
  }
  const last = parseSseBlock(buffer);
  if (last) yield last;
}

function parseSseBlock(block) {
  let event = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue; // comments are keep-alive pings
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
  }
  return data.length ? { event, data: JSON.parse(data.join("\n")) } : null;
}

// ---------------------------------------------------------------- errors in plain words

async function readError(response) {
  try {
    const body = await response.json();
    if (body && body.error) return body.error;
  } catch {
    // Not JSON (a proxy's HTML page, say): fall through to the status line.
  }
  return { code: `http_${response.status}`, message: response.statusText || "no details" };
}

function describeHttpError(status, error) {
  if (error.code === "message_too_long") {
    // The server says '"message" has 1500 characters; the limit is 1000': keep the numbers, drop the JSON.
    const [count, limit] = (error.message.match(/\d+/g) || []).slice(-2);
    const detail = limit ? ` It has ${count} characters; the limit is ${limit}.` : "";
    return `Your message is too long.${detail} Please shorten it and send again.`;
  }
  if (error.code === "empty_message") return "Please type a message first.";
  if (status === 429) return "Too many requests right now. Please wait a moment and try again.";
  if (status >= 500) return `The server had a problem answering (error ${status}). Please try again.`;
  return `The server could not accept that request: ${error.message}.`;
}

function describeEnd(frame, count) {
  const what = count === 1 ? "1 component" : `${count} components`;
  if (frame.provider === "fallback") return `The planner could not answer, so a fallback is shown (${what}).`;
  const how = frame.route === "pattern" ? "sample data, pattern mode" : `the ${frame.provider} planner`;
  const cached = frame.from_cache ? ", from cache" : "";
  const time = `${Math.round(frame.processing_time_ms)} ms`;
  return `Here ${count === 1 ? "is" : "are"} ${what} (${how}${cached}, ${time}).`;
}

// ---------------------------------------------------------------- sending

function postChat(message, sessionId, signal) {
  const body = { message };
  if (sessionId) body.session_id = sessionId;
  return fetch("/chat", {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "text/event-stream", ...authHeaders() },
    body: JSON.stringify(body),
    signal,
  });
}

function setBusy(busy) {
  ui.send.disabled = busy;
  ui.send.textContent = busy ? "Working…" : "Send";
  ui.form.setAttribute("aria-busy", String(busy));
}

async function send(message) {
  if (state.controller) return; // one answer at a time
  const controller = new AbortController();
  state.controller = controller;
  setBusy(true);
  addMessage("user", message);
  const turn = startTurn(message);
  turn.section.setAttribute("aria-busy", "true");
  try {
    let response = await postChat(message, state.sessionId, controller.signal);
    let error = response.ok ? null : await readError(response);
    if (error && error.code === "unknown_session") {
      // The server forgot this conversation (a restart, say): carry on in a new one, and say so.
      addMessage("notice", "Your earlier conversation is no longer on the server, so a new one was started.");
      state.sessionId = null;
      response = await postChat(message, null, controller.signal);
      error = response.ok ? null : await readError(response);
    }
    if (error && error.code === "unauthorized") {
      addMessage("error", "This server needs an API key. Enter it below the message box and send again.");
      askForKey();
      return;
    }
    if (error) {
      addMessage("error", describeHttpError(response.status, error));
      return;
    }
    state.sessionId = response.headers.get("X-Session-Id") || state.sessionId;
    saveState();
    await readAnswer(response, turn);
  } catch (err) {
    if (err.name === "AbortError") return; // "New conversation" was pressed
    addMessage("error", "Could not reach StreamForge. Check your connection and try again.");
  } finally {
    if (state.controller === controller) state.controller = null;
    finishTurn(turn);
    setBusy(false);
  }
}

async function readAnswer(response, turn) {
  let ended = false;
  for await (const { data: frame } of sseEvents(response)) {
    if (frame.type === "end") {
      ended = true;
      if (frame.session_id) state.sessionId = frame.session_id;
      addMessage(frame.provider === "fallback" ? "notice" : "assistant", describeEnd(frame, turn.ids.size));
    } else if (frame.type === "error") {
      const message = (frame.error && frame.error.message) || "Something went wrong while answering.";
      addMessage("error", message);
    } else if (frame.type === "remove") {
      removeComponent(frame.id);
      turn.ids.delete(frame.id);
    } else if (frame.id && frame.data) {
      renderComponent(frame, turn);
    }
  }
  if (!ended) addMessage("error", "The answer stopped before it was complete. Please try again.");
}

// ---------------------------------------------------------------- restoring after a reload

async function restore() {
  const saved = loadState();
  if (!saved || !saved.sessionId) return;
  state.sessionId = saved.sessionId;
  state.conversation = Array.isArray(saved.conversation) ? saved.conversation : [];
  state.conversation.forEach((m) => showMessage(m.role, m.text));
  let response;
  try {
    response = await fetch(`/sessions/${encodeURIComponent(saved.sessionId)}`, { headers: authHeaders() });
  } catch {
    addMessage("error", "Could not reach StreamForge to load your earlier dashboard. Check your connection and reload.");
    return;
  }
  if (response.status === 401) {
    addMessage("notice", "Enter the API key below the message box to continue your conversation.");
    askForKey();
    return;
  }
  if (!response.ok) {
    // 404: the server no longer has it (expired or restarted); start a fresh conversation.
    startFresh();
    addMessage("notice", "Your previous conversation has expired, so a new one was started.");
    return;
  }
  const session = await response.json();
  const frames = new Map(session.components.filter((f) => f.id && f.data).map((f) => [f.id, f]));
  for (const turnInfo of session.messages) {
    const turn = startTurn(turnInfo.message);
    for (const id of turnInfo.component_ids) {
      // A stored frame is the last one sent; if the stream was cut off it may still say partial.
      if (frames.has(id)) renderComponent({ ...frames.get(id), partial: false }, turn);
    }
    finishTurn(turn);
  }
}

function startFresh() {
  if (state.controller) state.controller.abort();
  state.controller = null;
  state.sessionId = null;
  state.conversation = [];
  ui.conversation.replaceChildren();
  clearDashboard();
  setBusy(false);
  try {
    localStorage.removeItem(STORAGE_KEY);
  } catch {
    // nothing stored, nothing to remove
  }
}

// ---------------------------------------------------------------- wiring

function submit() {
  const message = ui.input.value.trim();
  if (!message) {
    ui.input.focus();
    return;
  }
  if (state.controller) return;
  ui.input.value = "";
  send(message);
}

ui.form.addEventListener("submit", (event) => {
  event.preventDefault();
  submit();
});

ui.input.addEventListener("keydown", (event) => {
  // Enter sends; Shift+Enter adds a line; an IME composition's Enter confirms the text instead.
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    submit();
  }
});

document.querySelectorAll("[data-ask]").forEach((chip) => {
  chip.addEventListener("click", () => {
    if (!state.controller) send(chip.dataset.ask);
  });
});

ui.apiKey.addEventListener("change", () => {
  try {
    localStorage.setItem(API_KEY_STORAGE, ui.apiKey.value.trim());
  } catch {
    // storage blocked: the key lasts as long as the page
  }
});

// Starting over means the old conversation is done: tell the server now rather than let it idle
// until it expires. Best effort: the page does not wait, and a failure changes nothing here.
function forgetOnServer(sessionId) {
  if (!sessionId) return;
  fetch(`/sessions/${encodeURIComponent(sessionId)}`, { method: "DELETE", headers: authHeaders() }).catch(
    () => {},
  );
}

ui.newConversation.addEventListener("click", () => {
  const finished = state.controller ? null : state.sessionId; // mid-answer, the turn is still being saved
  startFresh();
  forgetOnServer(finished);
  ui.input.focus();
});

restore();
