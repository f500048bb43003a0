// Workflow diagrams: a definition drawn as a graph, and a run drawn as the same graph with each step's state.
// Laid out by dagre (static/vendor/dagre), drawn here as SVG. No inline script: a page gives its data in
// attributes of the figure (`.wf-diagram`):
//   data-definition   the normalised definition (JSON)
//   data-run          optional: the run as GET /api/v1/workflow-runs/{id} answers it (JSON)
//   data-run-url, data-events-url, data-stream-url   optional: follow a running run live
//   data-details      the id of the panel that shows a clicked step
//   data-steps-table  optional: the id of a <tbody> listing the steps (kept up to date)
//   data-events-table optional: the id of a <tbody> listing the run's events (rows added as they come)
// A step is a focusable button (Enter or Space opens it); the picture scrolls inside its own box on small
// screens, or fits the width with the "Fit to width" toggle.
(() => {
  "use strict";

  const SVG = "http://www.w3.org/2000/svg";
  const STATUS_MARK = {
    pending: "○", queued: "◔", running: "▶", waiting: "⏸",
    succeeded: "✓", failed: "✗", skipped: "↷", cancelled: "⊘",
  };
  const FINISHED = new Set(["succeeded", "failed", "skipped", "cancelled"]);
  // The run's event types (workflows/engine): each one makes the page read the run again.
  const EVENT_TYPES = [
    "run.started", "run.succeeded", "run.failed", "run.cancelled",
    "step.queued", "step.started", "step.running", "step.waiting", "step.retrying", "step.reaped",
    "step.succeeded", "step.failed", "step.skipped", "step.cancelled",
    "approval.requested", "approval.decided", "event.received",
  ];
  const POLL_MS = 2000; // also read while running: not every change of a step is an event
  const W = 200; // a step's width
  const BRANCH_W = 150;
  const GAP = 10;
  let diagramCount = 0;

  // --- small helpers ---------------------------------------------------------------------------------------

  function el(name, attrs = {}, text) {
    const node = document.createElementNS(SVG, name);
    for (const [key, value] of Object.entries(attrs)) {
      if (value !== undefined && value !== null) node.setAttribute(key, String(value));
    }
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function html(name, attrs = {}, text) {
    const node = document.createElement(name);
    for (const [key, value] of Object.entries(attrs)) {
      if (value !== undefined && value !== null && value !== false) node.setAttribute(key, String(value));
    }
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function clip(text, chars) {
    text = String(text ?? "");
    return text.length > chars ? text.slice(0, chars - 1) + "…" : text;
  }

  function pretty(value) {
    if (value === null || value === undefined) return "null";
    if (typeof value === "string") return value;
    return JSON.stringify(value, null, 2);
  }

  function duration(ms) {
    if (ms === null || ms === undefined) return "";
    if (ms < 1000) return `${Math.round(ms)} ms`;
    const seconds = ms / 1000;
    if (seconds < 60) return `${seconds.toFixed(1)} s`;
    const minutes = Math.floor(seconds / 60);
    if (minutes < 60) return `${minutes} min ${Math.round(seconds % 60)} s`;
    return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
  }

  function money(cost) {
    const value = Number(cost || 0);
    if (!value) return "";
    return "$" + (value >= 0.01 ? value.toFixed(2) : value.toPrecision(2));
  }

  function when(iso) {
    return iso ? new Date(iso).toISOString().slice(0, 19).replace("T", " ") + " UTC" : "";
  }

  function metrics(step) {
    if (!step) return "";
    const parts = [duration(step.duration_ms)];
    if (step.tokens) parts.push(`${step.tokens} tokens`);
    parts.push(money(step.cost));
    if (step.reused) parts.push("reused");
    return parts.filter(Boolean).join(" · ");
  }

  function statusText(step) {
    if (!step) return "not started";
    const attempt = step.attempt > 1 ? ` (attempt ${step.attempt})` : "";
    return `${step.status}${attempt}`;
  }

  function joinText(spec) {
    const n = spec.branches.length;
    const join = spec.join ?? "all";
    if (join === "all") return "join: all";
    if (join === "any") return "join: any";
    const atLeast = (join && join.at_least) || spec.at_least;
    return `join: ${atLeast} of ${n}`;
  }

  function detailOf(spec) {
    switch (spec.kind) {
      case "agent": return `agent ${spec.agent}`;
      case "switch": return `${spec.cases.length} case${spec.cases.length === 1 ? "" : "s"}${spec.default && spec.default.length ? " + default" : ""}`;
      case "memory": return `${spec.action} · ${spec.namespace}`;
      case "approval": {
        const who = [];
        if (spec.approvers.users && spec.approvers.users.length) who.push(spec.approvers.users.join(", "));
        if (spec.approvers.role) who.push(`role ${spec.approvers.role}`);
        return `by ${who.join(" or ")}`;
      }
      case "wait":
        if (spec.for !== undefined && spec.for !== null) return `for ${duration(spec.for * 1000)}`;
        if (spec.until) return `until ${spec.until}`;
        return `event ${spec.event}`;
      case "workflow": return `calls ${spec.workflow}`;
      case "transform": return "transform a value";
      default: return "";
    }
  }

  // --- the model: nodes, their sizes, and edges ----------------------------------------------------------

  function routeLabels(from, to) {
    if (from.kind === "switch") {
      const labels = [];
      from.cases.forEach((kase, index) => {
        if (kase.steps.includes(to)) labels.push(`case ${index + 1}: ${clip(kase.when, 22)}`);
      });
      if ((from.default || []).includes(to)) labels.push("default");
      return labels.join(" / ");
    }
    if (from.kind === "approval" && from.branches) {
      return ["approved", "rejected", "expired"].filter((branch) => (from.branches[branch] || []).includes(to)).join(" / ");
    }
    return "";
  }

  function sizeOf(spec, live) {
    if (spec.kind === "parallel") {
      const columns = Math.min(spec.branches.length, 3);
      const rows = Math.ceil(spec.branches.length / columns);
      const branchH = live ? 80 : 46;
      const header = live ? 82 : 48;
      return {
        width: Math.max(W, columns * BRANCH_W + (columns - 1) * GAP + 2 * GAP),
        height: header + rows * branchH + (rows - 1) * GAP + 34,
        header, branchH, columns,
      };
    }
    if (spec.kind === "map") return { width: W + 20, height: live ? 186 : 142 };
    return { width: W, height: live ? 104 : 66 };
  }

  // --- drawing -------------------------------------------------------------------------------------------

  function texts(group, x, lines) {
    for (const [y, text, cls, chars] of lines) {
      if (text) group.append(el("text", { x, y, class: cls }, clip(text, chars || 28)));
    }
  }

  function button(attrs, label) {
    return el("g", { ...attrs, role: "button", tabindex: "0", "aria-label": label });
  }

  function stepLabel(spec, step, live) {
    let label = `${spec.kind} step ${spec.id}`;
    if (spec.name) label += ` (${spec.name})`;
    if (live) {
      label += `: ${statusText(step)}`;
      const more = metrics(step);
      if (more) label += `, ${more}`;
    }
    return label;
  }

  function drawStep(spec, key, step, box, live) {
    const status = live ? (step ? step.status : "pending") : "";
    const group = button(
      { class: `wf-node wf-step kind-${spec.kind}${status ? " status-" + status : ""}`, "data-key": key,
        transform: `translate(${box.x},${box.y})` },
      stepLabel(spec, step, live),
    );
    group.append(el("title", {}, stepLabel(spec, step, live)));
    group.append(el("rect", { width: box.width, height: box.height, rx: 8, class: "wf-box" }));
    const chars = Math.floor(box.width / 7.2);
    texts(group, 12, [
      [18, spec.kind.toUpperCase() + (spec.if ? " · if" : ""), "wf-kind", chars],
      [38, spec.id, "wf-id", chars - 4],
      [56, spec.name || detailOf(spec), "wf-detail", chars],
    ]);
    if (live) {
      group.append(el("line", { x1: 0, x2: box.width, y1: 66, y2: 66, class: "wf-rule" }));
      texts(group, 12, [
        [83, `${STATUS_MARK[status] || ""} ${statusText(step)}`, "wf-status", chars],
        [99, metrics(step), "wf-metrics", chars],
      ]);
    }
    return group;
  }

  function drawParallel(spec, step, box, size, live, steps) {
    const status = live ? (step ? step.status : "pending") : "";
    const group = el("g", {
      class: `wf-node wf-parallel${status ? " status-" + status : ""}`, role: "group",
      "aria-label": `parallel step ${spec.id}, ${spec.branches.length} branches, ${joinText(spec)}`,
      transform: `translate(${box.x},${box.y})`,
    });
    group.append(el("rect", { width: box.width, height: box.height, rx: 10, class: "wf-group" }));
    const head = button({ class: "wf-head", "data-key": spec.id }, stepLabel(spec, step, live));
    head.append(el("rect", { width: box.width, height: size.header - 4, rx: 10, class: "wf-box" }));
    const chars = Math.floor(box.width / 7.2);
    texts(head, 12, [
      [18, "PARALLEL" + (spec.if ? " · if" : ""), "wf-kind", chars],
      [38, spec.id, "wf-id", chars],
    ]);
    if (live) {
      texts(head, 12, [
        [58, `${STATUS_MARK[status] || ""} ${statusText(step)}`, "wf-status", chars],
        [74, metrics(step), "wf-metrics", chars],
      ]);
    }
    group.append(head);
    spec.branches.forEach((branch, index) => {
      const column = index % size.columns;
      const row = Math.floor(index / size.columns);
      const key = `${spec.id}.${branch.id}`;
      const child = steps ? steps.get(key) : undefined;
      const childStatus = live ? (child ? child.status : "pending") : "";
      const x = GAP + column * (BRANCH_W + GAP);
      const y = size.header + row * (size.branchH + GAP);
      const node = button(
        { class: `wf-node wf-branch kind-${branch.kind}${childStatus ? " status-" + childStatus : ""}`,
          "data-key": key, transform: `translate(${x},${y})` },
        `branch ${index + 1} of ${spec.id}: ` + stepLabel(branch, child, live),
      );
      node.append(el("title", {}, stepLabel(branch, child, live)));
      node.append(el("rect", { width: BRANCH_W, height: size.branchH, rx: 6, class: "wf-box" }));
      texts(node, 8, [
        [16, branch.kind.toUpperCase(), "wf-kind", 20],
        [34, branch.id, "wf-id", 17],
      ]);
      if (live) {
        texts(node, 8, [
          [55, `${STATUS_MARK[childStatus] || ""} ${statusText(child)}`, "wf-status", 20],
          [72, metrics(child), "wf-metrics", 20],
        ]);
      }
      group.append(node);
    });
    group.append(el("text", { x: box.width / 2, y: box.height - 12, class: "wf-join", "text-anchor": "middle" }, joinText(spec)));
    return group;
  }

  function mapCounts(key, steps) {
    const items = [...steps.values()].filter((step) => step.parent === key);
    const counts = {};
    for (const item of items) counts[item.status] = (counts[item.status] || 0) + 1;
    return { items, text: Object.entries(counts).map(([status, n]) => `${n} ${status}`).join(", ") };
  }

  function drawMap(spec, step, box, live, steps) {
    const status = live ? (step ? step.status : "pending") : "";
    const inner = spec.step;
    const limit = spec.max_concurrency ?? 4;
    let itemsLine = `× each item (max ${limit} at once)`;
    let secondLine = `of ${spec.items}`;
    if (live) {
      const { items, text } = mapCounts(spec.id, steps);
      const n = items.length || (step && step.input && step.input.items) || 0;
      if (items.length || (step && FINISHED.has(step.status))) {
        itemsLine = `× ${n} item${n === 1 ? "" : "s"} (max ${limit} at once)`;
        secondLine = text || "no items";
      }
    }
    const label = `${stepLabel(spec, step, live)}; runs the ${inner.kind} step ${inner.id} ${itemsLine.slice(2)}, on error ${spec.on_error}`;
    const group = button(
      { class: `wf-node wf-map kind-map${status ? " status-" + status : ""}`, "data-key": spec.id,
        transform: `translate(${box.x},${box.y})` },
      label,
    );
    group.append(el("title", {}, label));
    group.append(el("rect", { width: box.width, height: box.height, rx: 10, class: "wf-box" }));
    const chars = Math.floor(box.width / 7.2);
    texts(group, 12, [
      [18, "MAP" + (spec.if ? " · if" : ""), "wf-kind", chars],
      [36, spec.id, "wf-id", chars],
    ]);
    const innerBox = el("g", { class: `wf-inner kind-${inner.kind}`, transform: "translate(12,46)" });
    innerBox.append(el("rect", { width: box.width - 24, height: 44, rx: 6, class: "wf-box" }));
    texts(innerBox, 8, [
      [16, inner.kind.toUpperCase(), "wf-kind", chars - 4],
      [34, inner.id, "wf-id", chars - 6],
    ]);
    group.append(innerBox);
    texts(group, 12, [
      [110, itemsLine, "wf-items", chars],
      [128, secondLine, "wf-detail", chars],
    ]);
    if (live) {
      group.append(el("line", { x1: 0, x2: box.width, y1: 140, y2: 140, class: "wf-rule" }));
      texts(group, 12, [
        [158, `${STATUS_MARK[status] || ""} ${statusText(step)}`, "wf-status", chars],
        [176, metrics(step), "wf-metrics", chars],
      ]);
    }
    return group;
  }

  function edgePath(points) {
    if (!points || !points.length) return "";
    let path = `M${points[0].x},${points[0].y}`;
    if (points.length === 2) return path + ` L${points[1].x},${points[1].y}`;
    for (let i = 1; i < points.length - 1; i++) {
      const mid = { x: (points[i].x + points[i + 1].x) / 2, y: (points[i].y + points[i + 1].y) / 2 };
      path += ` Q${points[i].x},${points[i].y} ${i === points.length - 2 ? `${points[i + 1].x},${points[i + 1].y}` : `${mid.x},${mid.y}`}`;
    }
    return path;
  }

  // --- one diagram ---------------------------------------------------------------------------------------

  class Diagram {
    constructor(figure) {
      this.figure = figure;
      this.definition = JSON.parse(figure.dataset.definition);
      this.run = figure.dataset.run ? JSON.parse(figure.dataset.run) : null;
      this.live = Boolean(this.run);
      this.id = ++diagramCount;
      this.specs = new Map();
      const add = (spec) => {
        this.specs.set(spec.id, spec);
        if (spec.kind === "parallel") spec.branches.forEach(add);
        if (spec.kind === "map") add(spec.step);
      };
      this.definition.steps.forEach(add);
      this.details = figure.dataset.details ? document.getElementById(figure.dataset.details) : null;
      this.selected = null;
      this.layout();
      this.draw();
      this.figure.addEventListener("click", (event) => this.activate(event));
      this.figure.addEventListener("keydown", (event) => {
        if (event.key === "Enter" || event.key === " ") this.activate(event);
      });
      this.setUpFit();
      if (this.details) this.setUpDetails();
      if (this.run) this.update(this.run);
      if (this.run && this.run.status === "running" && figure.dataset.runUrl) this.follow();
    }

    get steps() {
      return new Map((this.run ? this.run.steps : []).map((step) => [step.key, step]));
    }

    layout() {
      const graph = new dagre.graphlib.Graph({ multigraph: true });
      graph.setGraph({ rankdir: "TB", nodesep: 36, ranksep: 56, edgesep: 16, marginx: 12, marginy: 12 });
      graph.setDefaultEdgeLabel(() => ({}));
      this.sizes = new Map();
      for (const spec of this.definition.steps) {
        const size = sizeOf(spec, this.live);
        this.sizes.set(spec.id, size);
        graph.setNode(spec.id, { width: size.width, height: size.height });
      }
      for (const spec of this.definition.steps) {
        for (const need of spec.needs || []) {
          const label = routeLabels(this.specs.get(need), spec.id);
          const edge = label ? { label, width: Math.min(label.length, 40) * 6.6 + 12, height: 20, labelpos: "c" } : {};
          graph.setEdge(need, spec.id, edge, `${need}->${spec.id}`);
        }
      }
      dagre.layout(graph);
      this.graph = graph;
    }

    draw() {
      const graph = this.graph;
      const { width, height } = graph.graph();
      const steps = this.steps;
      const svg = el("svg", {
        class: "wf-svg", width: Math.ceil(width), height: Math.ceil(height),
        viewBox: `0 0 ${Math.ceil(width)} ${Math.ceil(height)}`, role: "group",
        "aria-label": `${this.live ? "Run of" : "Diagram of"} the workflow ${this.definition.name}: ${this.definition.steps.length} steps`,
      });
      const marker = `wf-arrow-${this.id}`;
      const defs = el("defs");
      const arrow = el("marker", { id: marker, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" });
      arrow.append(el("path", { d: "M0,0 L10,5 L0,10 z", class: "wf-arrowhead" }));
      defs.append(arrow);
      svg.append(defs);

      const edges = el("g", { class: "wf-edges", "aria-hidden": "true" });
      for (const edge of graph.edges()) {
        const data = graph.edge(edge);
        const routed = data.label ? " wf-route" : "";
        edges.append(el("path", { d: edgePath(data.points), class: "wf-edge" + routed, "marker-end": `url(#${marker})` }));
        if (data.label) {
          const text = clip(data.label, 40);
          const labelWidth = text.length * 6.6 + 10;
          edges.append(el("rect", { x: data.x - labelWidth / 2, y: data.y - 10, width: labelWidth, height: 20, rx: 4, class: "wf-edge-label-bg" }));
          edges.append(el("text", { x: data.x, y: data.y + 4, "text-anchor": "middle", class: "wf-edge-label" }, text));
        }
      }
      svg.append(edges);

      const nodes = el("g", { class: "wf-nodes" });
      for (const spec of this.definition.steps) {
        const laid = graph.node(spec.id);
        const size = this.sizes.get(spec.id);
        const box = { x: laid.x - size.width / 2, y: laid.y - size.height / 2, width: size.width, height: size.height };
        const step = steps.get(spec.id);
        if (spec.kind === "parallel") nodes.append(drawParallel(spec, step, box, size, this.live, steps));
        else if (spec.kind === "map") nodes.append(drawMap(spec, step, box, this.live, steps));
        else nodes.append(drawStep(spec, spec.id, step, box, this.live));
      }
      svg.append(nodes);

      const focused = document.activeElement && this.figure.contains(document.activeElement) ? document.activeElement.dataset.key : null;
      const old = this.figure.querySelector("svg.wf-svg");
      const scroller = this.figure.querySelector(".wf-scroll");
      if (old) old.replaceWith(svg);
      else {
        scroller.append(svg);
        // Wider than its box (a phone): start with the first step in view, not the left edge.
        const first = graph.node(this.definition.steps[0].id);
        if (svg.clientWidth > scroller.clientWidth) scroller.scrollLeft = Math.max(0, first.x - scroller.clientWidth / 2);
      }
      if (focused) {
        const again = svg.querySelector(`[data-key="${CSS.escape(focused)}"]`);
        if (again) again.focus();
      }
      for (const node of svg.querySelectorAll("[data-key]")) {
        node.classList.toggle("selected", node.dataset.key === this.selected);
      }
    }

    setUpFit() {
      const toggle = this.figure.querySelector("button.wf-fit");
      if (!toggle) return;
      toggle.hidden = false;
      toggle.addEventListener("click", () => {
        const fit = toggle.getAttribute("aria-pressed") !== "true";
        toggle.setAttribute("aria-pressed", String(fit));
        this.figure.classList.toggle("fit", fit);
      });
    }

    activate(event) {
      const node = event.target.closest("[data-key]");
      if (!node || !this.figure.contains(node)) return;
      event.preventDefault();
      this.select(node.dataset.key);
    }

    // --- the details panel -------------------------------------------------------------------------------

    setUpDetails() {
      this.details.querySelector(".wf-close")?.addEventListener("click", () => this.close());
      this.details.addEventListener("keydown", (event) => {
        if (event.key === "Escape") this.close();
      });
      this.details.addEventListener("click", (event) => {
        const child = event.target.closest("button[data-show]");
        if (child) this.select(child.dataset.show);
      });
    }

    close() {
      const key = this.selected;
      this.selected = null;
      this.details.hidden = true;
      this.draw();
      const node = key && this.figure.querySelector(`[data-key="${CSS.escape(key)}"]`);
      if (node) node.focus();
    }

    select(key) {
      if (!this.details) return;
      this.selected = key;
      for (const node of this.figure.querySelectorAll("[data-key]")) {
        node.classList.toggle("selected", node.dataset.key === key);
      }
      this.details.hidden = false;
      this.fill(key);
      const heading = this.details.querySelector(".wf-details-title");
      heading.focus();
    }

    fill(key) {
      const body = this.details.querySelector(".wf-details-body");
      const heading = this.details.querySelector(".wf-details-title");
      const step = this.steps.get(key);
      const specId = step ? step.step_id : key.includes(".") ? key.split(".").pop() : key;
      const spec = this.specs.get(specId) || this.specs.get(key);
      heading.textContent = `Step ${key}`;
      body.replaceChildren();
      const facts = html("dl", { class: "wf-facts" });
      const fact = (name, value) => {
        if (value === "" || value === null || value === undefined) return;
        facts.append(html("dt", {}, name), html("dd", {}, String(value)));
      };
      fact("Kind", spec ? spec.kind : step && step.kind);
      if (spec && spec.name) fact("Name", spec.name);
      if (spec && spec.description) fact("Description", spec.description);
      if (this.live) {
        fact("Status", `${STATUS_MARK[step ? step.status : "pending"] || ""} ${statusText(step)}`);
        if (step) {
          fact("Duration", duration(step.duration_ms));
          fact("Tokens", step.tokens || "0");
          fact("Cost", money(step.cost) || "$0");
          if (step.reused) fact("Reused", "yes: copied from the run this one re-runs");
          if (/\[\d+\]$/.test(step.key)) fact("Item", `#${step.index}`);
          fact("Started", when(step.started_at));
          fact("Finished", when(step.finished_at));
        }
      }
      body.append(facts);
      const block = (title, value, cls) => {
        body.append(html("h3", {}, title));
        const pre = html("pre", { class: `wf-json ${cls || ""}`, tabindex: "0", "aria-label": `${title} of ${key}` }, value);
        body.append(pre);
      };
      if (this.live && step) {
        if (step.item !== null && step.item !== undefined) block("Item", pretty(step.item));
        block("Input", pretty(step.input));
        block("Output", pretty(step.output));
        if (step.error) block("Error", step.error, "wf-error");
        const children = [...this.steps.values()].filter((other) => other.parent === key);
        if (children.length) {
          body.append(html("h3", {}, spec && spec.kind === "map" ? `Items (${children.length})` : "Branches"));
          const list = html("ul", { class: "wf-children" });
          for (const child of children) {
            const item = html("li");
            item.append(html("button", { type: "button", "data-show": child.key },
              `${child.key}: ${STATUS_MARK[child.status] || ""} ${child.status}`));
            list.append(item);
          }
          body.append(list);
        }
      } else if (this.live) {
        body.append(html("p", {}, "This step has not started."));
      }
      if (!this.live && spec) block("Definition", pretty(spec));
      const rerun = this.details.querySelector("form.wf-rerun");
      if (rerun) {
        const topLevel = this.definition.steps.some((top) => top.id === key);
        rerun.hidden = !topLevel || !this.run || this.run.status === "running";
        rerun.querySelector("input[name=from_step]").value = topLevel ? key : "";
        const label = rerun.querySelector("button");
        if (label) label.textContent = `Re-run from ${key}`;
      }
    }

    // --- a run, live ---------------------------------------------------------------------------------------

    update(run) {
      const seen = JSON.stringify(run);
      if (seen === this.seen) return; // nothing moved since the last read: keep the page as it is
      this.seen = seen;
      this.run = run;
      this.draw();
      if (this.selected && this.details && !this.details.hidden) this.fill(this.selected);
      for (const field of document.querySelectorAll("[data-run-field]")) {
        const name = field.dataset.runField;
        let value = run[name];
        if (name === "cost" || name === "saved_cost") value = money(value) || "$0";
        else if (name === "outputs") value = value === null || value === undefined ? "" : pretty(value);
        else if (name === "finished_at") value = when(value);
        if (field.textContent !== String(value ?? "")) field.textContent = String(value ?? "");
        const holder = field.closest("[data-run-optional]");
        if (holder) holder.hidden = !value;
      }
      for (const badge of document.querySelectorAll("[data-run-status]")) {
        badge.className = badge.className.replace(/\bstatus-\S+/g, "").trim() + ` status-${run.status}`;
      }
      for (const part of document.querySelectorAll("[data-while-running]")) part.hidden = run.status !== "running";
      const table = this.figure.dataset.stepsTable && document.getElementById(this.figure.dataset.stepsTable);
      if (table) this.fillSteps(table, run.steps);
    }

    fillSteps(tbody, steps) {
      tbody.replaceChildren();
      for (const step of steps) {
        const row = html("tr");
        row.append(
          html("td", {}, step.key),
          html("td", {}, step.kind),
          html("td", { class: `status-${step.status}` }, `${STATUS_MARK[step.status] || ""} ${statusText(step)}`),
          html("td", {}, duration(step.duration_ms)),
          html("td", {}, String(step.tokens || 0)),
          html("td", {}, money(step.cost) || "$0"),
        );
        tbody.append(row);
      }
    }

    follow() {
      const runUrl = this.figure.dataset.runUrl;
      const eventsUrl = this.figure.dataset.eventsUrl;
      const events = this.figure.dataset.eventsTable && document.getElementById(this.figure.dataset.eventsTable);
      let lastEvent = Number(this.figure.dataset.lastEvent || 0);
      let busy = false;
      let again = false;
      let stopped = false;
      let source = null;
      let poll = null;
      const stop = () => {
        stopped = true;
        if (source) source.close();
        if (poll) clearInterval(poll);
      };
      const read = async () => {
        if (stopped) return;
        if (busy) {
          again = true;
          return;
        }
        busy = true;
        try {
          const options = { credentials: "same-origin", headers: { Accept: "application/json" } };
          const answer = await fetch(runUrl, options);
          if (answer.ok) {
            const run = await answer.json();
            if (eventsUrl && events) {
              const listed = await fetch(`${eventsUrl}?after=${lastEvent}`, options);
              if (listed.ok) {
                for (const event of await listed.json()) {
                  lastEvent = Math.max(lastEvent, event.id);
                  events.append(eventRow(event));
                }
              }
            }
            this.update(run);
            if (run.status !== "running") stop();
          }
        } catch {
          // offline for a moment: the next event or poll tries again
        } finally {
          busy = false;
          if (again && !stopped) {
            again = false;
            read();
          }
        }
      };
      if (window.EventSource && this.figure.dataset.streamUrl) {
        source = new EventSource(this.figure.dataset.streamUrl, { withCredentials: true });
        for (const type of EVENT_TYPES) source.addEventListener(type, () => read());
        source.addEventListener("message", () => read());
      }
      poll = setInterval(read, POLL_MS);
      read();
      window.addEventListener("pagehide", stop);
    }
  }

  function eventRow(event) {
    const row = html("tr");
    const data = event.data && Object.keys(event.data).length ? JSON.stringify(event.data) : "";
    row.append(
      html("td", { class: "when" }, new Date(event.created_at).toISOString().slice(11, 19)),
      html("td", {}, event.type),
      html("td", {}, event.step || ""),
      html("td", { class: "wf-event-data" }, clip(data, 300)),
    );
    return row;
  }

  // --- the editor: a problem's link selects its line -------------------------------------------------------

  function setUpProblems() {
    for (const link of document.querySelectorAll("a[data-line]")) {
      link.addEventListener("click", (event) => {
        const editor = document.getElementById(link.getAttribute("href").slice(1));
        if (!editor || editor.tagName !== "TEXTAREA") return;
        event.preventDefault();
        const lines = editor.value.split("\n");
        const line = Math.max(1, Math.min(Number(link.dataset.line), lines.length));
        const start = lines.slice(0, line - 1).reduce((sum, text) => sum + text.length + 1, 0);
        const column = Math.max(0, Number(link.dataset.column || 1) - 1);
        editor.focus();
        editor.setSelectionRange(start + Math.min(column, lines[line - 1].length), start + lines[line - 1].length);
        const lineHeight = parseFloat(getComputedStyle(editor).lineHeight) || 20;
        editor.scrollTop = Math.max(0, (line - 3) * lineHeight);
      });
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    setUpProblems();
    if (typeof dagre === "undefined") return; // the static list and tables still say it all
    for (const figure of document.querySelectorAll(".wf-diagram[data-definition]")) {
      try {
        figure.diagram = new Diagram(figure);
        figure.classList.add("drawn");
      } catch (error) {
        figure.classList.add("failed");
        throw error;
      }
    }
  });
})();
