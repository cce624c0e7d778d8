// GET /: one self-contained page (no external assets). Upload a photo, watch
// its tasks start and settle live (EventSource on /tasks/events), and see the
// three thumbnails appear.

/** The page's HTML. */
export const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Background tasks demo</title>
<style>
  :root { color-scheme: light; --ink: #1d232b; --muted: #5e6b78; --line: #d9dee4; --accent: #2f6fdf; --ok: #1d8a4d; --bad: #c23b3b; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--ink); background: #f4f6f8; }
  header { padding: 18px 28px; background: #fff; border-bottom: 1px solid var(--line); }
  h1 { margin: 0; font-size: 20px; }
  header p { margin: 4px 0 0; color: var(--muted); }
  main { display: grid; grid-template-columns: minmax(0, 3fr) minmax(0, 2fr); gap: 20px; padding: 20px 28px; }
  section { background: #fff; border: 1px solid var(--line); border-radius: 10px; padding: 16px 18px; }
  h2 { margin: 0 0 12px; font-size: 15px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); }
  form { display: flex; gap: 10px; align-items: center; flex-wrap: wrap; padding: 12px; border: 1px dashed var(--line); border-radius: 8px; background: #fafbfc; }
  input[type=file] { flex: 1 1 auto; min-width: 0; }
  button { background: var(--accent); color: #fff; border: 0; border-radius: 6px; padding: 8px 16px; font: inherit; cursor: pointer; }
  button:disabled { opacity: .5; cursor: default; }
  #status { margin: 12px 0; min-height: 1.45em; }
  .pill { display: inline-block; padding: 1px 9px; border-radius: 99px; font-size: 13px; background: #e8edf3; }
  .pill.ready, .pill.fulfilled { background: #dcf3e5; color: var(--ok); }
  .pill.failed, .pill.rejected { background: #f8e0e0; color: var(--bad); }
  .pill.processing, .pill.running { background: #e3ecfb; color: var(--accent); }
  #thumbs { display: flex; gap: 14px; align-items: flex-end; flex-wrap: wrap; }
  figure { margin: 0; text-align: center; }
  figure img { display: block; max-width: 100%; border-radius: 6px; border: 1px solid var(--line); background: #eef1f4; }
  figcaption { font-size: 13px; color: var(--muted); margin-top: 4px; }
  #counts { display: flex; gap: 18px; margin-bottom: 10px; color: var(--muted); }
  #counts b { color: var(--ink); font-size: 18px; }
  #events { list-style: none; margin: 0; padding: 0; max-height: 460px; overflow: auto; font: 13px/1.5 ui-monospace, "SFMono-Regular", Menlo, monospace; }
  #events li { padding: 4px 0; border-bottom: 1px solid #eef1f4; display: flex; gap: 8px; align-items: baseline; }
  #events li > * { flex: none; }
  #events time { color: var(--muted); }
  #events .type { width: 48px; font-weight: 600; }
  #events .pill { width: 82px; text-align: center; font-size: 12px; }
  #events .start .type { color: var(--accent); }
  #events .settle .type { color: var(--ok); }
  #events .cancel .type { color: var(--bad); }
  #events .name { flex: 1 1 auto; min-width: 0; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
  #link.live { color: var(--ok); }
  #link.live::before { content: "● "; }
  @media (max-width: 800px) { main { grid-template-columns: 1fr; } }
</style>
</head>
<body>
<header>
  <h1>Background tasks demo</h1>
  <p>The upload is answered at once; its three thumbnails are made in the background, in a worker pool.</p>
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
    <h2>Tasks, live</h2>
    <div id="counts"><span><b id="active">0</b> running</span><span><b id="pending">0</b> queued</span><span id="link">connecting…</span></div>
    <ol id="events"></ol>
  </section>
</main>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const sizes = [150, 300, 600];

function pill(text) {
  const span = document.createElement("span");
  span.className = "pill " + text;
  span.textContent = text;
  return span;
}

function setStatus(...parts) {
  $("status").replaceChildren(...parts.map((p) => typeof p === "string" ? document.createTextNode(p) : p));
}

async function refreshCounts() {
  try {
    const res = await fetch("/tasks");
    const body = await res.json();
    $("active").textContent = body.activeCount;
    $("pending").textContent = body.pendingCount;
  } catch {}
}

const events = new EventSource("/tasks/events");
events.addEventListener("open", () => { $("link").textContent = "live"; $("link").className = "live"; });
events.addEventListener("error", () => { $("link").textContent = "reconnecting…"; $("link").className = ""; });
for (const type of ["start", "settle", "cancel"]) {
  events.addEventListener(type, (event) => {
    const data = JSON.parse(event.data);
    const li = document.createElement("li");
    li.className = type;
    const time = document.createElement("time");
    time.textContent = new Date().toLocaleTimeString([], { hour12: false });
    const kind = document.createElement("span");
    kind.className = "type";
    kind.textContent = type;
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = data.task.name;
    name.title = data.task.name + (data.error ? " — " + data.error : "");
    li.append(time, kind, pill(data.task.status), name);
    $("events").prepend(li);
    while ($("events").children.length > 200) $("events").lastChild.remove();
    refreshCounts();
  });
}
refreshCounts();

function showThumbnails(photo) {
  $("thumbs").replaceChildren(...sizes.map((size) => {
    const figure = document.createElement("figure");
    const img = document.createElement("img");
    img.className = "thumb";
    img.dataset.size = size;
    img.alt = size + " px thumbnail";
    img.src = photo.thumbnails[size];
    const caption = document.createElement("figcaption");
    caption.textContent = size + " px";
    figure.append(img, caption);
    return figure;
  }));
}

async function follow(id) {
  for (let i = 0; i < 240; i++) {
    const res = await fetch("/photos/" + id);
    const photo = await res.json();
    if (photo.status === "ready") {
      setStatus("Photo ", id.slice(0, 8), " ", pill("ready"));
      showThumbnails(photo);
      return;
    }
    if (photo.status === "failed") {
      setStatus("Photo ", id.slice(0, 8), " ", pill("failed"), " " + (photo.error || ""));
      return;
    }
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
    if (res.status !== 201) {
      setStatus(pill("failed"), " " + res.status + ": " + body.error);
      return;
    }
    await follow(body.photoId);
  } catch (error) {
    setStatus(pill("failed"), " " + error);
  } finally {
    $("send").disabled = false;
  }
});
</script>
</body>
</html>
`;
