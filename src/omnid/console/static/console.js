// omnid console: a small page over the workers' JSON APIs (same origin only).
// Every value that comes from customer data is set as text, never as HTML.
"use strict";

// session: { token, name, scopes } once signed in; the token lives in sessionStorage only (gone
// with the tab), and is sent as a bearer token, never in a URL.
const state = { config: null, operateTimer: null, session: null };
const TOKEN_KEY = "omnid-console-token";

function can(scope) {
  return Boolean(state.session && state.session.scopes.includes(scope));
}

// -- DOM helpers ------------------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "className") node.className = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// Like replaceChildren, with el's handling of nested arrays and absent (null) children.
function fill(node, ...children) {
  node.replaceChildren(...el("div", {}, ...children).childNodes);
}

function table(headings, rows, attrs) {
  return el("table", attrs,
    el("thead", {}, el("tr", {}, headings.map((h) => el("th", {}, h)))),
    el("tbody", {}, rows));
}

function section(title, ...content) {
  return el("section", { className: "card" }, el("h3", {}, title), ...content);
}

function when(ms) {
  if (ms === null || ms === undefined) return "";
  return new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

function showMessage(text, kind) {
  const message = document.getElementById("message");
  message.textContent = text || "";
  message.className = kind || "";
  message.hidden = !text;
}

// -- API --------------------------------------------------------------------------------------

async function api(path, options, token) {
  const headers = { Accept: "application/json" };
  const bearer = token || (state.session && state.session.token);
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  if (options && options.body) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { ...options, headers });
  let body = null;
  try {
    body = await response.json();
  } catch (_error) {
    body = null;
  }
  return { status: response.status, body };
}

function describeError(result) {
  const body = result.body || {};
  const reasons = {
    unknown_identifier: "No profile holds this identifier.",
    unknown_profile: "No profile has this id.",
    invalid_identifier: `Not a usable value for this type (${body.reason || "invalid"}).`,
    erased_profile: "This profile was erased.",
    erased_identifier: "This identifier belonged to a person who was erased.",
    blocked_identifier: "This value was blocked in the quarantine review: it links nobody.",
    identifier_not_in_profile: "Both identifiers must belong to this profile.",
    not_quarantined: "This value is not quarantined (any more).",
    catching_up: "This worker is still reading the quarantine changelog; try again in a moment.",
    rebalancing: "The workers are rebalancing; try again in a moment.",
    owner_unreachable: "The worker that holds this profile did not answer; try again.",
    unauthorized: "The token was not accepted: sign in again.",
    forbidden: `This token may not do that (${body.detail || "missing scope"}).`,
  };
  return reasons[body.error] || `The API answered ${result.status} ${body.error || ""}`.trim();
}

// Why a lookup was answered from a local copy (the lookup API's stale_reason).
const STALE_REASONS = {
  rebalancing: "the workers rebalance",
  not_ready: "the workers restore this partition",
  owner_away: "the worker that owns it does not answer",
};
const OUTCOME_POLL_MS = 500;
const OUTCOME_WAIT_MS = 120000;

// Polls `check()` (async; a value when done, else null) until it gives something or time runs out:
// actions are commands through the pipeline, and their outcome shows once it has processed them.
async function waitForOutcome(check) {
  const deadline = Date.now() + OUTCOME_WAIT_MS;
  while (Date.now() < deadline) {
    const outcome = await check();
    if (outcome) return outcome;
    await new Promise((resolve) => setTimeout(resolve, OUTCOME_POLL_MS));
  }
  return null;
}

// -- screens ----------------------------------------------------------------------------------

function showScreen(name) {
  for (const id of ["signin-screen", "find-screen", "profile-screen", "quarantine-screen", "operate-screen"]) {
    document.getElementById(id).hidden = !name.includes(id.replace("-screen", ""));
  }
  for (const link of document.querySelectorAll("nav a")) {
    link.classList.toggle("current", link.id === `nav-${name.split("+")[0]}`);
  }
  if (!name.includes("operate")) stopOperate();
}

async function route() {
  showMessage("");
  if (!state.session) return showScreen("signin");
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  if (parts[0] === "operate") {
    showScreen("operate");
    return startOperate();
  }
  if (parts[0] === "quarantine" && can("admin")) {
    showScreen("quarantine");
    return showQuarantine();
  }
  if (!can("profiles:read")) {
    showScreen("none");
    return showMessage("This token cannot read profiles (scope profiles:read); Operate is open to it.");
  }
  showScreen("find");
  if (parts[0] === "profile" && parts[1]) return showProfile(`/v1/profiles/${enc(parts[1])}`);
  if (parts[0] === "any" && parts[1]) {
    document.getElementById("find-value").value = parts.slice(1).join("/");
    return findAnyType(parts.slice(1).join("/"));
  }
  if (parts[0] === "identifier" && parts[1] && parts.length >= 3) {
    const value = parts.slice(2).join("/");
    document.getElementById("find-type").value = parts[1];
    document.getElementById("find-value").value = value;
    return showProfile(`/v1/identifiers/${enc(parts[1])}/${enc(value)}`);
  }
  document.getElementById("profile-screen").hidden = true;
}

