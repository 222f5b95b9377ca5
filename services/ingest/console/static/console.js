// The admin console. Everything shown comes from the admin API with the signed-in admin's token;
// every value is written with textContent, never as HTML, since users and devices choose some of it.
"use strict";

const TOKEN_KEY = "points-admin-token";
const SVG = "http://www.w3.org/2000/svg";
const DECISION_COLOURS = { validated: "validated", pending_review: "pending_review", rejected: "rejected", pending: "pending" };
const SEVERITY_COLOURS = { low: "low", medium: "medium", high: "high", critical: "critical" };

const $ = (id) => document.getElementById(id);

function token() { return sessionStorage.getItem(TOKEN_KEY); }

class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
  }
}

async function api(path, options = {}) {
  return (await apiPage(path, options)).body;
}

// The answer and, when the API pages it (RFC 8288 Link: rel="next"), the next page's path.
async function apiPage(path, options = {}) {
  const response = await fetch(path, {
    ...options,
    headers: { Authorization: `Bearer ${token()}`, "Content-Type": "application/json", ...(options.headers || {}) },
  });
  const body = response.headers.get("content-type")?.includes("json") ? await response.json() : {};
  if (response.status === 401) signedOut("Your session ended (the token expired or was refused): sign in again.");
  if (!response.ok) throw new ApiError(response.status, body);
  const next = /<([^>]+)>;\s*rel="next"/.exec(response.headers.get("link") || "");
  return { body, next: next ? next[1] : null };
}

// Refreshing after an action is not the action: a failed refresh must not read as a failed verdict.
async function refresh(...loaders) {
  try {
    await Promise.all(loaders.map((load) => load()));
  } catch (error) {
    say(`${$("status").textContent} (The view could not be refreshed: ${error.message})`, true);
  }
}

// A random Idempotency-Key; crypto.randomUUID exists only in secure contexts, getRandomValues everywhere.
function newKey() {
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}

function say(message, isError = false) {
  const status = $("status");
  status.textContent = message;
  status.classList.toggle("error", isError);
}

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function when(iso) { return new Date(iso).toISOString().replace("T", " ").slice(0, 19) + " UTC"; }

