// See: the evidence graph of a profile (from GET /v1/profiles/{id}/explain) and the path between
// two chosen identifiers. Nodes are identifiers; an edge is the event (or merge) that linked an
// identifier to one the profile already held. Declined merges and refused identifiers are marked.
"use strict";

function identifierKey(identifier) {
  return `${identifier.type}:${identifier.value}`;
}

function shortLabel(text, length) {
  return text.length > length ? `${text.slice(0, length - 1)}…` : text;
}

function describeEvent(event) {
  if (!event) return "";
  const where = [event.channel, event.source].filter(Boolean).join(" / ");
  return `event ${event.event_id}${where ? ` (${where})` : ""} at ${when(event.at)}`;
}

// explain body -> { nodes, edges } for OmnidGraph.
function evidenceGraph(explain) {
  const nodes = [];
  const edges = [];
  const known = new Set();
  const addNode = (node) => {
    if (!known.has(node.id)) nodes.push(node);
    known.add(node.id);
  };
  for (const held of explain.identifiers) {
    const key = identifierKey(held);
    addNode({ id: key, label: shortLabel(key, 34), title: `${key}\nlinked as ${held.rule} by ${describeEvent(held.event)}` });
  }
  for (const held of explain.identifiers) {
    if (!held.linked_by) continue;
    const key = identifierKey(held);
    const other = identifierKey(held.linked_by);
    edges.push({ id: `link:${key}`, source: key, target: other, label: held.event.event_id,
      title: `${key} joined through ${other}: ${describeEvent(held.event)}` });
  }
  explain.merges.forEach((merge, index) => {
    if (!merge.via || !merge.linked_by) return;
    const by = merge.operator ? `merged by hand by ${merge.operator}` : `merge through event ${merge.event_id}`;
    edges.push({ id: `merge:${index}`, source: identifierKey(merge.via), target: identifierKey(merge.linked_by),
      label: merge.operator ? `merged by ${merge.operator}` : `merge (${merge.event_id})`,
      title: `profile ${merge.other_profile_id} ${by} at ${when(merge.at)}` });
  });
  for (const refused of explain.refused_identifiers) {
    const key = identifierKey(refused.identifier);
    addNode({ id: key, label: shortLabel(key, 34), refused: true, title: `${key}\nrefused: ${refused.reason}` });
  }
  for (const declined of explain.declined_merges) {
    const id = `profile:${declined.other_profile_id}`;
    addNode({ id, label: `profile …${declined.other_profile_id.slice(-6)}`, refused: true,
      title: `merge with profile ${declined.other_profile_id} declined: ${declined.reason}` });
    // A decline names the identifier type that would have broken a rule ("limit:email",
    // "weak_link:device_id"); the refused identifiers of that type were its links.
    const type = declined.reason.split(":")[1];
    for (const refused of explain.refused_identifiers) {
      if (refused.identifier.type !== type) continue;
      edges.push({ id: `declined:${declined.other_profile_id}:${identifierKey(refused.identifier)}`, source: id,
        target: identifierKey(refused.identifier), declined: true, label: `declined: ${declined.reason}`,
        title: `declined: ${declined.reason}` });
    }
  }
  return { nodes, edges };
}

function evidenceCard(profileId) {
  const card = section("Evidence", el("p", { className: "hint" }, "Loading the evidence..."));
  card.id = "evidence";
  loadEvidence(card, profileId);
  return card;
}

function describeHop(hop) {
  const ends = `${identifierKey(hop.from)} → ${identifierKey(hop.to)}`;
  if (hop.kind === "merge") {
    return `${ends}: merged by hand by ${hop.merge.operator} at ${when(hop.merge.at)}`;
  }
  return `${ends}: both in ${describeEvent(hop.event)}`;
}

