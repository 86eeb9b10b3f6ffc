// edge handheld page: live alerts over Server-Sent Events, decisions POSTed to the handheld.
// Plain JS, no third-party code. All text is set with textContent: nothing received is parsed as HTML.
"use strict";

const token = new URLSearchParams(location.hash.slice(1)).get("token") || "";
const alerts = new Map();   // event_id -> alert view from the handheld
const cards = new Map();    // event_id -> <article>
let status = null;
let pageOnline = false;
const DONE = { confirm: "Confirmed", reject: "Rejected", unsure: "Unsure" };
const VERB = { confirm: "Confirm", reject: "Reject", unsure: "Unsure" };
let asking = null;          // { card, eventId, decision, officerId } while the PIN dialog is open

const $ = (id) => document.getElementById(id);

// Keep the newest view of an alert: the POST answer and the event stream may arrive in either order.
function update(a) {
  const known = alerts.get(a.event_id);
  if (!known || a.revision >= known.revision) alerts.set(a.event_id, a);
}

function notice(text) {
  const el = $("notice");
  el.textContent = text || "";
  el.hidden = !text;
}

function officer() {
  return $("officer").value;
}

function deciding() {
  return status ? status.officers.find((o) => o.id === officer()) : undefined;
}

function setStatus(next) {
  status = next;
  $("handheld").textContent = "Handheld " + status.handheld;
  $("paired").textContent = status.paired_devices.length ?
    "paired: " + status.paired_devices.join(", ") : "not paired with any device";
  const select = $("officer");
  if (select.options.length !== status.officers.length) {
    select.replaceChildren(...status.officers.map((o) => new Option(o.name + " (" + o.id + ")", o.id)));
    const saved = localStorage.getItem("edge.officer");
    if (status.officers.some((o) => o.id === saved)) select.value = saved;
  }
  const refused = Object.entries(status.refused || {}).filter(([, n]) => n > 0);
  $("refused").hidden = refused.length === 0;
  $("refused").textContent = "Not shown (failed checks): " +
    refused.map(([why, n]) => n + " " + why.replace("_", " ")).join(", ");
  showLink();
  render();
}

function showLink() {
  const el = $("link");
  const up = pageOnline && status && status.connected;
  el.className = "link " + (up ? "on" : "off");
  el.textContent = !pageOnline ? "page offline — reconnecting" :
    (status && status.connected ? "live" : "broker offline — alerts wait at the broker");
}

function fmt(x, digits) {
  return (x === null || x === undefined) ? "–" : Number(x).toFixed(digits);
}

function ago(iso) {
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 60) return "just now";
  if (s < 3600) return Math.floor(s / 60) + " min ago";
  return Math.floor(s / 3600) + " h ago";
}

const WHEN = { weekday: "short", day: "numeric", month: "short", year: "numeric",
               hour: "2-digit", minute: "2-digit", second: "2-digit" };
const DAY = { day: "numeric", month: "short", year: "numeric" };

// What the false-alarm rate is: a rate per person searched, never the chance that this alert is wrong.
function rate(fpir) {
  if (!fpir) return "";
  return "About 1 in " + Math.round(1 / fpir).toLocaleString() + " people who are not on the watchlist set off " +
    "an alert at this threshold: a rate per person searched, not the chance that this alert is wrong.";
}

