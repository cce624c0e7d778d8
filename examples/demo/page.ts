// GET /: one self-contained page (no external assets), for an operator:
// upload a photo; what runs now (name, for how long, status, and the
// task's `progress` when its TaskInfo carries one), what is queued, a
// cancel button per task (DELETE /tasks/:id); recent failures with their
// errors; the photos, the orders (email status) and the reports; in durable
// mode, the dead letters. It stays live over server-sent events
// (/tasks/events) and reconnects by itself after a restart of the server.

/** The page's HTML. */
export const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Background tasks demo</title>
<style>
  :root { color-scheme: light; --ink: #1d232b; --muted: #5e6b78; --line: #d9dee4; --accent: #2f6fdf; --ok: #1d8a4d; --bad: #c23b3b; --warn: #a86a00; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--ink); background: #f4f6f8; }
  header { padding: 14px 24px; background: #fff; border-bottom: 1px solid var(--line); display: flex; align-items: baseline; gap: 16px; flex-wrap: wrap; }
  h1 { margin: 0; font-size: 19px; }
  header p { margin: 0; color: var(--muted); flex: 1 1 auto; }
  main { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 16px; padding: 16px 24px; }
  section { background: #fff; border: 1px solid var(--line); border-radius: 10px; padding: 12px 16px; min-width: 0; }
  section.wide { grid-column: 1 / -1; }
  h2 { margin: 0 0 10px; font-size: 13px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); display: flex; gap: 10px; align-items: baseline; }
  h2 .count { color: var(--ink); font-size: 15px; }
  form { display: flex; gap: 10px; align-items: center; flex-wrap: wrap; padding: 10px; border: 1px dashed var(--line); border-radius: 8px; background: #fafbfc; }
  input[type=file] { flex: 1 1 auto; min-width: 0; }
  button { background: var(--accent); color: #fff; border: 0; border-radius: 6px; padding: 6px 14px; font: inherit; cursor: pointer; }
  button.small { padding: 2px 10px; font-size: 12px; background: #eef1f4; color: var(--bad); border: 1px solid #e3c5c5; }
  button:disabled { opacity: .5; cursor: default; }
  #status { margin: 10px 0; min-height: 1.45em; }
  .pill { display: inline-block; padding: 0 8px; border-radius: 99px; font-size: 12px; background: #e8edf3; white-space: nowrap; }
  .pill.ready, .pill.fulfilled, .pill.sent { background: #dcf3e5; color: var(--ok); }
  .pill.failed, .pill.rejected, .pill.cancelled { background: #f8e0e0; color: var(--bad); }
  .pill.processing, .pill.running, .pill.pending { background: #e3ecfb; color: var(--accent); }
  .pill.queued { background: #fdf0d5; color: var(--warn); }
  #thumbs { display: flex; gap: 12px; align-items: flex-end; flex-wrap: wrap; }
  figure { margin: 0; text-align: center; }
  figure img { display: block; max-width: 100%; border-radius: 6px; border: 1px solid var(--line); background: #eef1f4; }
  figcaption { font-size: 12px; color: var(--muted); margin-top: 2px; }
  table { width: 100%; border-collapse: collapse; font-size: 13px; table-layout: fixed; }
  th { text-align: left; color: var(--muted); font-weight: 600; border-bottom: 1px solid var(--line); padding: 3px 6px; }
  td { border-bottom: 1px solid #eef1f4; padding: 3px 6px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; vertical-align: middle; }
  td.error { color: var(--bad); white-space: normal; word-break: break-word; }
  td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
  .empty td { color: var(--muted); font-style: italic; }
  progress { width: 80px; vertical-align: middle; }
  #link { font-size: 13px; color: var(--muted); }
  #link.live { color: var(--ok); }
  #link.live::before { content: "● "; }
  .scroll { max-height: 260px; overflow: auto; }
  @media (max-width: 900px) { main { grid-template-columns: 1fr; } }
</style>
</head>
<body>
<header>
  <h1>Background tasks demo</h1>
  <p>Uploads are answered at once; thumbnails are made in image processes, emails and reports in the background.</p>
  <span id="link">connecting…</span>
</header>
<main>
  <section>
    <h2>Upload a photo</h2>
    <form id="upload">
      <input type="file" id="photo" name="photo" accept="image/jpeg,image/png" required>
      <button type="submit" id="send">Upload</button>
    </form>
    <div id="status">JPEG or PNG, up to the server's size limit.</div>
    <div id="thumbs"></div>
  </section>
  <section>
    <h2>Running now <span class="count" id="active">0</span></h2>
    <div class="scroll"><table id="running"><colgroup><col style="width:45%"><col style="width:15%"><col style="width:17%"><col style="width:23%"></colgroup>
      <thead><tr><th>task</th><th class="num">for</th><th>status</th><th></th></tr></thead><tbody></tbody></table></div>
    <h2 style="margin-top:12px">Queued <span class="count" id="pending">0</span></h2>
    <div class="scroll"><table id="queued"><colgroup><col style="width:60%"><col style="width:17%"><col style="width:23%"></colgroup>
      <thead><tr><th>task</th><th class="num">waiting</th><th></th></tr></thead><tbody></tbody></table></div>
  </section>
  <section>
    <h2>Recent failures <span class="count" id="failure-count">0</span></h2>
    <div class="scroll"><table id="failures"><colgroup><col style="width:38%"><col style="width:14%"><col style="width:48%"></colgroup>
      <thead><tr><th>task</th><th>status</th><th>error</th></tr></thead><tbody></tbody></table></div>
  </section>
  <section>
    <h2>Photos</h2>
    <div class="scroll"><table id="photos"><colgroup><col style="width:30%"><col style="width:20%"><col style="width:16%"><col style="width:34%"></colgroup>
      <thead><tr><th>photo</th><th>size</th><th>status</th><th>error</th></tr></thead><tbody></tbody></table></div>
  </section>
  <section>
    <h2>Orders</h2>
    <div class="scroll"><table id="orders"><colgroup><col style="width:26%"><col style="width:30%"><col style="width:14%"><col style="width:30%"></colgroup>
      <thead><tr><th>order</th><th>email</th><th>email status</th><th>error</th></tr></thead><tbody></tbody></table></div>
  </section>
  <section>
    <h2>Reports <button class="small" id="new-report" style="color:var(--accent)">new report</button></h2>
    <div class="scroll"><table id="reports"><colgroup><col style="width:15%"><col style="width:18%"><col style="width:67%"></colgroup>
      <thead><tr><th>task</th><th>status</th><th>result</th></tr></thead><tbody></tbody></table></div>
  </section>
  <section class="wide" id="dead-section" hidden>
    <h2>Dead letters <span class="count" id="dead-count">0</span></h2>
    <div class="scroll"><table id="dead"><colgroup><col style="width:22%"><col style="width:16%"><col style="width:8%"><col style="width:34%"><col style="width:20%"></colgroup>
      <thead><tr><th>task</th><th>name</th><th class="num">tries</th><th>error</th><th></th></tr></thead><tbody></tbody></table></div>
  </section>
</main>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const sizes = [150, 300, 600];
let tasks = { active: [], queued: [], failures: [] };

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, props || {});
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child ?? "")));
  return node;
}
function pill(text) { return el("span", { className: "pill " + text, textContent: text }); }
function since(iso) {
  if (!iso) return "";
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  return s < 60 ? s.toFixed(1) + " s" : Math.floor(s / 60) + " min " + Math.floor(s % 60) + " s";
}
function rows(table, items, render, empty) {
  const body = $(table).tBodies[0];
  body.replaceChildren(...(items.length ? items.map(render) : [el("tr", { className: "empty" }, el("td", { colSpan: 5 }, empty))]));
}
function cancelButton(id) {
  const button = el("button", { className: "small cancel", textContent: "cancel" });
  button.dataset.id = id;
  button.addEventListener("click", async () => {
    button.disabled = true;
    await fetch("/tasks/" + encodeURIComponent(id), { method: "DELETE" }).catch(() => {});
    refresh();
  });
  return button;
}
function progressOf(task) {
  // TaskInfo may carry progress: a number from 0 to 1, or { done, total }.
  const p = task.progress;
  if (p === undefined || p === null) return pill(task.status);
  const value = typeof p === "number" ? p : (p.total ? p.done / p.total : 0);
  return el("span", {}, el("progress", { max: 1, value }), " " + Math.round(value * 100) + " %");
}

function renderTasks() {
  $("active").textContent = tasks.active.length;
  $("pending").textContent = tasks.pendingCount ?? tasks.queued.length;
  rows("running", tasks.active, (t) => el("tr", {},
    el("td", { title: t.name }, t.name), el("td", { className: "num" }, since(t.startedAt)),
    el("td", {}, progressOf(t)), el("td", {}, cancelButton(t.id))), "nothing runs");
  rows("queued", tasks.queued, (t) => el("tr", {},
    el("td", { title: t.name }, t.name), el("td", { className: "num" }, since(t.queuedAt)),
    el("td", {}, cancelButton(t.id))), "nothing waits");
  $("failure-count").textContent = tasks.failures.length;
  rows("failures", tasks.failures, (f) => el("tr", {},
    el("td", { title: f.name }, f.name), el("td", {}, pill(f.status)), el("td", { className: "error" }, f.error)), "no failure");
}

async function getJson(path) {
  const res = await fetch(path);
  if (!res.ok) throw new Error(path + ": " + res.status);
  return res.json();
}

let refreshing = false;
async function refresh() {
  if (refreshing) return;
  refreshing = true;
  try {
    const [t, photos, orders, reports] = await Promise.all([
      getJson("/tasks"), getJson("/photos"), getJson("/orders"), getJson("/reports"),
    ]);
    tasks = t;
    renderTasks();
    rows("photos", photos.photos, (p) => el("tr", {},
      el("td", { title: p.photoId }, (p.name || p.photoId.slice(0, 8))), el("td", {}, p.width + "×" + p.height),
      el("td", {}, pill(p.status)), el("td", { className: "error" }, p.error || "")), "no photo yet");
    rows("orders", orders.orders, (o) => el("tr", {},
      el("td", { title: o.orderId }, o.orderId.slice(0, 8)), el("td", { title: o.email }, o.email),
      el("td", {}, pill(o.emailStatus)), el("td", { className: "error" }, o.emailError || "")), "no order yet");
    rows("reports", reports.reports, (r) => el("tr", {},
      el("td", {}, r.taskId), el("td", {}, pill(r.status)),
      el("td", { className: r.error ? "error" : "" }, r.error || (r.result ? r.result.orders.count + " orders (" + r.result.orders.email.sent + " sent), " + r.result.photos.count + " photos" : ""))), "no report yet");
    if (t.durable) await refreshDeadLetters();
  } catch {
    // The server is away: the event stream says so and reconnects.
  } finally {
    refreshing = false;
  }
}

// One place calls the dead-letter actions; the server says which it supports.
async function deadLetterAction(id, action) {
  const path = "/dead-letters/" + encodeURIComponent(id) + (action === "retry" ? "/retry" : "");
  await fetch(path, { method: action === "retry" ? "POST" : "DELETE" }).catch(() => {});
  refresh();
}
async function refreshDeadLetters() {
  const body = await getJson("/dead-letters");
  $("dead-section").hidden = false;
  $("dead-count").textContent = body.deadLetters.length;
  rows("dead", body.deadLetters, (d) => {
    const actions = el("td", {});
    for (const action of ["retry", "delete"]) {
      if (!body.actions[action]) continue;
      const button = el("button", { className: "small", textContent: action });
      button.addEventListener("click", () => deadLetterAction(d.id, action));
      actions.append(button, " ");
    }
    return el("tr", {}, el("td", { title: d.id }, d.id.slice(0, 8)), el("td", {}, d.name),
      el("td", { className: "num" }, d.attempts), el("td", { className: "error" }, d.error), actions);
  }, "no dead letter");
}

// Live: task events over SSE. The browser reconnects by itself after a
// dropped stream; after an error answer (503 while the server restarts) it
// gives up, so the page opens a new stream itself.
let events;
let retry;
function connect() {
  clearTimeout(retry);
  events?.close();
  events = new EventSource("/tasks/events");
  events.addEventListener("open", () => { $("link").textContent = "live"; $("link").className = "live"; refresh(); });
  events.addEventListener("error", () => {
    $("link").textContent = "reconnecting…";
    $("link").className = "";
    if (events.readyState === EventSource.CLOSED) retry = setTimeout(connect, 1000);
  });
  events.addEventListener("snapshot", (event) => {
    Object.assign(tasks, JSON.parse(event.data));
    renderTasks();
  });
  for (const type of ["start", "settle", "cancel", "retry", "progress"]) {
    events.addEventListener(type, () => refresh());
  }
}
connect();
// Durations tick, and queued tasks (which send no event) show up.
setInterval(() => { renderTasks(); refresh(); }, 2000);

function showThumbnails(photo) {
  $("thumbs").replaceChildren(...sizes.map((size) => {
    const img = el("img", { className: "thumb", alt: size + " px thumbnail", src: photo.thumbnails[size] });
    img.dataset.size = size;
    return el("figure", {}, img, el("figcaption", {}, size + " px"));
  }));
}
function setStatus(...parts) {
  $("status").replaceChildren(...parts.map((p) => typeof p === "string" ? document.createTextNode(p) : p));
}
async function follow(id) {
  for (let i = 0; i < 240; i++) {
    const photo = await getJson("/photos/" + id);
    if (photo.status === "ready") { setStatus("Photo ", id.slice(0, 8), " ", pill("ready")); showThumbnails(photo); return; }
    if (photo.status === "failed") { setStatus("Photo ", id.slice(0, 8), " ", pill("failed"), " " + (photo.error || "")); return; }
    setStatus("Photo ", id.slice(0, 8), " ", pill("processing"));
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  setStatus("Gave up waiting for the thumbnails; reload to try again.");
}
$("upload").addEventListener("submit", async (event) => {
  event.preventDefault();
  const file = $("photo").files[0];
  if (!file) return;
  $("send").disabled = true;
  $("thumbs").replaceChildren();
  setStatus("Uploading ", file.name, "…");
  try {
    const form = new FormData();
    form.append("photo", file);
    const res = await fetch("/photos", { method: "POST", body: form });
    const body = await res.json();
    if (res.status !== 201) { setStatus(pill("failed"), " " + res.status + ": " + body.error); return; }
    refresh();
    await follow(body.photoId);
  } catch (error) {
    setStatus(pill("failed"), " " + error);
  } finally {
    $("send").disabled = false;
  }
});
$("new-report").addEventListener("click", async () => {
  await fetch("/reports", { method: "POST" }).catch(() => {});
  refresh();
});
</script>
</body>
</html>
`;