// The hops of a path onto the drawn graph: the edge joining each hop's two identifiers, or a new
// one (the path may run through an event of the history that no identifier was linked by).
function pathOnGraph(graph, hops) {
  const edges = hops.map((hop, index) => {
    const a = identifierKey(hop.from);
    const b = identifierKey(hop.to);
    const drawn = graph.edges.find((edge) => !edge.declined
      && ((edge.source === a && edge.target === b) || (edge.source === b && edge.target === a)));
    if (drawn) return drawn;
    const label = hop.kind === "merge" ? `merged by ${hop.merge.operator}` : hop.event.event_id;
    const added = { id: `hop:${index}:${a}:${b}`, source: a, target: b, label, title: describeHop(hop) };
    graph.edges.push(added);
    return added;
  });
  const nodes = hops.length ? [identifierKey(hops[0].from), ...hops.map((hop) => identifierKey(hop.to))] : [];
  return { nodes, edges };
}

async function loadEvidence(card, profileId) {
  const result = await api(`/v1/profiles/${enc(profileId)}/explain`);
  if (result.status !== 200) {
    fill(card, el("h3", {}, "Evidence"), el("p", { className: "error" }, describeError(result)));
    return;
  }
  const explain = result.body;
  const graph = evidenceGraph(explain);
  const width = 1200;
  const height = 440;
  const positions = OmnidGraph.layout(graph.nodes, graph.edges, width, height);
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", "graph");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("id", "evidence-graph");
  const held = explain.identifiers.map(identifierKey);
  const from = el("select", { id: "path-from" }, held.map((key) => el("option", { value: key }, key)));
  const to = el("select", { id: "path-to" }, held.map((key, i) => el("option", { value: key, selected: i === held.length - 1 }, key)));
  const hops = el("ol", { id: "path-hops" });
  const chosen = [];
  const redraw = (highlight) => OmnidGraph.draw(svg, graph, positions, highlight, pick);
  const showPath = async () => {
    const ends = [from.value, to.value];
    const query = `from=${enc(ends[0])}&to=${enc(ends[1])}`;
    const answer = await api(`/v1/profiles/${enc(profileId)}/explain?${query}`);
    if (answer.status !== 200) return fill(hops, el("li", { className: "error" }, describeError(answer)));
    if (!answer.body.path) {
      redraw({ nodes: [], edges: [], chosen: ends });
      return fill(hops, el("li", { className: "error" }, "No evidence joins these two identifiers."));
    }
    const path = pathOnGraph(graph, answer.body.path);
    redraw({ ...path, chosen: ends });
    fill(hops, answer.body.path.map((hop) => el("li", {}, describeHop(hop))));
  };
  function pick(nodeId) {
    if (!held.includes(nodeId)) return;
    chosen.push(nodeId);
    if (chosen.length > 2) chosen.shift();
    from.value = chosen[0];
    if (chosen.length === 2) {
      to.value = chosen[1];
      showPath();
    } else {
      redraw({ nodes: [], edges: [], chosen: [nodeId] });
    }
  }
  redraw(null);
  fill(card,
    el("h3", {}, `Evidence (${held.length} identifiers, ${graph.edges.length} links)`),
    el("p", { className: "legend" },
      el("span", {}, "● identifier"), el("span", {}, "— linked by an event or merge"),
      el("span", { className: "error" }, "red: refused identifier or declined merge"),
      el("span", {}, "click two identifiers, or choose them, to see the path between them")),
    svg,
    el("div", { className: "actions" }, "Path from ", from, " to ", to,
      el("button", { id: "show-path", type: "button", onclick: showPath }, "Show path")),
    hops,
    bansList(explain));
}

// A ban keeps digests only: a side shows the identifiers this profile holds, else its size.
function banSide(held, count, profileId) {
  if (held.length) return held.map(identifierKey).join(", ");
  return `${count} identifier${count === 1 ? "" : "s"} of profile ${profileId}`;
}

function bansList(explain) {
  if (!explain.bans.length) return null;
  return el("div", { id: "bans" }, el("h3", {}, "Re-link bans"),
    explain.bans.map((ban) => el("p", { className: "hint", "data-ban": ban.ban_id },
      `${banSide(ban.left, ban.left_count, ban.left_profile_id)} never again with `
        + `${banSide(ban.right, ban.right_count, ban.right_profile_id)} `
        + `(by ${ban.operator} at ${when(ban.at)}) `,
      can("admin") ? el("button", { className: "secondary", type: "button", onclick: () => liftBan(ban) }, "Lift ban") : null)));
}