function enc(value) {
  return encodeURIComponent(value);
}

function onFind(event) {
  event.preventDefault();
  const type = document.getElementById("find-type").value;
  const value = document.getElementById("find-value").value.trim();
  if (!value) return;
  const targets = { profile_id: `#/profile/${enc(value)}`, any: `#/any/${enc(value)}` };
  const target = targets[type] || `#/identifier/${enc(type)}/${enc(value)}`;
  if (location.hash === target) route();
  else location.hash = target;
}

// -- See: one profile -------------------------------------------------------------------------

function sourceOf(priority) {
  const channels = Object.entries(state.config.channel_priority)
    .filter(([, p]) => p === priority)
    .map(([channel]) => channel);
  return channels.length ? `${channels.join(" / ")} (${priority})` : `priority ${priority}`;
}

// With admin, each identifier has a box to tick for a split (the Fix card).
function identifiersCard(profile) {
  const admin = can("admin");
  const rows = profile.identifiers.map((identifier) =>
    el("tr", { "data-identifier": `${identifier.type}:${identifier.value}` },
      admin ? el("td", {}, el("input", { type: "checkbox", className: "pick", value: `${identifier.type}:${identifier.value}`,
        "aria-label": `split off ${identifier.type} ${identifier.value}` })) : null,
      el("td", {}, identifier.type),
      el("td", { className: "value" }, identifier.value),
      el("td", {}, identifier.rule),
      el("td", {}, when(identifier.added_at)),
      el("td", { className: "event" }, identifier.event_id)));
  return section(`Identifiers (${profile.identifiers.length})`,
    table([admin ? "split" : null, "type", "value", "linked by", "added", "event"].filter(Boolean), rows,
      { id: "identifiers" }));
}

function traitsCard(profile) {
  const names = Object.keys(profile.traits).sort();
  const rows = names.map((name) => {
    const trait = profile.traits[name];
    return el("tr", { "data-trait": name },
      el("td", {}, name),
      el("td", { className: "value" }, trait.value === null ? "(none)" : String(trait.value)),
      el("td", {}, sourceOf(trait.source_priority)),
      el("td", {}, when(trait.event_time)),
      el("td", { className: "event" }, trait.event_id));
  });
  return section(`Traits (${names.length})`,
    names.length ? table(["trait", "value", "source", "time", "set by event"], rows, { id: "traits" })
      : el("p", { className: "hint" }, "No traits yet."));
}

function computedCard(profile) {
  const computed = profile.computed;
  const revenue = Object.entries(computed.revenue).sort()
    .map(([currency, amount]) => `${amount.toFixed(2)} ${currency}`).join(", ") || "none";
  const channels = Object.entries(computed.channel_counts).sort()
    .map(([channel, count]) => `${channel} ${count}`).join(", ");
  const facts = [
    ["events", computed.event_count],
    ["orders", computed.order_count],
    ["revenue", revenue],
    ["channels", channels],
    ["last channel", computed.last_channel],
    ["first seen", when(computed.first_seen)],
    ["last seen", when(computed.last_seen)],
  ];
  return section("Computed",
    el("dl", { id: "computed" }, facts.map(([name, value]) =>
      [el("dt", {}, name), el("dd", { "data-fact": name }, String(value))])));
}

function consentCard(profile) {
  const consent = profile.computed.consent || {};
  const purposes = Object.keys(consent).sort();
  const rows = purposes.map((purpose) => {
    const entry = consent[purpose];
    return el("tr", { "data-purpose": purpose, className: entry.conflict ? "conflict" : "" },
      el("td", {}, purpose),
      el("td", {}, entry.granted ? "granted" : "withdrawn"),
      el("td", {}, when(entry.at)),
      el("td", {}, entry.source || ""),
      el("td", {}, entry.conflict
        ? "conflict: merged profiles disagreed and no newer consent settled it; treat as not granted" : ""));
  });
  return section("Consent",
    purposes.length ? table(["purpose", "state", "since", "source", "conflict"], rows, { id: "consent" })
      : el("p", { className: "hint" }, "No consent recorded."));
}

async function showProfile(path) {
  const screen = document.getElementById("profile-screen");
  screen.hidden = false;
  screen.replaceChildren(el("p", { className: "hint" }, "Looking up..."));
  const result = await api(path);
  if (result.status !== 200) {
    screen.replaceChildren(el("p", { id: "not-found", className: "error" }, describeError(result)));
    return;
  }
  renderProfile(result.body);
}

