// The evidence graph: a small force-directed layout and an SVG drawing, no library.
// A profile's evidence has tens of identifiers, rarely a few hundred, so a plain
// Fruchterman-Reingold pass (O(n^2) per step, a fixed number of steps) is fast enough, and it is
// deterministic: nodes start on a circle in the order given, so the same graph looks the same.
"use strict";

const OmnidGraph = (() => {
  const SVG = "http://www.w3.org/2000/svg";
  const STEPS = 300;

  function layout(nodes, edges, width, height) {
    const count = nodes.length;
    const positions = new Map();
    const radius = Math.min(width, height) / 2.6;
    nodes.forEach((node, index) => {
      const angle = (2 * Math.PI * index) / Math.max(count, 1);
      positions.set(node.id, { x: width / 2 + radius * Math.cos(angle), y: height / 2 + radius * Math.sin(angle) });
    });
    if (count < 2) {
      if (count === 1) positions.set(nodes[0].id, { x: width / 2, y: height / 2 });
      return positions;
    }
    const ideal = Math.sqrt((width * height) / count) * 0.75;
    let temperature = width / 8;
    for (let step = 0; step < STEPS; step += 1) {
      const moves = new Map(nodes.map((node) => [node.id, { x: 0, y: 0 }]));
      for (let i = 0; i < count; i += 1) {
        for (let j = i + 1; j < count; j += 1) {
          const a = positions.get(nodes[i].id);
          const b = positions.get(nodes[j].id);
          const dx = a.x - b.x || 0.01;
          const dy = a.y - b.y || 0.01;
          const distance = Math.hypot(dx, dy);
          const push = (ideal * ideal) / distance;
          const ma = moves.get(nodes[i].id);
          const mb = moves.get(nodes[j].id);
          ma.x += (dx / distance) * push; ma.y += (dy / distance) * push;
          mb.x -= (dx / distance) * push; mb.y -= (dy / distance) * push;
        }
      }
      for (const edge of edges) {
        const a = positions.get(edge.source);
        const b = positions.get(edge.target);
        if (!a || !b || a === b) continue;
        const dx = a.x - b.x;
        const dy = a.y - b.y;
        const distance = Math.hypot(dx, dy) || 0.01;
        const pull = (distance * distance) / ideal;
        const ma = moves.get(edge.source);
        const mb = moves.get(edge.target);
        ma.x -= (dx / distance) * pull; ma.y -= (dy / distance) * pull;
        mb.x += (dx / distance) * pull; mb.y += (dy / distance) * pull;
      }
      for (const node of nodes) {
        const position = positions.get(node.id);
        const move = moves.get(node.id);
        const length = Math.hypot(move.x, move.y) || 1;
        const limited = Math.min(length, temperature);
        position.x = Math.min(width - 40, Math.max(40, position.x + (move.x / length) * limited));
        position.y = Math.min(height - 24, Math.max(24, position.y + (move.y / length) * limited));
      }
      temperature *= 0.985;
    }
    return positions;
  }

  // Shortest chain of accepted links between two identifiers (declined links do not join).
  function shortestPath(edges, from, to) {
    const next = new Map();
    for (const edge of edges) {
      if (edge.declined) continue;
      for (const [a, b] of [[edge.source, edge.target], [edge.target, edge.source]]) {
        if (!next.has(a)) next.set(a, []);
        next.get(a).push([b, edge]);
      }
    }
    const cameFrom = new Map([[from, null]]);
    const queue = [from];
    while (queue.length) {
      const current = queue.shift();
      if (current === to) break;
      for (const [neighbour, edge] of next.get(current) || []) {
        if (!cameFrom.has(neighbour)) {
          cameFrom.set(neighbour, [current, edge]);
          queue.push(neighbour);
        }
      }
    }
    if (!cameFrom.has(to)) return null;
    const path = { nodes: [to], edges: [] };
    for (let step = cameFrom.get(to); step; step = cameFrom.get(step[0])) {
      path.edges.unshift(step[1]);
      path.nodes.unshift(step[0]);
    }
    return path;
  }

  function svgEl(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // Draws into `svg`; `onPick(nodeId)` is called when a node is clicked.
  function draw(svg, graph, positions, highlight, onPick) {
    const onPathNodes = new Set(highlight ? highlight.nodes : []);
    const onPathEdges = new Set(highlight ? highlight.edges.map((edge) => edge.id) : []);
    const chosen = new Set(highlight ? highlight.chosen : []);
    svg.replaceChildren();
    for (const edge of graph.edges) {
      const a = positions.get(edge.source);
      const b = positions.get(edge.target);
      if (!a || !b) continue;
      const classes = ["edge", edge.declined ? "declined" : "", onPathEdges.has(edge.id) ? "on-path" : ""];
      const line = svgEl("line", { x1: a.x, y1: a.y, x2: b.x, y2: b.y, class: classes.join(" ").trim(),
        "data-edge": edge.id });
      line.append(svgEl("title", {}, edge.title || edge.label || ""));
      svg.append(line);
    }
    for (const node of graph.nodes) {
      const position = positions.get(node.id);
      const classes = ["node", node.refused ? "refused" : "", onPathNodes.has(node.id) ? "on-path" : "",
        chosen.has(node.id) ? "chosen" : ""];
      const group = svgEl("g", { class: classes.join(" ").trim(), "data-node": node.id,
        transform: `translate(${position.x},${position.y})` });
      group.append(svgEl("circle", { r: 9 }));
      group.append(svgEl("text", { x: 12, y: 4 }, node.label));
      group.append(svgEl("title", {}, node.title || node.label));
      group.addEventListener("click", () => onPick(node.id));
      svg.append(group);
    }
  }

  return { layout, shortestPath, draw };
})();
