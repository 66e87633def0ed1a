// The roo-daemon dashboard: sessions, their tasks, a task's live transcript,
// its pending ask, a continue box and its diff. Plain DOM, no framework, no
// build step; every text is set with textContent (never parsed as HTML), and
// the page's Content-Security-Policy allows no inline script.
//
// Two WebSocket connections: the overview one follows every event live (no
// replay) to refresh the lists; the transcript one follows the selected task
// from its first event (after=0) and, after a disconnect, resumes with
// after = the last seq it rendered, so nothing is shown twice or skipped. A
// connection is one stream on the daemon (an event is sent at most once per
// connection), so the transcript gets a connection of its own.
"use strict";

(function () {
  const KEY = "roo-daemon-key";
  const FINAL = new Set(["completed", "failed", "cancelled", "interrupted"]);
  const QUIET_TOOLS = new Set(["attempt_completion", "ask_followup_question"]);
  const base = new URL(".", window.location.href); // relative: works behind a path prefix
  const $ = (id) => document.getElementById(id);

  const state = {
    sessions: [],
    sessionId: null,
    taskId: null,
    task: null,
  };

  // -- small helpers ----------------------------------------------------------

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (name === "class") node.className = value;
      else if (name.startsWith("data-")) node.setAttribute(name, value);
      else node[name] = value;
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  function shorten(text, limit) {
    const lines = String(text).split("\n");
    let first = lines[0];
    if (first.length > limit) first = first.slice(0, limit - 1) + "…";
    return first + (lines.length > 1 ? ` (+${lines.length - 1} lines)` : "");
  }

  function shortArgs(args) {
    return shorten(
      Object.entries(args || {})
        .map(([k, v]) => `${k}=${shorten(typeof v === "string" ? v : JSON.stringify(v), 48)}`)
        .join(", "),
      160,
    );
  }

  function cost(usd) {
    return "$" + Number(usd || 0).toFixed(4);
  }

  function token() {
    return window.sessionStorage.getItem(KEY) || "";
  }

  function showError(message) {
    $("error").textContent = message || "";
  }

  function debounce(fn, ms) {
    let timer = null;
    return () => {
      if (timer === null) timer = window.setTimeout(() => { timer = null; fn(); }, ms);
    };
  }

  // -- REST ---------------------------------------------------------------------

  class NeedsKey extends Error {}

  async function call(method, path, body, accept) {
    const headers = { Accept: accept || "application/json" };
    if (token()) headers.Authorization = "Bearer " + token();
    const init = { method, headers, cache: "no-store" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const r = await fetch(new URL(path, base), init);
    const type = r.headers.get("Content-Type") || "";
    const data = type.includes("json") ? await r.json() : await r.text();
    if (r.status === 401) {
      showLogin(token() ? "That key was refused." : "This daemon needs an API key.");
      throw new NeedsKey(data.detail || "unauthorized");
    }
    if (!r.ok) throw new Error((data && (data.detail || data.title)) || `HTTP ${r.status}`);
    return data;
  }

  const sessionPath = (sid) => `api/v1/sessions/${encodeURIComponent(sid)}`;
  const taskPath = (sid, tid) => `${sessionPath(sid)}/tasks/${encodeURIComponent(tid)}`;

  // -- WebSocket ----------------------------------------------------------------

  // One stream that authenticates (browsers cannot send headers on /ws: the
  // key goes in the first frame), subscribes, and reconnects after a drop,
  // resuming after the last seq it handled when `resume` is set.
  class Stream {
    constructor(filter, resume, onEvent, onState) {
      this.filter = filter;
      this.resume = resume;
      this.onEvent = onEvent;
      this.onState = onState || (() => {});
      this.lastSeq = resume ? 0 : null;
      this.closed = false;
      this.retry = 500;
      this.open();
    }

    open() {
      const url = new URL("ws", base);
      url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
      const ws = (this.ws = new WebSocket(url));
      ws.onopen = () => {
        if (token()) ws.send(JSON.stringify({ op: "auth", token: token() }));
        const frame = { op: "subscribe", id: "s", ...this.filter };
        if (this.lastSeq !== null) frame.after = this.lastSeq;
        ws.send(JSON.stringify(frame));
      };
      ws.onmessage = (msg) => {
        const frame = JSON.parse(msg.data);
        if (frame.event === "subscribed") {
          this.retry = 500;
          this.onState(true);
        } else if (frame.event === "error") {
          showError(`event stream: ${frame.data.detail}`);
        } else if (typeof frame.seq === "number") {
          if (this.lastSeq !== null) {
            if (frame.seq <= this.lastSeq) return; // never render one twice
            this.lastSeq = frame.seq;
          }
          this.onEvent(frame);
        }
      };
      ws.onclose = (ev) => {
        this.onState(false);
        if (this.closed) return;
        if (ev.code === 1008) {
          showLogin("The event stream refused the key.");
          return;
        }
        window.setTimeout(() => { if (!this.closed) this.open(); }, this.retry);
        this.retry = Math.min(this.retry * 2, 8000);
      };
    }

    close() {
      this.closed = true;
      this.ws.close();
    }
  }

  let overview = null;
  let transcript = null;

  function setLive(live) {
    const badge = $("connection");
    badge.textContent = live ? "live" : "reconnecting…";
    badge.classList.toggle("live", live);
  }

  // -- login --------------------------------------------------------------------

  function showLogin(message) {
    $("login").hidden = false;
    $("app").hidden = true;
    $("login-message").textContent = message;
    $("key").focus();
    if (overview) { overview.close(); overview = null; }
    if (transcript) { transcript.close(); transcript = null; }
  }

  $("login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    window.sessionStorage.setItem(KEY, $("key").value.trim());
    $("key").value = "";
    start();
  });

  $("logout").addEventListener("click", () => {
    window.sessionStorage.removeItem(KEY);
    showLogin("Key forgotten.");
  });

  // -- sessions, tasks, inbox -----------------------------------------------------

  async function loadSessions() {
    const page = await call("GET", "api/v1/sessions?limit=200");
    state.sessions = page.items;
    const list = $("sessions");
    list.replaceChildren(
      ...page.items.map((s) => {
        const item = el(
          "li",
          { "data-session-id": s.id, class: s.id === state.sessionId ? "selected" : "" },
          s.name || s.id,
          el("span", { class: "sub" }, `${s.mode} · ${s.provider} (${s.provider_kind})`),
        );
        item.addEventListener("click", () => selectSession(s.id));
        return item;
      }),
    );
    if (!page.items.length) list.append(el("li", { class: "hint" }, "No sessions yet."));
    const current = page.items.find((x) => x.id === state.sessionId);
    if (current) {
      // A PATCH from elsewhere (session.updated) shows here too.
      showPolicy(current);
      $("session-meta").textContent = `${current.workspace} · auto-approve: ${autoApproved(current.auto_approve)}`;
    }
  }

  async function loadInbox() {
    const page = await call("GET", "api/v1/tasks?status=waiting&limit=50");
    const list = $("inbox");
    list.replaceChildren(
      ...page.items.map((t) => {
        const ask = t.pending_ask || {};
        const item = el(
          "li",
          { "data-task-id": t.id },
          shorten(t.prompt, 60),
          el("span", { class: "sub" }, `${ask.kind || "ask"}${ask.tool ? ": " + ask.tool : ""}`),
        );
        item.addEventListener("click", () => selectSession(t.session_id, t.id));
        return item;
      }),
    );
    if (!page.items.length) list.append(el("li", { class: "hint" }, "Nothing waits."));
  }

  async function loadTasks() {
    const body = $("tasks").tBodies[0];
    if (!state.sessionId) { body.replaceChildren(); return; }
    const page = await call("GET", `${sessionPath(state.sessionId)}/tasks?limit=100`);
    body.replaceChildren(
      ...page.items.map((t) => {
        const row = el(
          "tr",
          { "data-task-id": t.id, class: t.id === state.taskId ? "selected" : "" },
          el("td", {}, shorten(t.prompt, 80), el("span", { class: "sub" }, `${t.id} · ${t.mode}`)),
          el("td", { class: `status status-${t.status}` }, t.status),
          el("td", { class: "num" }, `${t.usage.tokens_in} / ${t.usage.tokens_out}`),
          el("td", { class: "num" }, cost(t.usage.cost_usd)),
        );
        row.addEventListener("click", () => selectTask(t.id));
        return row;
      }),
    );
    if (!page.items.length) body.append(el("tr", {}, el("td", { class: "hint" }, "No tasks yet.")));
  }

  async function selectSession(sessionId, taskId) {
    state.sessionId = sessionId;
    const s = state.sessions.find((x) => x.id === sessionId);
    $("session-title").textContent = s ? s.name || s.id : sessionId;
    $("session-meta").textContent = s ? `${s.workspace} · auto-approve: ${autoApproved(s.auto_approve)}` : "";
    $("new-task").hidden = false;
    showPolicy(s);
    for (const li of $("sessions").children) li.classList.toggle("selected", li.dataset.sessionId === sessionId);
    writeHash();
    if (taskId) await selectTask(taskId);
    else await loadTasks();
  }

  // The session's auto-approval, changed with PATCH: its live tasks see the
  // new policy at their next tool call (a waiting ask still needs an answer).
  function showPolicy(session) {
    const box = $("auto-approve");
    box.hidden = !session;
    if (!session) return;
    for (const input of box.querySelectorAll("input[data-policy]")) {
      input.checked = Boolean(session.auto_approve[input.dataset.policy]);
      input.disabled = false;
    }
  }

  $("auto-approve").addEventListener("change", async (ev) => {
    const input = ev.target;
    if (!input.dataset.policy || !state.sessionId) return;
    input.disabled = true;
    try {
      const s = await call("PATCH", sessionPath(state.sessionId), { auto_approve: { [input.dataset.policy]: input.checked } });
      state.sessions = state.sessions.map((x) => (x.id === s.id ? s : x));
      if (s.id === state.sessionId) {
        showPolicy(s);
        $("session-meta").textContent = `${s.workspace} · auto-approve: ${autoApproved(s.auto_approve)}`;
      }
      showError("");
    } catch (e) {
      input.checked = !input.checked;
      input.disabled = false;
      showError(`auto-approve: ${e.message}`);
    }
  });

  function autoApproved(policy) {
    const on = Object.entries(policy || {}).filter(([, v]) => v === true).map(([k]) => k);
    return on.length ? on.join(", ") : "nothing";
  }

  // -- one task -----------------------------------------------------------------

  let streamed = null; // the assistant block text deltas are going into
  let thinking = null; // the block the turn's reasoning deltas are going into

  async function selectTask(taskId) {
    state.taskId = taskId;
    state.task = null;
    writeHash();
    if (transcript) transcript.close();
    streamed = null;
    thinking = null;
    $("transcript").replaceChildren();
    $("diff").textContent = "";
    $("diff-box").open = false;
    showError("");
    $("task-pane").hidden = false;
    await Promise.all([loadTasks(), loadTask()]);
    transcript = new Stream({ task_id: taskId }, true, onTaskEvent, setLive);
  }

  async function loadTask() {
    if (!state.sessionId || !state.taskId) return;
    const t = await call("GET", taskPath(state.sessionId, state.taskId));
    if (t.id !== state.taskId) return; // another task was selected meanwhile
    state.task = t;
    $("task-title").textContent = shorten(t.prompt, 120);
    const meta = $("task-meta");
    meta.replaceChildren(
      el("span", { id: "task-status", class: `status status-${t.status}` }, t.status),
      ` · ${t.mode} · ${t.provider} (${t.provider_kind}) · tokens ${t.usage.tokens_in} in / ${t.usage.tokens_out} out · `,
      el("span", { id: "task-cost" }, cost(t.usage.cost_usd)),
      t.result ? ` · result: ${shorten(t.result, 200)}` : "",
      t.error ? ` · error: ${t.error.code}: ${shorten(t.error.message, 200)}` : "",
    );
    $("cancel").disabled = FINAL.has(t.status);
    showAsk(t.status === "waiting" ? t.pending_ask : null);
  }

  function showAsk(ask) {
    const box = $("ask");
    box.hidden = !ask;
    if (!ask) return;
    box.dataset.askId = ask.id;
    let text;
    if (ask.kind === "tool") text = `Approve ${ask.tool}(${shortArgs(ask.args)})?`;
    else if (ask.kind === "command") text = `Run: ${ask.command}`;
    else if (ask.kind === "followup") text = ask.question || "The agent asks a question.";
    else if (ask.kind === "mcp") text = `Approve ${ask.server}: ${ask.tool || ask.uri}?`;
    else text = `${ask.kind}: ${ask.message || ""}`;
    $("ask-text").textContent = text;
    $("ask-diff").hidden = !ask.diff;
    renderDiff($("ask-diff"), ask.diff || "");
    const suggestions = $("ask-suggestions");
    suggestions.replaceChildren(
      ...(ask.suggestions || []).map((s) => {
        const b = el("button", { type: "button", class: "suggestion" }, s);
        b.addEventListener("click", () => respond(true, s));
        return b;
      }),
    );
    $("ask-input").value = "";
    for (const id of ["approve", "deny", "answer"]) $(id).disabled = false;
    $("answer").hidden = ask.kind !== "followup";
  }

  async function respond(approve, text) {
    const ask = $("ask").dataset.askId;
    for (const id of ["approve", "deny", "answer"]) $(id).disabled = true;
    const body = { ask_id: ask, approve };
    if (text) body.text = text;
    try {
      await call("POST", `${taskPath(state.sessionId, state.taskId)}/responses`, body);
      showError("");
    } catch (e) {
      showError(`answer: ${e.message}`);
    }
    await loadTask();
  }

  $("approve").addEventListener("click", () => respond(true, $("ask-input").value.trim()));
  $("deny").addEventListener("click", () => respond(false, $("ask-input").value.trim()));
  $("answer").addEventListener("click", () => respond(true, $("ask-input").value.trim()));

  $("continue-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const text = $("continue-text").value.trim();
    if (!text) return;
    try {
      await call("POST", `${taskPath(state.sessionId, state.taskId)}/messages`, { text });
      $("continue-text").value = "";
      showError("");
    } catch (e) {
      showError(`continue: ${e.message}`);
    }
  });

  $("cancel").addEventListener("click", async () => {
    try {
      await call("DELETE", taskPath(state.sessionId, state.taskId));
    } catch (e) {
      showError(`cancel: ${e.message}`);
    }
  });

  $("new-task").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const prompt = $("new-prompt").value.trim();
    if (!prompt || !state.sessionId) return;
    try {
      const t = await call("POST", `${sessionPath(state.sessionId)}/tasks`, { prompt });
      $("new-prompt").value = "";
      await selectTask(t.id);
    } catch (e) {
      showError(`new task: ${e.message}`);
    }
  });

  $("diff-box").addEventListener("toggle", async () => {
    if (!$("diff-box").open) return;
    const pre = $("diff");
    pre.textContent = "loading…";
    try {
      const diff = await call("GET", `${taskPath(state.sessionId, state.taskId)}/diff`, undefined, "text/x-diff");
      renderDiff(pre, diff || "(no changes)");
    } catch (e) {
      pre.textContent = `No diff: ${e.message}`;
    }
  });

  function renderDiff(pre, text) {
    pre.replaceChildren(
      ...String(text).split("\n").map((line) => {
        let cls = "";
        if (line.startsWith("+") && !line.startsWith("+++")) cls = "add";
        else if (line.startsWith("-") && !line.startsWith("---")) cls = "del";
        else if (line.startsWith("@@")) cls = "hunk";
        return el("span", { class: cls }, line + "\n");
      }),
    );
  }

  // -- the transcript -------------------------------------------------------------

  const refreshTask = debounce(() => loadTask().catch(() => {}), 150);

  function line(frame, cls, ...children) {
    const node = el("div", { class: `ev ${cls}`, "data-seq": String(frame.seq), "data-event": frame.event }, ...children);
    $("transcript").append(node);
    node.scrollIntoView({ block: "nearest" });
    return node;
  }

  function onTaskEvent(frame) {
    if (frame.task_id !== state.taskId) return;
    const d = frame.data || {};
    switch (frame.event) {
      case "message.delta":
        if (!streamed) streamed = line(frame, "ev-assistant");
        streamed.append(document.createTextNode(d.text || ""));
        streamed.dataset.seq = String(frame.seq);
        break;
      case "message.reasoning":
        // The model's thinking: shown apart from its answer, in its own block.
        if (!thinking) thinking = line(frame, "ev-reasoning");
        thinking.append(document.createTextNode(d.text || ""));
        thinking.dataset.seq = String(frame.seq);
        break;
      case "message":
        if (!streamed && d.text) line(frame, "ev-assistant", d.text);
        streamed = null;
        thinking = null;
        break;
      case "message.reset":
        if (streamed) streamed.textContent = "";
        if (thinking) thinking.textContent = "";
        break;
      case "message.user":
        streamed = null;
        line(frame, "ev-user", "you: ", d.text || "", d.image_count ? ` (+${d.image_count} images)` : "");
        break;
      case "tool.call":
        streamed = null;
        if (!QUIET_TOOLS.has(d.tool)) line(frame, "ev-tool", `▸ ${d.tool}(${shortArgs(d.args)})`);
        break;
      case "tool.output":
        line(frame, "ev-tool", d.text || "");
        break;
      case "tool.result":
        if (!QUIET_TOOLS.has(d.tool)) {
          line(frame, "ev-tool", `${d.is_error ? "✗" : "✓"} ${shorten(String(d.content || ""), 156)}`);
        }
        break;
      case "ask": {
        streamed = null;
        const node = line(frame, "ev-ask", `? ${d.kind}${d.tool ? ": " + d.tool : ""}${d.question ? ": " + d.question : ""}${d.command ? ": " + d.command : ""}`);
        if (d.diff) {
          const pre = el("pre", { class: "diff" });
          renderDiff(pre, d.diff);
          node.append(pre);
        }
        refreshTask();
        break;
      }
      case "ask.answered":
        line(frame, "ev-ask", `→ ${d.approve ? "approved" : "denied"}${d.expired ? " (expired)" : ""}${d.text ? ": " + d.text : ""}`);
        refreshTask();
        break;
      case "task.status":
        streamed = null;
        line(frame, "ev-status", `· ${d.status}`);
        refreshTask();
        break;
      case "task.completed":
        line(frame, "ev-end", `✔ ${d.result || "completed"}`);
        refreshTask();
        break;
      case "task.failed":
        line(frame, "ev-end ev-failed", `✗ failed: ${(d.error && d.error.message) || d.message || ""}`);
        refreshTask();
        break;
      case "task.cancelled":
        line(frame, "ev-end ev-failed", "✗ cancelled");
        refreshTask();
        break;
      case "usage":
      case "todos":
        refreshTask();
        break;
      case "message.queued":
        break;
      default:
        line(frame, "ev-other", `· ${frame.event}`);
    }
  }

  // -- overview: lists follow every event live --------------------------------------

  const refreshLists = debounce(() => {
    Promise.all([loadSessions(), loadTasks(), loadInbox()]).catch((e) => {
      if (!(e instanceof NeedsKey)) showError(e.message);
    });
  }, 300);

  function onAnyEvent(frame) {
    const name = frame.event;
    if (name.startsWith("session.") || name.startsWith("task.") || name === "usage" || name === "ask" || name === "ask.answered") {
      refreshLists();
    }
  }

  // -- where we are: #session=...&task=... ------------------------------------------

  function writeHash() {
    const parts = [];
    if (state.sessionId) parts.push(`session=${state.sessionId}`);
    if (state.taskId) parts.push(`task=${state.taskId}`);
    const hash = "#" + parts.join("&");
    if (window.location.hash !== hash) window.history.replaceState(null, "", hash);
  }

  function readHash() {
    const params = new URLSearchParams(window.location.hash.slice(1));
    return { session: params.get("session"), task: params.get("task") };
  }

  async function start() {
    $("login").hidden = true;
    try {
      await loadSessions();
    } catch (e) {
      if (!(e instanceof NeedsKey)) showLogin(`Cannot reach the daemon: ${e.message}`);
      return;
    }
    $("app").hidden = false;
    $("logout").hidden = !token();
    await loadInbox();
    if (overview) overview.close();
    overview = new Stream({}, false, onAnyEvent, (live) => {
      setLive(live);
      if (live) refreshLists(); // what changed while it was away
    });
    const where = readHash();
    if (where.session) await selectSession(where.session, where.task);
  }

  start();
})();
