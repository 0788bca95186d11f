// Quarantine review (scope admin): the identifiers the pipeline quarantined because many people
// claimed them (a store's phone typed at the till, a placeholder email, a shared card), from
// GET /v1/quarantine, with the values masked. Release lets one link again (its merges follow from
// its recorded claims); block keeps it out for good. Both are commands through the pipeline
// (POST /v1/quarantine/release|block), and the screen shows their outcome once processed.
"use strict";

// The outcome box is looked up on click: the rows are built before the card that holds it.
function quarantineOutcome() {
  return document.getElementById("quarantine-outcome");
}

function quarantineRow(item) {
  return el("tr", { "data-item": item.id },
    el("td", { className: "value" }, item.value_masked),
    el("td", {}, item.type),
    el("td", {}, when(item.since)),
    el("td", { className: "number" }, item.claimants === null ? "" : item.claimants),
    el("td", {}, item.channels.join(", ")),
    el("td", {}, item.sources.join(", ")),
    el("td", {}, el("div", { className: "actions" },
      el("button", { className: "release", type: "button", onclick: () => review(item, "release", quarantineOutcome()) }, "Release"),
      el("button", { className: "block danger", type: "button", onclick: () => confirmBlock(item, quarantineOutcome()) }, "Block"))));
}

async function showQuarantine(notice) {
  const screen = document.getElementById("quarantine-screen");
  const result = await api("/v1/quarantine");
  if (result.status !== 200) {
    return fill(screen, el("p", { className: "error", id: "quarantine-error" }, describeError(result)));
  }
  const items = result.body.items;
  fill(screen, el("section", { className: "card", id: "quarantine" },
    el("h3", {}, `Quarantined identifiers (${items.length})`),
    el("p", { className: "hint" }, "Values that many profiles claimed: they link nobody and the merges they made "
      + "were undone. Release one that really is one person's (its merges follow again); block a placeholder "
      + "for good. Values are masked; the channels and sources say where it was typed in."),
    items.length
      ? table(["value", "type", "since", "profiles", "channels", "sources", ""], items.map(quarantineRow),
        { id: "quarantine-items" })
      : el("p", { className: "hint", id: "quarantine-empty" }, "Nothing is quarantined."),
    el("div", { className: "outcome", id: "quarantine-outcome" }, notice || null)));
}

function confirmBlock(item, outcome) {
  fill(outcome, el("p", { className: "notice" }, `Block ${item.type} ${item.value_masked} for good? `
    + "It will never link or be stored in the clear again.",
  el("button", { id: "block-confirm", className: "danger", type: "button", onclick: () => review(item, "block", outcome) },
    "Block for good")));
}

async function review(item, action, outcome) {
  fill(outcome, el("p", { className: "hint" }, `${action === "release" ? "Releasing" : "Blocking"} ${item.value_masked}...`));
  const done = await runOperation(`/v1/quarantine/${action}`,
    { method: "POST", body: JSON.stringify({ id: item.id }) }, outcome);
  if (!done) return;
  // Processed; the list is read from the changelog, which shows it a moment later.
  const gone = await waitForOutcome(async () => {
    const listed = await api("/v1/quarantine");
    return listed.status === 200 && !listed.body.items.some((i) => i.id === item.id);
  });
  const holder = done.changes.length ? done.changes[0].profile_id : null;
  const text = action === "release"
    ? `Released: ${item.type} ${item.value_masked} links again; its merges follow from the claims it had.`
    : `Blocked: ${item.type} ${item.value_masked} is kept out for good.`;
  await showQuarantine(el("p", { id: "quarantine-done", className: "notice", "data-action": action }, text,
    holder && action === "release" ? [" ", el("a", { href: `#/profile/${enc(holder)}`, id: "quarantine-holder" }, "See the profile that holds it.")] : null,
    gone ? null : " (The list may show it for a moment longer.)"));
}
