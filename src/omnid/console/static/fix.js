// Fix (scope admin): split ticked identifiers off with a re-link ban, merge two profiles by hand,
// lift a ban. Each is a command through the pipeline (POST /v1/profiles/{id}/split,
// POST /v1/profiles/merge, DELETE /v1/bans/{id}); the console shows its outcome once the
// pipeline has processed it — the profiles as the lookup API then serves them — not just "sent".
"use strict";

function splitKey(key) {
  const cut = key.indexOf(":");
  return { type: key.slice(0, cut), value: key.slice(cut + 1) };
}

function profileSummary(profile, id) {
  return el("div", { className: "card", id },
    el("p", {}, el("a", { href: `#/profile/${enc(profile.profile_id)}` }, el("code", {}, profile.profile_id)),
      ` version ${profile.version}`),
    el("ul", {}, profile.identifiers.map((i) => el("li", {}, `${i.type}: ${i.value}`))));
}

function selectedIdentifiers() {
  return [...document.querySelectorAll("#identifiers input.pick:checked")].map((box) => box.value);
}

async function lookupKey(key) {
  const { type, value } = splitKey(key);
  return api(`/v1/identifiers/${enc(type)}/${enc(value)}`);
}

// Sends an operation and follows it: the answer once the pipeline carried it out, or null after
// saying why not (refused: a limit, a ban, an unknown profile...).
async function runOperation(path, options, outcome) {
  const sent = await api(`${path}?wait=30`, options);
  if (sent.status === 409) {
    fill(outcome, el("p", { className: "error", id: "fix-refused" }, `Refused by the pipeline: ${sent.body.reason}`));
    return null;
  }
  if (sent.status !== 200 && sent.status !== 202) {
    fill(outcome, el("p", { className: "error" }, describeError(sent)));
    return null;
  }
  if (sent.status === 200) return sent.body;
  fill(outcome, el("p", { className: "hint", id: "fix-pending" }, "Sent; waiting for the pipeline to process it..."));
  const answer = await waitForOutcome(async () => {
    const status = await api(sent.body.status_url);
    return status.status === 200 || status.status === 409 ? status : null;
  });
  if (!answer) {
    fill(outcome, el("p", { className: "error" }, "Not processed yet; look again later."));
    return null;
  }
  if (answer.body.status === "refused") {
    fill(outcome, el("p", { className: "error", id: "fix-refused" }, `Refused by the pipeline: ${answer.body.reason}`));
    return null;
  }
  return answer.body;
}

async function splitSelected(profile, outcome) {
  const keys = selectedIdentifiers();
  if (!keys.length) return fill(outcome, el("p", { className: "error" }, "Tick the identifiers to split off first."));
  fill(outcome, el("p", { className: "hint" }, `Splitting off ${keys.join(", ")}...`));
  const done = await runOperation(`/v1/profiles/${enc(profile.profile_id)}/split`,
    { method: "POST", body: JSON.stringify({ identifiers: keys.map(splitKey) }) }, outcome);
  if (!done) return;
  // Carried out; the two profiles as the lookup API serves them now (their new snapshots).
  const sides = await waitForOutcome(async () => {
    const moved = await lookupKey(keys[0]);
    if (moved.status !== 200 || moved.body.profile_id === profile.profile_id) return null;
    const kept = await api(`/v1/profiles/${enc(profile.profile_id)}`);
    if (kept.status !== 200 || kept.body.identifiers.some((i) => keys.includes(identifierKey(i)))) return null;
    return { kept: kept.body, split: moved.body };
  });
  if (!sides) return fill(outcome, el("p", { className: "error" }, "Split, but the lookup API does not show it yet; look again."));
  // The screen shows this profile's new snapshot; the outcome stays in its Fix card.
  renderProfile(sides.kept);
  fill(document.getElementById("fix-outcome"),
    el("p", { id: "fix-done", className: "notice" },
      `Split: ${keys.join(", ")} now belong to a profile of their own, and a ban keeps the two apart.`),
    el("div", { className: "columns" },
      el("div", {}, el("h3", {}, "This profile now"), profileSummary(sides.kept, "split-kept")),
      el("div", {}, el("h3", {}, "The split-off profile"), profileSummary(sides.split, "split-new"))));
}

async function mergeWith(profile, otherId, outcome) {
  if (!otherId) return fill(outcome, el("p", { className: "error" }, "Give the id of the profile to merge with."));
  fill(outcome, el("p", { className: "hint" }, `Merging with ${otherId}...`));
  const done = await runOperation("/v1/profiles/merge",
    { method: "POST", body: JSON.stringify({ profile_ids: [profile.profile_id, otherId] }) }, outcome);
  if (!done) return;
  const merged = await waitForOutcome(async () => {
    const mine = await api(`/v1/profiles/${enc(profile.profile_id)}`);
    const theirs = await api(`/v1/profiles/${enc(otherId)}`);
    const same = mine.status === 200 && theirs.status === 200 && mine.body.profile_id === theirs.body.profile_id;
    return same ? mine.body : null;
  });
  if (!merged) return fill(outcome, el("p", { className: "error" }, "Merged, but the lookup API does not show it yet; look again."));
  fill(outcome, el("p", { id: "fix-done", className: "notice" }, `Merged: both ids now show profile ${merged.profile_id}.`),
    profileSummary(merged, "merged-profile"));
}

async function liftBan(ban) {
  const outcome = document.getElementById("fix-outcome");
  fill(outcome, el("p", { className: "hint" }, "Lifting the ban..."));
  const done = await runOperation(`/v1/bans/${enc(ban.ban_id)}`, { method: "DELETE" }, outcome);
  if (done) fill(outcome, el("p", { id: "fix-done", className: "notice" }, "Ban lifted: the two sides may link again."));
}

function fixCard(profile) {
  const outcome = el("div", { className: "outcome", id: "fix-outcome" });
  const other = el("input", { id: "merge-other", placeholder: "other profile id" });
  return el("section", { className: "card", id: "fix" },
    el("h3", {}, "Fix"),
    el("div", { className: "actions" },
      el("button", { id: "split", className: "danger", type: "button", onclick: () => splitSelected(profile, outcome) },
        "Split ticked identifiers off (with a ban)")),
    el("div", { className: "actions" }, other,
      el("button", { id: "merge", type: "button", onclick: () => mergeWith(profile, other.value.trim(), outcome) },
        "Merge with this profile")),
    outcome);
}