function element(tag, attributes = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

// A stacked bar per hour; the colour of each series comes from the stylesheet's variables.
function drawStackedBars(svg, legend, hours, series, colours) {
  svg.replaceChildren();
  legend.replaceChildren();
  const width = 540, height = 200, left = 34, bottom = 22, top = 8;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const names = Object.keys(series);
  const totals = hours.map((_, i) => names.reduce((sum, name) => sum + series[name][i], 0));
  const max = Math.max(1, ...totals);
  const slot = (width - left) / hours.length;
  const scale = (height - bottom - top) / max;
  svg.append(element("line", { x1: left, y1: height - bottom, x2: width, y2: height - bottom, stroke: "#999" }));
  svg.append(element("text", { x: left - 4, y: top + 8, "text-anchor": "end" }, String(max)));
  svg.append(element("text", { x: left - 4, y: height - bottom, "text-anchor": "end" }, "0"));
  hours.forEach((hour, i) => {
    let y = height - bottom;
    for (const name of names) {
      const value = series[name][i];
      if (!value) continue;
      const h = value * scale;
      y -= h;
      const bar = element("rect", {
        x: left + i * slot + 1, y, width: Math.max(1, slot - 2), height: h,
        fill: `var(--${colours[name]})`, "data-series": name, "data-value": value,
      });
      bar.append(element("title", {}, `${when(hour)}: ${value} ${name.replace("_", " ")}`));
      svg.append(bar);
    }
    if (i % 6 === 0) {
      svg.append(element("text", { x: left + i * slot, y: height - 6 }, new Date(hour).toISOString().slice(11, 16)));
    }
  });
  for (const name of names) {
    const item = document.createElement("li");
    const swatch = document.createElement("span");
    swatch.style.background = `var(--${colours[name]})`;
    item.append(swatch, `${name.replace("_", " ")} (${series[name].reduce((a, b) => a + b, 0)})`);
    legend.append(item);
  }
}

async function loadStats() {
  const stats = await api("/v1/admin/stats?hours=24");
  drawStackedBars($("decisions-chart"), $("decisions-legend"), stats.hours, stats.decisions, DECISION_COLOURS);
  drawStackedBars($("insights-chart"), $("insights-legend"), stats.hours, stats.insights, SEVERITY_COLOURS);
  $("queue-depth").textContent = `(${stats.review_queue_depth})`;
}

const PAGE_SIZE = 50;
const queue = { next: null, page: 1, selected: null };

async function decide(item, decision, note, row) {
  const buttons = row.querySelectorAll("button");
  buttons.forEach((b) => { b.disabled = true; });
  try {
    await api(`/v1/admin/events/${item.event_id}/decision`, {
      method: "POST", body: JSON.stringify(note ? { decision, note } : { decision }),
    });
  } catch (error) {
    buttons.forEach((b) => { b.disabled = false; });
    say(`Could not ${decision} event ${item.event_id}: ${error.message}`, true);
    return;
  }
  const after = row.nextElementSibling || row.previousElementSibling;
  row.remove();
  select(after);
  say(`${decision === "approve" ? "Approved" : "Rejected"} event ${item.event_id} of ${item.user_id}.`);
  $("queue-empty").hidden = $("review-queue").tBodies[0].rows.length > 0;
  await refresh(loadStats, loadQueueUsers);
}

async function decideAll(group, decision, row) {
  row.querySelectorAll("button").forEach((b) => { b.disabled = true; });
  let result;
  try {
    result = await api("/v1/admin/review-queue/verdicts", {
      method: "POST", body: JSON.stringify({ decision, user_id: group.user_id }),
    });
  } catch (error) {
    row.querySelectorAll("button").forEach((b) => { b.disabled = false; });
    say(`Could not ${decision} the events of ${group.user_id}: ${error.message}`, true);
    return;
  }
  const accepted = result.outcomes.filter((o) => o.outcome === "accepted").length;
  say(`${decision === "approve" ? "Approved" : "Rejected"} ${accepted} held events of ${group.user_id}.`);
  await refresh(() => loadQueue(), loadQueueUsers, loadStats);
}

function filters() {
  const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
  for (const [id, name] of [["queue-user", "user_id"], ["queue-reason", "reason"], ["queue-type", "event_type"],
                            ["queue-age", "held_minutes"]]) {
    const value = $(id).value.trim();
    if (value) params.set(name, value);
  }
  return params;
}

function select(row) {
  queue.selected?.classList.remove("selected");
  queue.selected = row && row.parentNode ? row : null;
  if (queue.selected) {
    queue.selected.classList.add("selected");
    queue.selected.scrollIntoView({ block: "nearest" });
  }
}

// A page of the queue: the first (from the filters) or the one a Link header named.
async function loadQueue(path = null) {
  const page = await apiPage(path || `/v1/admin/review-queue?${filters()}`);
  queue.page = path ? queue.page + 1 : 1;
  queue.next = page.next;
  const body = $("review-queue").tBodies[0];
  body.replaceChildren();
  for (const item of page.body) {
    const row = body.insertRow();
    row.dataset.eventId = item.event_id;
    row.addEventListener("click", () => select(row));
    cell(row, when(item.created_at));
    cell(row, item.user_id);
    cell(row, item.event_type);
    cell(row, String(item.points_delta));
    cell(row, item.trust_score === null ? "–" : String(item.trust_score));
    cell(row, item.reasons.join(", "));
    const note = document.createElement("input");
    note.type = "text";
    note.maxLength = 1000;
    note.placeholder = "why (optional)";
    note.setAttribute("aria-label", `Note for event ${item.event_id}`);
    row.insertCell().append(note);
    row.verdict = (decision) => decide(item, decision, note.value.trim(), row);
    verdictButtons(row.insertCell(), "", row.verdict);
  }
  select(body.rows[0]);
  $("queue-empty").hidden = page.body.length > 0;
  $("queue-page").textContent = `Page ${queue.page}`;
  $("queue-next").disabled = !queue.next;
  $("queue-first").disabled = queue.page === 1;
}

// Approve and Reject buttons (labels ending in `suffix`) that call `onVerdict` with the decision.
function verdictButtons(target, suffix, onVerdict) {
  for (const [decision, label] of [["approve", "Approve"], ["reject", "Reject"]]) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = label + suffix;
    button.className = decision;
    button.addEventListener("click", () => onVerdict(decision));
    target.append(button);
  }
}

async function loadQueueUsers() {
  const params = filters();
  params.set("limit", "20");
  const groups = await api(`/v1/admin/review-queue/users?${params}`);
  const body = $("queue-users").tBodies[0];
  body.replaceChildren();
  for (const group of groups) {
    const row = body.insertRow();
    row.dataset.userId = group.user_id;
    cell(row, group.user_id);
    cell(row, String(group.held), "number");
    cell(row, when(group.oldest));
    cell(row, String(group.points), "number");
    cell(row, group.reasons.join(", "));
    verdictButtons(row.insertCell(), " all", (decision) => decideAll(group, decision, row));
  }
}

function reloadQueue() {
  refresh(() => loadQueue(), loadQueueUsers);
}