function fill(card, a) {
  const q = (sel) => card.querySelector(sel);
  q(".statement").textContent = a.statement;
  q(".probe").src = "data:image/jpeg;base64," + a.probe_crop;
  const ref = q(".reference");
  ref.closest("figure").classList.toggle("missing", !a.reference_thumbnail);
  if (a.reference_thumbnail) ref.src = "data:image/jpeg;base64," + a.reference_thumbnail;
  else ref.removeAttribute("src");
  q(".label").textContent = a.label;
  q(".category").textContent = a.category;
  q(".case").textContent = a.case_ref;
  const unknown = "not sent by this device (older software)";
  q(".legal").textContent = a.legal_basis || unknown;
  q(".until").textContent = a.listed_until ? new Date(a.listed_until).toLocaleDateString(undefined, DAY) : unknown;
  q(".where").textContent = a.place ? a.place + " (camera " + a.camera + ")" : a.device + " / " + a.camera;
  const t = q(".time");
  t.dateTime = a.observed_at;
  t.textContent = new Date(a.observed_at).toLocaleString(undefined, WHEN);
  q(".ago").textContent = "(" + ago(a.observed_at) + ")";
  q(".score").textContent = fmt(a.score, 3);
  q(".threshold").textContent = fmt(a.threshold, 3);
  q(".margin").textContent = fmt(a.margin, 3);
  q(".quality").textContent = fmt(a.probe_quality, 2);
  q(".rate").textContent = rate(a.fpir);
  q(".policy").textContent = a.threshold_policy ? "Threshold set by: " + a.threshold_policy : "";
  q(".source").textContent = "Device " + a.device + ", camera " + a.camera + ", event " + a.event_id;
  const tally = q(".tally");
  tally.textContent = a.tally.text;
  if (a.tally.state === "awaiting_second") {
    const hint = document.createElement("span");
    hint.className = "hint";
    hint.textContent = "a second officer must confirm";
    tally.append(hint);
  }
  tally.className = "tally " + a.tally.state;
  card.className = "alert " + a.tally.state;
  const who = deciding();
  q(".as-name").textContent = who ? who.name + " (" + who.id + ")" : "–";
  const mine = a.tally.officers[officer()];
  card.querySelectorAll(".actions button").forEach((b) => {
    b.setAttribute("aria-pressed", String(mine === b.dataset.decision));
  });
  q(".decisions").replaceChildren(...a.decisions.map((d) => {
    const li = document.createElement("li");
    li.textContent = d.officer_name + ": " + DONE[d.decision] + " at " +
      new Date(d.decided_at).toLocaleTimeString() + (d.sent ? " · sent ✓" : " · waiting for network");
    li.className = d.sent ? "sent" : "unsent";
    return li;
  }));
}

function newCard(eventId) {
  const card = $("card").content.firstElementChild.cloneNode(true);
  card.dataset.event = eventId;
  card.querySelectorAll(".actions button").forEach((b) => {
    b.addEventListener("click", () => decide(card, eventId, b.dataset.decision));
  });
  cards.set(eventId, card);
  return card;
}

function render() {
  const list = [...alerts.values()].sort((x, y) => Date.parse(y.observed_at) - Date.parse(x.observed_at));
  $("empty").hidden = list.length > 0;
  const main = $("alerts");
  list.forEach((a, i) => {
    const card = cards.get(a.event_id) || newCard(a.event_id);
    fill(card, a);
    if (main.children[i + 1] !== card) main.insertBefore(card, main.children[i + 1] || null);
  });
}

// An officer with a PIN enters it for every decision; it is sent once and never kept by the page.
function decide(card, eventId, decision) {
  const who = deciding();
  if (who && who.pin) askPin(card, eventId, decision, who);
  else submit(card, eventId, decision, officer(), null);
}

function askPin(card, eventId, decision, who) {
  asking = { card, eventId, decision, officerId: who.id };
  const a = alerts.get(eventId);
  $("pin-title").textContent = VERB[decision] + " as " + who.name;
  $("pin-what").textContent = (a ? a.label + ": " : "") + "enter the PIN of " + who.name + " (" + who.id + "). " +
    "Not " + who.name + "? Cancel and choose yourself under “Deciding as”.";
  $("pin-ok").textContent = VERB[decision];
  $("pin-ok").className = decision;
  pinError("");
  $("pin-input").value = "";
  $("pin").showModal();
  $("pin-input").focus();
}

function pinError(text) {
  $("pin-error").textContent = text;
  $("pin-error").hidden = !text;
}

function closePin() {
  $("pin-input").value = "";
  asking = null;
  if ($("pin").open) $("pin").close();
}

