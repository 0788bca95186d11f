// Operate: the workers of the group from GET /v1/operations (every worker's own numbers, gathered
// by the worker that served this page), refreshed every 5 s while the screen is open.
"use strict";

function stopOperate() {
  if (state.operateTimer !== null) clearInterval(state.operateTimer);
  state.operateTimer = null;
}

async function startOperate() {
  stopOperate();
  await refreshOperate();
  state.operateTimer = setInterval(refreshOperate, 5000);
}

function rate(value) {
  return value === undefined || value === null ? "…" : `${value}/min`;
}

// `hideZeros` for long lists (a refusal reason per identifier type): only what happened.
function reasonsTable(id, counts, hideZeros) {
  const entries = Object.entries(counts).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  const shown = hideZeros ? entries.filter(([, count]) => count) : entries;
  const rows = shown.map(([reason, count]) => el("tr", { "data-reason": reason, className: count ? "" : "zero" },
    el("td", {}, reason), el("td", { className: "number" }, count)));
  const zeros = entries.length - shown.length;
  return [table(["reason", "count"], rows, { id }),
    zeros ? el("p", { className: "hint" }, `${zeros} other reasons at 0.`) : null];
}

// "0,1,2 of every topic" when the worker holds the same partitions of each (the usual case).
function partitionsByTopic(names) {
  const byTopic = {};
  for (const name of names) {
    const cut = name.lastIndexOf(":");
    (byTopic[name.slice(0, cut)] = byTopic[name.slice(0, cut)] || []).push(Number(name.slice(cut + 1)));
  }
  const lists = Object.entries(byTopic).sort()
    .map(([topic, partitions]) => [topic, partitions.sort((a, b) => a - b).join(",")]);
  if (!lists.length) return "none";
  if (lists.every(([, list]) => list === lists[0][1])) return `${lists[0][1]} of ${lists.length} topics`;
  return lists.map(([topic, list]) => `${topic.split(".").slice(-1)[0]} ${list}`).join(" · ");
}

async function refreshOperate() {
  const screen = document.getElementById("operate-screen");
  const result = await api("/v1/operations");
  if (result.status !== 200) {
    screen.replaceChildren(el("p", { className: "error" }, describeError(result)));
    return;
  }
  const ops = result.body;
  const totals = ops.totals;
  const workerRows = ops.workers.map((worker) => el("tr", { "data-worker": worker.name },
    el("td", {}, worker.name),
    el("td", {}, el("span", { className: worker.serving ? "ok" : "warn" },
      worker.serving ? "ready" : `not ready (${worker.waiting_for.join(", ")})`)),
    el("td", { className: "number" }, worker.assigned.length),
    el("td", { className: "partitions" }, partitionsByTopic(worker.ready_partitions)),
    el("td", { className: "number" }, worker.consumer_lag_total),
    el("td", { className: "number" }, worker.processed),
    el("td", { className: "number" }, rate(worker.per_minute.events)),
    el("td", { className: "number" }, rate(worker.per_minute.merges)),
    el("td", { className: "number" }, rate(worker.per_minute.refusals))));
  const unreachable = ops.unreachable.map((worker) => el("tr", { className: "warn" },
    el("td", {}, worker.name), el("td", { colspan: 8 }, `did not answer at ${worker.url}`)));
  fill(screen,
    el("h2", {}, "Operate ", el("span", { className: "hint" }, `group ${ops.group}`)),
    el("div", { className: "tiles" },
      tile("workers", ops.workers.length, "workers"),
      tile("consumer lag", totals.consumer_lag, "lag"),
      tile("active profiles", totals.active_profiles, "profiles"),
      tile("merges", rate(totals.per_minute.merges), "merges-rate"),
      tile("refusals", rate(totals.per_minute.refusals), "refusals-rate"),
      tile("dead letters", rate(totals.per_minute.dead_letters), "dead-letters-rate")),
    section("Workers", table(["worker", "readiness", "partitions", "ready partitions", "lag",
      "records", "events", "merges", "refusals"], [workerRows, unreachable], { id: "workers" })),
    el("div", { className: "columns" },
      section("Dead letters by reason (since the workers started)",
        reasonsTable("dead-letters", totals.dead_letters_by_reason)),
      section("Merge refusals by reason", reasonsTable("refusals", totals.merges_refused_by_reason, true))),
    section("Consumer lag by partition", lagTable(ops.workers)),
    el("p", { className: "hint" }, `Refreshed ${when(Date.now())}; every 5 s.`));
}

// Only the partitions that are behind: with every partition of every topic listed, the few that
// matter would be lost among the zeros.
function lagTable(workers) {
  const behind = workers.flatMap((worker) => worker.consumer_lag
    .filter((entry) => entry.lag > 0).map((entry) => ({ ...entry, worker: worker.name })))
    .sort((a, b) => b.lag - a.lag);
  if (!behind.length) return el("p", { id: "lag", className: "hint" }, "No partition is behind.");
  return table(["topic", "partition", "worker", "lag"], behind.map((entry) => el("tr", {},
    el("td", {}, entry.topic), el("td", { className: "number" }, entry.partition), el("td", {}, entry.worker),
    el("td", { className: "number" }, entry.lag))), { id: "lag" });
}

function tile(label, value, id) {
  return el("div", { className: "tile", id: `tile-${id}` },
    el("div", { className: "tile-value" }, String(value)), el("div", { className: "tile-label" }, label));
}