// j / k move through the page, a approves, r rejects, n shows the next page: unless a field has the keys.
function onKey(event) {
  if (event.ctrlKey || event.metaKey || event.altKey || $("console").hidden) return;
  if (["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement?.tagName)) return;
  const row = queue.selected;
  const moves = { j: row?.nextElementSibling, ArrowDown: row?.nextElementSibling,
                  k: row?.previousElementSibling, ArrowUp: row?.previousElementSibling };
  if (event.key in moves) {
    if (moves[event.key]) select(moves[event.key]);
  } else if ((event.key === "a" || event.key === "r") && row) {
    row.verdict(event.key === "a" ? "approve" : "reject");
  } else if (event.key === "n" && queue.next) {
    refresh(() => loadQueue(queue.next));
  } else {
    return;
  }
  event.preventDefault();
}

// Only the newest request draws the list: an older answer (the sign-in's, before a filter was picked)
// arriving late must not replace what the admin asked for since.
let insightsAsked = 0;

async function loadInsights() {
  const asked = ++insightsAsked;
  const severity = $("severity").value;
  const insights = await api(`/v1/admin/fraud-insights?limit=100${severity ? `&severity=${severity}` : ""}`);
  if (asked !== insightsAsked) return;
  const body = $("fraud-insights").tBodies[0];
  body.replaceChildren();
  for (const insight of insights) {
    const row = body.insertRow();
    row.dataset.insightId = insight.id;
    cell(row, when(insight.created_at));
    const badge = document.createElement("span");
    badge.className = `badge severity-${insight.severity}`;
    badge.textContent = insight.severity;
    row.insertCell().append(badge);
    cell(row, insight.insight_type.replaceAll("_", " "));
    cell(row, insight.user_id);
    cell(row, String(insight.score));
    cell(row, JSON.stringify(insight.evidence), "evidence");
  }
  $("fraud-empty").hidden = insights.length > 0;
}

async function loadUser() {
  const user = $("lookup-user").value.trim();
  if (!user) return;
  const history = await api(`/v1/admin/users/${encodeURIComponent(user)}/history?limit=200`);
  const body = $("user-history").tBodies[0];
  body.replaceChildren();
  let validated = 0;
  for (const item of history) {
    const row = body.insertRow();
    row.dataset.eventId = item.event_id;
    cell(row, when(item.event_time));
    cell(row, item.event_type);
    cell(row, item.validation_status.replace("_", " "));
    cell(row, String(item.points_delta));
    cell(row, item.trust_score === null ? "–" : String(item.trust_score));
    cell(row, item.validated_by || "");
    cell(row, item.review_note || "");
    if (item.validation_status === "validated") validated += item.points_delta;
  }
  $("user-balance").textContent = `${history.length} ledger entries shown; validated points among them: ${validated}.`;
  $("user-details").hidden = false;
}

// One Idempotency-Key per form until its request succeeds or the form is changed: trying again after an
// error repeats the same command instead of making a second one.
const formKeys = {};

async function sendOnce(form, path, body, describe) {
  formKeys[form] ??= newKey();
  let answer;
  try {
    answer = await api(path, { method: "POST", headers: { "Idempotency-Key": formKeys[form] }, body: JSON.stringify(body) });
  } catch (error) {
    say(`Could not ${form} (trying again repeats this same request): ${error.message}`, true);
    return;
  }
  delete formKeys[form];
  say(describe(answer));
  await refresh(loadUser);
}

// The award and clawback forms: the looked-up user, and the form's points and reason (cleared by clear()).
function pointsForm(form, needs) {
  const entry = { user: $("lookup-user").value.trim(), points: Number($(`${form}-points`).value),
                  reason: $(`${form}-reason`).value.trim() };
  if (!entry.user || !entry.points || !entry.reason) {
    say(`${needs} a user, a number of points and a reason.`, true);
    return null;
  }
  entry.clear = () => { $(`${form}-points`).value = ""; $(`${form}-reason`).value = ""; };
  return entry;
}

async function award() {
  const entry = pointsForm("award", "An award needs");
  if (!entry) return;
  const { user, points, reason } = entry;
  await sendOnce("award points", "/v1/admin/awards", { user_id: user, points, reason }, (awarded) => {
    entry.clear();
    return `Awarded ${points} points to ${user} (ledger entry ${awarded.event_id}; it shows here once recorded).`;
  });
}

async function clawBack() {
  const entry = pointsForm("clawback", "Taking points back needs");
  if (!entry) return;
  const { user, points, reason } = entry;
  if (!confirm(`Take ${points} points back from ${user}?`)) return;
  await sendOnce("take points back", `/v1/admin/users/${encodeURIComponent(user)}/clawback`, { points, reason },
    (taken) => {
      entry.clear();
      return `Took ${taken.recovered_points} points back from ${user}`
        + (taken.unrecovered_points ? `; ${taken.unrecovered_points} more could not be covered and are owed.` : ".");
    });
}

async function loadFlags() {
  $("save-flags").disabled = true;  // saving flags that never loaded would switch the system off
  const flags = await api("/v1/admin/flags");
  $("enabled").checked = flags.points_system_enabled;
  $("redemptions").checked = flags.redemptions_enabled;
  $("rollout").value = flags.rollout_percent;
  $("flags-by").textContent = flags.updated_by;
  $("save-flags").disabled = false;
}

async function saveFlags() {
  const rollout = $("rollout").value.trim();
  if (rollout === "" || !Number.isInteger(Number(rollout)) || Number(rollout) < 0 || Number(rollout) > 100) {
    say("The rollout is a whole percentage from 0 to 100.", true);
    return;
  }
  if (!$("enabled").checked && !confirm("Switch the points system off? Every write will be refused with 503.")) return;
  try {
    const flags = await api("/v1/admin/flags", {
      method: "PUT",
      body: JSON.stringify({ points_system_enabled: $("enabled").checked, rollout_percent: Number(rollout),
                             redemptions_enabled: $("redemptions").checked }),
    });
    $("flags-by").textContent = flags.updated_by;
    say(`Saved: points system ${flags.points_system_enabled ? "enabled" : "disabled"}, new redemptions `
        + `${flags.redemptions_enabled ? "on" : "off"}, rollout ${flags.rollout_percent} %.`);
  } catch (error) {
    say(`Could not save the flags: ${error.message}`, true);
  }
}

async function holdPending() {
  if (!confirm("Send every pending event to the review queue instead of the validator?")) return;
  let result;
  try {
    result = await api("/v1/admin/hold-pending", { method: "POST" });
  } catch (error) {
    say(`Could not hold pending events: ${error.message}`, true);
    return;
  }
  say(`Held ${result.held} pending events for review.`);
  await refresh(() => loadQueue(), loadQueueUsers, loadStats);
}

function signedOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  $("console").hidden = true;
  $("sign-out").hidden = true;
  $("sign-in").hidden = false;
  $("who").textContent = "";
  if (message) {
    const note = document.createElement("p");
    note.className = "empty";
    note.id = "sign-in-error";
    note.textContent = message;
    $("sign-in-error")?.remove();
    $("sign-in").append(note);
  }
}

function subject(jwt) {
  try {
    return JSON.parse(atob(jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/"))).sub;
  } catch {
    return "";
  }
}

async function openConsole() {
  $("sign-in").hidden = true;
  $("console").hidden = false;
  $("sign-out").hidden = false;
  $("who").textContent = subject(token());
  try {
    await Promise.all([loadStats(), loadQueue(), loadQueueUsers(), loadInsights(), loadFlags()]);
  } catch (error) {
    if (error.status === 401 || error.status === 403) signedOut("That token was refused: it must be a valid admin token.");
    else say(`Could not load the console: ${error.message}`, true);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("sign-in-button").addEventListener("click", () => {
    const value = $("token").value.trim();
    if (!value) return;
    sessionStorage.setItem(TOKEN_KEY, value);
    $("token").value = "";
    openConsole();
  });
  $("sign-out").addEventListener("click", () => signedOut());
  $("severity").addEventListener("change", () => loadInsights().catch((e) => say(e.message, true)));
  $("queue-user").addEventListener("change", reloadQueue);
  for (const id of ["queue-reason", "queue-type", "queue-age"]) $(id).addEventListener("change", reloadQueue);
  $("queue-first").addEventListener("click", reloadQueue);
  $("queue-next").addEventListener("click", () => queue.next && refresh(() => loadQueue(queue.next)));
  document.addEventListener("keydown", onKey);
  $("lookup").addEventListener("click", () => loadUser().catch((e) => say(e.message, true)));
  $("lookup-user").addEventListener("change", () => loadUser().catch((e) => say(e.message, true)));
  $("award").addEventListener("click", award);
  $("clawback").addEventListener("click", clawBack);
  for (const id of ["lookup-user", "clawback-points", "clawback-reason"]) {
    $(id).addEventListener("input", () => { delete formKeys["take points back"]; });
  }
  for (const id of ["lookup-user", "award-points", "award-reason"]) {
    $(id).addEventListener("input", () => { delete formKeys["award points"]; });
  }
  $("save-flags").addEventListener("click", saveFlags);
  $("hold-pending").addEventListener("click", holdPending);
  if (token()) openConsole();
});