async function pinEntered() {
  if (!asking || $("pin-ok").disabled) return;
  const pin = $("pin-input").value;
  $("pin-input").value = "";
  if (!/^[0-9]+$/.test(pin)) {
    pinError("Enter the PIN: digits only");
    $("pin-input").focus();
    return;
  }
  const { card, eventId, decision, officerId } = asking;
  $("pin-ok").disabled = true;
  try {
    const refused = await submit(card, eventId, decision, officerId, pin);
    if (refused) {
      pinError("Not recorded: " + refused);
      $("pin-input").focus();
    } else {
      closePin();
    }
  } finally {
    $("pin-ok").disabled = false;
  }
}

// POST one decision. A refused PIN (403, or 429 when locked out) is returned for the PIN dialog to show;
// any other failure is shown on the card.
async function submit(card, eventId, decision, officerId, pin) {
  const error = card.querySelector(".error");
  const buttons = card.querySelectorAll(".actions button");
  buttons.forEach((b) => { b.disabled = true; });
  error.hidden = true;
  const request = { event_id: eventId, officer_id: officerId, decision: decision };
  if (pin !== null) request.pin = pin;
  try {
    const response = await fetch("/api/decisions", {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Edge-Token": token },
      body: JSON.stringify(request),
    });
    const body = await response.json();
    if (response.ok) {
      update(body);
      render();
      return null;
    }
    const reason = body.error || response.statusText;
    if (pin !== null && (response.status === 403 || response.status === 429)) return reason;
    throw new Error(reason);
  } catch (err) {
    error.textContent = "Not recorded: " + err.message;
    error.hidden = false;
    return null;
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
  }
}

function connect() {
  const events = new EventSource("/api/events?token=" + encodeURIComponent(token));
  events.addEventListener("open", () => { pageOnline = true; notice(""); showLink(); });
  events.addEventListener("error", () => {
    pageOnline = false;
    showLink();
    if (events.readyState === EventSource.CLOSED) {  // refused, not just disconnected: find out why
      waitForAccess().then(connect);
    }
  });
  events.addEventListener("snapshot", (e) => {
    const data = JSON.parse(e.data);
    alerts.clear();
    data.alerts.forEach((a) => alerts.set(a.event_id, a));
    for (const id of [...cards.keys()]) {
      if (!alerts.has(id)) { cards.get(id).remove(); cards.delete(id); }
    }
    setStatus(data.status);
  });
  events.addEventListener("alert", (e) => {
    const a = JSON.parse(e.data);
    if (!alerts.has(a.event_id) && navigator.vibrate) navigator.vibrate(300);
    update(a);
    render();
  });
  events.addEventListener("status", (e) => setStatus(JSON.parse(e.data)));
}

// The state, or false with the reason shown (a restarted handheld has a new token in its address).
async function checkAccess() {
  const response = await fetch("/api/state", { headers: { "X-Edge-Token": token } }).catch(() => null);
  if (response && response.ok) return response.json();
  const body = response ? await response.json().catch(() => ({})) : {};
  notice(body.error || "The handheld is not answering: is `edge handheld` running?");
  return false;
}

async function waitForAccess() {
  let data = await checkAccess();
  while (!data) {
    await new Promise((resolve) => setTimeout(resolve, 3000));
    data = await checkAccess();
  }
  notice("");
  return data;
}

async function start() {
  $("officer").addEventListener("change", () => { localStorage.setItem("edge.officer", officer()); render(); });
  $("pin-ok").addEventListener("click", pinEntered);
  $("pin-cancel").addEventListener("click", closePin);
  $("pin-input").addEventListener("keydown", (e) => {
    if (e.key === "Enter") { e.preventDefault(); pinEntered(); }
  });
  $("pin").addEventListener("close", closePin);  // Escape closes it too: forget what was typed
  window.addEventListener("hashchange", () => location.reload());  // a new address (token) from a restart
  setInterval(render, 30000);  // keep "x min ago" current
  const data = await waitForAccess();
  data.alerts.forEach((a) => alerts.set(a.event_id, a));
  setStatus(data.status);
  connect();
}

start();
