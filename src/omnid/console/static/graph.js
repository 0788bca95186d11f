// The evidence graph: a small force-directed layout and an SVG drawing, no library.
// A profile's evidence has tens of identifiers, rarely a few hundred, so a plain
// Fruchterman-Reingold pass (O(n^2) per step, a fixed number of steps) is fast enough, and it is
// deterministic: nodes start on a circle in the order given, so the same graph looks the same.
// (Limits bound the identifiers one profile may hold, and with them the size of this graph.)
"use strict";

const OmnidGraph = (() => {
  const SVG = "http://www.w3.org/2000/svg";
  const STEPS = 300;
  // Past this many links their labels would hide each other; the hover titles still tell.
  const EDGE_LABELS_UP_TO = 40;

  // Positions inside width x height, leaving room on the right of each node for its label.
  function layout(nodes, edges, width, height) {
    const count = nodes.length;
    const positions = new Map();
    nodes.forEach((node, index) => {
      const angle = (2 * Math.PI * index) / Math.max(count, 1);
      positions.set(node.id, { x: Math.cos(angle), y: Math.sin(angle) });
    });
    if (count > 1) spread(nodes, edges, positions);
    return fit(nodes, positions, width, height);
  }

  // Fruchterman-Reingold in a unit space: nodes repel, links pull, and a pull to the centre keeps
  // the pieces together — weak for linked nodes, strong for one nothing links (a refused
  // identifier), which would otherwise drift to a corner and squeeze the rest when fitted.
  function spread(nodes, edges, positions) {
    const ideal = 1.5 / Math.sqrt(nodes.length);
    const linked = new Set(edges.flatMap((edge) => [edge.source, edge.target]));
    let temperature = 0.2;
    for (let step = 0; step < STEPS; step += 1) {
      const moves = new Map(nodes.map((node) => [node.id, { x: 0, y: 0 }]));
      for (let i = 0; i < nodes.length; i += 1) {
        for (let j = i + 1; j < nodes.length; j += 1) {
          const a = positions.get(nodes[i].id);
          const b = positions.get(nodes[j].id);
          const dx = a.x - b.x || 1e-4;
          const dy = a.y - b.y || 1e-4;
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
        const distance = Math.hypot(dx, dy) || 1e-4;
        const pull = (distance * distance) / ideal;
        const ma = moves.get(edge.source);
        const mb = moves.get(edge.target);
        ma.x -= (dx / distance) * pull; ma.y -= (dy / distance) * pull;
        mb.x += (dx / distance) * pull; mb.y += (dy / distance) * pull;
      }
      for (const node of nodes) {
        const position = positions.get(node.id);
        const move = moves.get(node.id);
        const gravity = linked.has(node.id) ? 0.1 : 1.5;
        move.x -= position.x * gravity;
        move.y -= position.y * gravity;
        const length = Math.hypot(move.x, move.y) || 1;
        const limited = Math.min(length, temperature);
        position.x += (move.x / length) * limited;
        position.y += (move.y / length) * limited;
      }
      temperature = Math.max(temperature * 0.98, 0.002);
    }
  }

  // Stretches the unit-space layout to fill the box: each axis on its own, since a wide box
  // and a long chain of links would otherwise leave most of the width empty.
  function fit(nodes, positions, width, height) {
    const margin = 24;
    const labelRoom = Math.min(width / 3, 7 * Math.max(0, ...nodes.map((node) => node.label.length)));
    const xs = nodes.map((node) => positions.get(node.id).x);
    const ys = nodes.map((node) => positions.get(node.id).y);
    const [minX, maxX, minY, maxY] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
    const usableX = width - 2 * margin - labelRoom;
    const usableY = height - 2 * margin;
    const scaleX = maxX > minX ? usableX / (maxX - minX) : 0;
    const scaleY = maxY > minY ? usableY / (maxY - minY) : 0;
    const fitted = new Map();
    for (const node of nodes) {
      const position = positions.get(node.id);
      fitted.set(node.id, {
        x: scaleX ? margin + (position.x - minX) * scaleX : margin + usableX / 2,
        y: scaleY ? margin + (position.y - minY) * scaleY : margin + usableY / 2,
      });
    }
    return fitted;
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
      if (edge.label && graph.edges.length <= EDGE_LABELS_UP_TO) {
        svg.append(svgEl("text", { x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 - 4, class: "edge-label",
          "text-anchor": "middle" }, edge.label.length > 14 ? `${edge.label.slice(0, 13)}…` : edge.label));
      }
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

  return { layout, draw };
})();
