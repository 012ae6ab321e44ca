// The worklist page: loads the studies once over REST, then keeps them current from the WebSocket
// (no reloads). Order and colours follow the API's priority; nothing is filtered out. The server
// exchanged the token of the address for an HttpOnly session cookie, which every request carries.
const ORDER = { urgent: 0, review: 1, routine: 2 };
const studies = new Map();
const tbody = document.querySelector("#worklist tbody");

function compare(a, b) {
  return ORDER[a.priority] - ORDER[b.priority] || b.score - a.score || a.receivedAt.localeCompare(b.receivedAt) || a.studyInstanceUid.localeCompare(b.studyInstanceUid);
}

function since(iso) {
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d`;
}

/**
 * A DICOM PN with every component group (alphabetic=ideographic=phonetic, e.g. ISO_IR 192
 * "Yamada^Tarou=山田^太郎=やまだ^たろう") as people read it: "Yamada, Tarou = 山田 太郎 = やまだ たろう".
 * The alphabetic group reads "Family, Given Middle"; ideographic and phonetic groups keep their order.
 */
function personName(pn) {
  if (!pn) return "";
  return pn
    .split("=")
    .map((group, i) => {
      const [family = "", ...rest] = group.split("^");
      const given = rest.filter(Boolean).join(" ");
      if (i > 0) return [family, given].filter(Boolean).join(" ");
      return given ? `${family}, ${given}` : family;
    })
    .filter(Boolean)
    .join(" = ");
}

function viewerHref(study) {
  return `/viewer/?studyInstanceUid=${encodeURIComponent(study.studyInstanceUid)}`;
}

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

/**
 * The state, with its timestamped history on hover (received → queued → … as recorded by the service),
 * and a mark when the results replaced earlier ones (the study was processed again).
 */
function stateCell(s) {
  const td = cell(s.state, `state state-${s.state}`);
  td.title = s.history.map((h) => `${h.state} ${new Date(h.at).toLocaleString()}`).join("\n");
  if (s.supersedes) {
    const mark = document.createElement("span");
    mark.className = "replaced";
    mark.textContent = "results replaced";
    mark.title = `These results replace earlier ones (SR ${s.supersedes}); the new SR names it as its predecessor.`;
    td.append(document.createElement("br"), mark);
  }
  return td;
}

function render(changedUid) {
  const rows = [...studies.values()].sort(compare);
  tbody.replaceChildren(
    ...rows.map((s) => {
      const tr = document.createElement("tr");
      tr.className = `p-${s.priority}${s.studyInstanceUid === changedUid ? " flash" : ""}`;
      tr.dataset.uid = s.studyInstanceUid;
      tr.dataset.priority = s.priority;
      tr.dataset.state = s.state;
      const badge = document.createElement("td");
      const span = document.createElement("span");
      span.className = "badge";
      span.textContent = s.priority;
      badge.append(span);
      const study = document.createElement("td");
      const link = document.createElement("a");
      link.href = viewerHref(s);
      link.textContent = "open in viewer";
      const description = document.createElement("div");
      description.textContent = s.studyDescription ? `Study Description: ${s.studyDescription}` : "";
      const uid = document.createElement("div");
      uid.className = "uid";
      uid.textContent = s.studyInstanceUid;
      study.append(link, description, uid);
      tr.append(
        badge,
        cell(s.score.toFixed(2)),
        cell(s.reason, "reason"),
        stateCell(s),
        cell(since(s.receivedAt), "since"),
        cell([...new Set([personName(s.patientName), s.patientId])].filter(Boolean).join(" · ") || "—"),
        study,
      );
      tr.dataset.receivedAt = s.receivedAt;
      tr.addEventListener("click", (e) => {
        if (e.target.closest("a")) return;
        location.href = viewerHref(s);
      });
      return tr;
    }),
  );
  document.querySelector("#empty").hidden = rows.length > 0;
  const n = { urgent: 0, review: 0, routine: 0 };
  for (const s of rows) n[s.priority]++;
  document.querySelector("#counts").textContent = `${rows.length} studies: ${n.urgent} urgent, ${n.review} review, ${n.routine} routine`;
}

function showError(message) {
  const el = document.querySelector("#error");
  el.textContent = message;
  el.hidden = !message;
}

async function getJson(path) {
  const r = await fetch(path);
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status} ${body.error ?? ""}`);
  return body;
}

/**
 * The headline numbers of a card's free-form metrics: top-level numbers, and per top-level section
 * (e.g. "test", "valid") its mean AUROC/AUC/accuracy. The whole card is at GET /api/model.
 */
function summarizeMetrics(metrics) {
  if (!metrics) return "none reported";
  const headline = /^(mean_?)?(auroc|auc|accuracy|sensitivity|specificity)$/i;
  const name = (k) => k.replace(/_/g, " ").replace(/\b(auroc|auc)\b/gi, (x) => x.toUpperCase());
  const parts = [];
  for (const [key, value] of Object.entries(metrics)) {
    if (typeof value === "number" && headline.test(key)) parts.push(`${name(key)} ${value.toFixed(3)}`);
    else if (value && typeof value === "object" && !Array.isArray(value)) {
      for (const [k, v] of Object.entries(value)) if (typeof v === "number" && headline.test(k)) parts.push(`${key} ${name(k)} ${v.toFixed(3)}`);
    }
  }
  return parts.length ? parts.slice(0, 4).join(" · ") : "see the model card (GET /api/model)";
}

let modelShown = false;
async function loadModel() {
  const el = document.querySelector("#model");
  try {
    const m = await getJson("/api/model");
    const metrics = summarizeMetrics(m.training.metrics);
    const untrained = /untrained/i.test(m.training.summary) && !m.training.data;
    const trainedOn = m.training.data ? `trained on: ${m.training.data}` : m.training.summary;
    el.textContent = `${untrained ? "⚠ NOT FOR CLINICAL USE — " : ""}Model ${m.name} ${m.version} — ${trainedOn} — metrics: ${metrics}`;
    el.title = `${m.training.summary} (device UID ${m.deviceUid})`;
    el.classList.toggle("trained", !untrained);
    modelShown = true;
  } catch (err) {
    el.textContent = `model: ${err.message}`;
  }
}

async function loadStudies() {
  const list = await getJson("/api/studies");
  studies.clear();
  for (const s of list) studies.set(s.studyInstanceUid, s);
  render();
}

let retry = 500;
function connect() {
  const live = document.querySelector("#live");
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
  ws.addEventListener("open", async () => {
    retry = 500;
    live.textContent = "live";
    live.className = "live on";
    // Subscribed first, then listed: no change between the two can be missed.
    try {
      await loadStudies();
      showError("");
    } catch (err) {
      showError(err.message);
    }
  });
  ws.addEventListener("message", (e) => {
    const msg = JSON.parse(e.data);
    if (msg.type !== "study") return;
    studies.set(msg.study.studyInstanceUid, msg.study);
    render(msg.study.studyInstanceUid);
    if (msg.study.model && !modelShown) loadModel();
  });
  ws.addEventListener("close", async () => {
    live.textContent = "disconnected — reconnecting";
    live.className = "live off";
    // A refused upgrade looks like any other close: ask whether the session is still valid.
    try {
      await getJson("/api/session");
    } catch (err) {
      showError(err.message);
    }
    setTimeout(connect, retry);
    retry = Math.min(retry * 2, 10_000);
  });
}

loadModel();
connect();
setInterval(() => {
  for (const tr of tbody.children) tr.querySelector(".since").textContent = since(tr.dataset.receivedAt);
}, 15_000);