// "any type": the value is looked up as every identifier type (and as a profile id) at once; one
// profile found shows it, several are listed to choose from.
async function findAnyType(value) {
  const screen = document.getElementById("profile-screen");
  screen.hidden = false;
  fill(screen, el("p", { className: "hint" }, "Looking up..."));
  const paths = state.config.identifier_types.map((type) => [type, `/v1/identifiers/${enc(type)}/${enc(value)}`]);
  paths.push(["profile id", `/v1/profiles/${enc(value)}`]);
  const results = await Promise.all(paths.map(async ([type, path]) => [type, await api(path)]));
  const refused = results.find(([, result]) => [401, 403].includes(result.status));
  if (refused) return fill(screen, el("p", { id: "not-found", className: "error" }, describeError(refused[1])));
  const found = new Map();
  for (const [type, result] of results) {
    if (result.status !== 200) continue;
    const entry = found.get(result.body.profile_id) || { profile: result.body, types: [] };
    entry.types.push(type);
    found.set(result.body.profile_id, entry);
  }
  if (found.size === 1) return renderProfile([...found.values()][0].profile);
  if (!found.size) {
    return fill(screen, el("p", { id: "not-found", className: "error" }, "No profile holds this value as any identifier type."));
  }
  fill(screen, el("section", { className: "card", id: "candidates" }, el("h3", {}, "Several profiles hold this value"),
    el("ul", {}, [...found.values()].map(({ profile, types }) => el("li", {},
      el("a", { href: `#/profile/${enc(profile.profile_id)}` }, el("code", {}, profile.profile_id)),
      ` as ${types.join(", ")}`)))));
}

function renderProfile(profile) {
  const screen = document.getElementById("profile-screen");
  const merged = profile.requested_profile_id && profile.requested_profile_id !== profile.profile_id;
  fill(screen,
    el("div", { className: "profile-head" },
      el("h2", {}, "Profile ", el("code", { id: "profile-id" }, profile.profile_id)),
      el("span", { className: "badge" }, profile.status),
      el("span", { className: "badge" }, `version ${profile.version}`),
      el("span", { className: "hint" }, `updated ${when(profile.updated_at)} by ${profile.cause.kind}`)),
    profile.stale ? el("p", { id: "stale-notice", className: "notice" },
      `Served from a local copy while ${STALE_REASONS[profile.stale_reason] || "the workers restore this partition"}: `
        + "changes since then (new events, merges, erasures) may be missing. Look again in a moment.") : null,
    merged ? el("p", { id: "merged-notice", className: "notice" },
      "You asked for ", el("code", {}, profile.requested_profile_id),
      ", which was merged into this profile.") : null,
    profile.merged_from.length ? el("p", { className: "hint" },
      `Merged from ${profile.merged_from.length} profile(s): `, profile.merged_from.join(", ")) : null,
    el("div", { className: "columns" },
      el("div", {}, identifiersCard(profile), can("admin") ? fixCard(profile) : null, traitsCard(profile)),
      el("div", {}, computedCard(profile), consentCard(profile),
        can("privacy:write") ? privacyCard(profile) : null)),
    evidenceCard(profile.profile_id));
}

// -- sign-in ----------------------------------------------------------------------------------

async function signIn(token) {
  const result = await api("/console/session", {}, token);
  if (result.status !== 200) return false;
  state.session = { token, name: result.body.name, scopes: result.body.scopes };
  sessionStorage.setItem(TOKEN_KEY, token);
  renderSession();
  return true;
}

function signOut() {
  state.session = null;
  sessionStorage.removeItem(TOKEN_KEY);
  renderSession();
  location.hash = "#/find";
  route();
}

async function onSignIn(event) {
  event.preventDefault();
  const input = document.getElementById("token");
  if (await signIn(input.value.trim())) {
    input.value = "";
    await route();
  } else {
    showMessage("Unknown token.", "error");
  }
}

function renderSession() {
  const session = document.getElementById("session");
  document.getElementById("nav-quarantine").hidden = !can("admin");
  if (!state.session) {
    session.replaceChildren();
    return;
  }
  fill(session,
    el("span", { id: "signed-in" }, `Signed in as ${state.session.name}`),
    el("span", { id: "scopes", className: "hint" }, state.session.scopes.join(" · ")),
    el("button", { id: "sign-out", className: "secondary", type: "button", onclick: signOut }, "Sign out"));
}

// -- start ------------------------------------------------------------------------------------

async function start() {
  const result = await api("/console/config.json");
  state.config = result.body;
  const select = document.getElementById("find-type");
  for (const type of state.config.identifier_types) {
    select.append(el("option", { value: type }, type));
  }
  document.getElementById("find-form").addEventListener("submit", onFind);
  document.getElementById("signin-form").addEventListener("submit", onSignIn);
  const kept = sessionStorage.getItem(TOKEN_KEY);
  if (kept && !(await signIn(kept))) sessionStorage.removeItem(TOKEN_KEY);
  window.addEventListener("hashchange", route);
  await route();
  document.body.dataset.ready = "true";
}

document.addEventListener("DOMContentLoaded", start);
