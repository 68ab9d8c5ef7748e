// Shared by every page: the theme toggle, number formats, and the SVG charts drawn from the
// embedded data (window.SLM, set by data.js): the pillar radar and the per-task grouped bars.
// Every text from the data goes in through textContent, never as markup.
var SLMSite = (function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";
  var COLORS = ["#0072b2", "#e69f00", "#009e73", "#cc79a7"];

  function svgEl(tag, attrs, text) {
    var node = document.createElementNS(NS, tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  function fmt(value, digits) {
    if (value === null || value === undefined) { return "\u2014"; }
    return Number(value).toLocaleString("en-US", {minimumFractionDigits: digits, maximumFractionDigits: digits});
  }

  function clear(node) { while (node.firstChild) { node.removeChild(node.firstChild); } }

  // Radar of the five pillars (0-100); series: [{label, values: {pillar: score}, color}].
  function radar(svg, series, pillars) {
    var cx = 180, cy = 165, r = 118, n = pillars.length;
    clear(svg);
    svg.setAttribute("viewBox", "0 0 360 325");
    function point(i, value, outside) {  // value 0-100 on axis i; `outside` allows beyond 100 (labels)
      var angle = -Math.PI / 2 + 2 * Math.PI * i / n;
      var d = r * (outside ? value : Math.max(0, Math.min(100, value))) / 100;
      return [cx + d * Math.cos(angle), cy + d * Math.sin(angle)];
    }
    [25, 50, 75, 100].forEach(function (ring) {
      var pts = pillars.map(function (_, i) { return point(i, ring).join(","); }).join(" ");
      svg.appendChild(svgEl("polygon", {points: pts, fill: "none", stroke: "currentColor", "stroke-opacity": "0.2"}));
      var at = point(1, ring);  // ring values along the second axis, away from the top label
      svg.appendChild(svgEl("text", {x: at[0] - 4, y: at[1] - 4, "font-size": "9", fill: "currentColor",
        "fill-opacity": "0.6", "text-anchor": "end"}, String(ring)));
    });
    pillars.forEach(function (p, i) {
      var end = point(i, 100), label = point(i, 112, true);
      svg.appendChild(svgEl("line", {x1: cx, y1: cy, x2: end[0], y2: end[1], stroke: "currentColor",
        "stroke-opacity": "0.25"}));
      var anchor = Math.abs(label[0] - cx) < 5 ? "middle" : (label[0] > cx ? "start" : "end");
      svg.appendChild(svgEl("text", {x: label[0], y: label[1] + 4, "text-anchor": anchor, "font-size": "12",
        fill: "currentColor"}, p.charAt(0).toUpperCase() + p.slice(1)));
    });
    series.forEach(function (s) {
      var pts = pillars.map(function (p, i) { return point(i, s.values[p] || 0).join(","); }).join(" ");
      var shape = svgEl("polygon", {points: pts, fill: s.color, "fill-opacity": "0.15", stroke: s.color,
        "stroke-width": "2", "class": "series"});
      shape.appendChild(svgEl("title", {}, s.label));
      svg.appendChild(shape);
      pillars.forEach(function (p, i) {
        var xy = point(i, s.values[p] || 0), has = s.values[p] !== undefined && s.values[p] !== null;
        var dot = svgEl("circle", {cx: xy[0], cy: xy[1], r: "3.5", fill: has ? s.color : "none", stroke: s.color});
        dot.appendChild(svgEl("title", {}, s.label + " \u00b7 " + p + ": " + (has ? fmt(s.values[p], 1) : "not evaluated")));
        svg.appendChild(dot);
      });
    });
  }

  // Grouped bars: one group per task, one bar per series, whiskers for the 95% interval.
  // tasks: [{task, pillar}]; series: [{label, color, tasks: {task: {normalized, ci}}}].
  function bars(svg, tasks, series) {
    var bar = Math.max(12, Math.round(44 / series.length)), gap = 22, left = 40, top = 10, height = 260,
      bottom = 110;
    var groupWidth = bar * series.length + gap, width = left + groupWidth * tasks.length + 10;
    clear(svg);
    svg.setAttribute("viewBox", "0 0 " + width + " " + (top + height + bottom));
    svg.setAttribute("width", width);
    function y(v) { return top + height * (1 - Math.max(0, Math.min(100, v)) / 100); }
    [0, 25, 50, 75, 100].forEach(function (t) {
      svg.appendChild(svgEl("line", {x1: left, x2: width - 10, y1: y(t), y2: y(t), stroke: "currentColor",
        "stroke-opacity": t === 0 ? "0.6" : "0.15"}));
      svg.appendChild(svgEl("text", {x: left - 6, y: y(t) + 4, "text-anchor": "end", "font-size": "10",
        fill: "currentColor"}, String(t)));
    });
    tasks.forEach(function (t, i) {
      var x0 = left + i * groupWidth + gap / 2;
      series.forEach(function (s, j) {
        var rec = s.tasks[t.task], x = x0 + j * bar;
        if (!rec) { return; }
        var rect = svgEl("rect", {x: x, y: y(rec.normalized), width: bar - 2,
          height: Math.max(0.5, y(0) - y(rec.normalized)), fill: s.color, "class": "bar"});
        rect.appendChild(svgEl("title", {}, s.label + " \u00b7 " + t.task + ": " + fmt(rec.normalized, 1) +
          (rec.ci ? " [" + fmt(rec.ci[0], 1) + ", " + fmt(rec.ci[1], 1) + "]" : "")));
        svg.appendChild(rect);
        if (rec.ci) {
          var cx = x + (bar - 2) / 2;
          svg.appendChild(svgEl("line", {x1: cx, x2: cx, y1: y(rec.ci[0]), y2: y(rec.ci[1]), stroke: "currentColor"}));
          [rec.ci[0], rec.ci[1]].forEach(function (v) {
            svg.appendChild(svgEl("line", {x1: cx - 3, x2: cx + 3, y1: y(v), y2: y(v), stroke: "currentColor"}));
          });
        }
      });
      var lx = x0 + (bar * series.length) / 2, ly = top + height + 8;
      svg.appendChild(svgEl("text", {x: lx, y: ly, "font-size": "12", fill: "currentColor", "text-anchor": "end",
        transform: "rotate(-45 " + lx + " " + ly + ")"}, t.task));
    });
  }

  function initTheme() {
    var button = document.getElementById("theme-toggle");
    if (!button) { return; }
    function show() {
      var dark = document.documentElement.getAttribute("data-theme") === "dark";
      button.textContent = dark ? "\u2600 light" : "\u263e dark";
      button.setAttribute("aria-pressed", dark ? "true" : "false");
    }
    button.addEventListener("click", function () {
      var next = document.documentElement.getAttribute("data-theme") === "dark" ? "light" : "dark";
      document.documentElement.setAttribute("data-theme", next);
      try { window.localStorage.setItem("slm-theme", next); } catch (e) { /* storage off: this page only */ }
      show();
    });
    show();
  }

  function initModelRadars() {
    var data = window.SLM;
    Array.prototype.forEach.call(document.querySelectorAll("svg.radar[data-entry]"), function (svg) {
      var entry = data.entries[svg.getAttribute("data-entry")];
      if (entry) { radar(svg, [{label: entry.name, values: entry.pillars, color: COLORS[0]}], data.pillars); }
    });
  }

  initTheme();
  initModelRadars();
  return {COLORS: COLORS, el: el, fmt: fmt, clear: clear, radar: radar, bars: bars};
})();
