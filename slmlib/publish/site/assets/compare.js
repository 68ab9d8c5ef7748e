// Compare: two to four entries chosen on the page (kept in the URL fragment, #m=id1,id2), drawn
// from window.SLM: pillar radar overlay, per-task grouped bars with intervals, the paired
// significance results of the aggregate stage (only between entries of one track: a pair across
// tracks says why it cannot be paired, and no score is marked best across tracks), the quantization table of a model when two or
// more of its quantizations are chosen (rendered in the page, shown here), and spec rows with
// the best value in bold.
(function () {
  "use strict";
  var data = window.SLM, S = window.SLMSite, entries = data.entries, MAX = 4;
  var boxes = Array.prototype.slice.call(document.querySelectorAll("#picker input[type=checkbox]"));
  var status = document.getElementById("pick-status"), section = document.getElementById("comparison");
  var chosen = [];

  function readHash() {
    var m = /(?:^#|&)m=([^&]*)/.exec(location.hash), ids = [];
    if (m) {
      m[1].split(",").forEach(function (part) {
        var id;
        try { id = decodeURIComponent(part); } catch (e) { return; }
        if (entries[id] && ids.indexOf(id) < 0 && ids.length < MAX) { ids.push(id); }
      });
    }
    return ids;
  }

  function writeHash() {
    var url = location.pathname + location.search + "#m=" + chosen.map(encodeURIComponent).join(",");
    try { history.replaceState(null, "", url); } catch (e) { location.replace("#m=" + chosen.join(",")); }
  }

  function labels() {
    var base = chosen.map(function (id) {
      var v = entries[id];
      return v.name + (v.quantization_label ? " [" + v.quantization_label + "]" : "");
    });
    return base.map(function (b, i) {
      var v = entries[chosen[i]];
      if (base.indexOf(b) === base.lastIndexOf(b)) { return b; }
      var twin = entries[chosen[base.indexOf(b) === i ? base.lastIndexOf(b) : base.indexOf(b)]];
      return b + " (" + (twin.track !== v.track ? v.track_name : v.entry_id) + ")";
    });
  }

  function drawRadar(names) {
    S.radar(document.getElementById("radar"), chosen.map(function (id, i) {
      return {label: names[i], values: entries[id].pillars, color: S.COLORS[i]};
    }), data.pillars);
    var legend = document.getElementById("radar-legend");
    S.clear(legend);
    names.forEach(function (name, i) {
      var item = S.el("span"), swatch = S.el("span", {"class": "swatch"});
      swatch.style.background = S.COLORS[i];
      item.appendChild(swatch);
      item.appendChild(document.createTextNode(name));
      legend.appendChild(item);
    });
  }

  function drawBars(names) {
    var seen = {}, tasks = [];
    chosen.forEach(function (id) {
      entries[id].tasks.forEach(function (t) {
        if (!seen[t.task]) { seen[t.task] = true; tasks.push({task: t.task, pillar: t.pillar}); }
      });
    });
    tasks.sort(function (a, b) {
      return data.pillars.indexOf(a.pillar) - data.pillars.indexOf(b.pillar) || a.task.localeCompare(b.task);
    });
    S.bars(document.getElementById("task-bars"), tasks, chosen.map(function (id, i) {
      var byTask = {};
      entries[id].tasks.forEach(function (t) { byTask[t.task] = t; });
      return {label: names[i], color: S.COLORS[i], tasks: byTask};
    }));
  }

  function table(heads, rows) {
    var t = S.el("table"), head = S.el("tr"), body = S.el("tbody"), thead = S.el("thead");
    heads.forEach(function (h) { head.appendChild(S.el("th", {}, h)); });
    thead.appendChild(head);
    t.appendChild(thead);
    rows.forEach(function (cells) {
      var tr = S.el("tr");
      cells.forEach(function (c) {
        var td = S.el("td", c.cls ? {"class": c.cls} : {}, c.text);
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
    t.appendChild(body);
    var wrap = S.el("div", {"class": "scroll"});
    wrap.appendChild(t);
    return wrap;
  }

  function comparison(a, b) {
    for (var i = 0; i < data.comparisons.length; i++) {
      var c = data.comparisons[i];
      if (c.a === a && c.b === b) { return c; }
      if (c.a === b && c.b === a) {
        return {paired: c.paired, significant: c.significant, p_value: c.p_value, difference: -c.difference,
          difference_ci: c.difference_ci ? [-c.difference_ci[1], -c.difference_ci[0]] : null,
          p_a_above_b: c.p_a_above_b === null ? null : 1 - c.p_a_above_b};
      }
    }
    return null;
  }

  function drawSignificance(names) {
    var rows = [];
    for (var i = 0; i < chosen.length; i++) {
      for (var j = i + 1; j < chosen.length; j++) {
        var c = comparison(chosen[i], chosen[j]), pair = names[i] + " vs " + names[j];
        var ta = entries[chosen[i]].track, tb = entries[chosen[j]].track;
        if (ta !== tb) {
          rows.push([{text: pair}, {text: "\u2014", cls: "num"}, {text: "not paired: different tracks", cls: "cross-track"},
            {text: "\u2014", cls: "num"}, {text: "\u2014", cls: "num"}, {text: "not tested"}]);
          continue;
        }
        if (!c) { rows.push([{text: pair}, {text: "not compared (no aggregate)"}, {}, {}, {}, {}]); continue; }
        var ci = c.difference_ci ? " [" + S.fmt(c.difference_ci[0], 1) + ", " + S.fmt(c.difference_ci[1], 1) + "]" : "";
        rows.push([{text: pair}, {text: S.fmt(c.difference, 1) + ci, cls: "num"},
          {text: c.paired ? "paired" : "unpaired (different items)"},
          {text: c.paired ? S.fmt(c.p_value, 4) : "\u2014", cls: "num"},
          {text: c.paired ? S.fmt(c.p_a_above_b, 3) : "\u2014", cls: "num"},
          {text: c.significant ? "yes" : "no"}]);
      }
    }
    var box = document.getElementById("significance");
    S.clear(box);
    box.appendChild(table(["Pair (A vs B)", "Aggregate A \u2212 B [95% CI]", "Test", "p-value", "P(A ranks above B)",
      "Significant (\u03b1 = 0.05)"], rows));
  }

  function drawSpecs(names) {
    var rows = [];
    var oneTrack = tracksOf().length === 1;
    [["Track", "track_name"], ["Rank in its track", "rank"], ["Family", "family"], ["Quantization", "quantization_label"],
      ["License", "license"], ["Items (limit)", "limit"]].forEach(function (r) {
      rows.push([{text: r[0]}].concat(chosen.map(function (id) {
        var x = entries[id][r[1]];
        return {text: x === null || x === undefined ? "\u2014" : String(x)};
      })));
    });
    rows.push(specRow("Aggregate", "points", oneTrack ? "higher" : null, 1, function (v) { return v.aggregate; }));
    data.pillars.forEach(function (p) {  // pillar scores: higher is better, within one track only
      rows.push(specRow(p.charAt(0).toUpperCase() + p.slice(1), "points", oneTrack ? "higher" : null, 1, function (v) {
        return v.pillars[p];
      }));
    });
    data.spec_rows.forEach(function (s) {
      rows.push(specRow(s.label, s.unit, s.better, s.digits, function (v) { return v.spec[s.key]; }));
    });
    var box = document.getElementById("specs");
    S.clear(box);
    box.appendChild(table([""].concat(names), rows));
  }

  function showQuantizations() {
    var shown = 0;
    Array.prototype.forEach.call(document.querySelectorAll("#quantizations section.quantization-set"), function (s) {
      var hits = s.getAttribute("data-entries").split(" ").filter(function (id) { return chosen.indexOf(id) >= 0; });
      s.hidden = hits.length < 2;
      shown += s.hidden ? 0 : 1;
    });
    document.getElementById("quantizations").hidden = shown === 0;
  }

  function specRow(label, unit, better, digits, get) {
    var values = chosen.map(function (id) { return get(entries[id]); });
    var present = values.filter(function (x) { return x !== null && x !== undefined; });
    var best = null;
    if (better && present.length > 1) {
      best = better === "lower" ? Math.min.apply(null, present) : Math.max.apply(null, present);
    }
    return [{text: label + (unit ? " (" + unit + ")" : "")}].concat(values.map(function (x) {
      return {text: S.fmt(x, digits), cls: "num" + (best !== null && x === best ? " best" : "")};
    }));
  }

  function tracksOf() {
    var out = [];
    chosen.forEach(function (id) { if (out.indexOf(entries[id].track) < 0) { out.push(entries[id].track); } });
    return out;
  }

  function explainTracks() {
    var note = document.getElementById("cross-track"), used = tracksOf();
    note.hidden = used.length < 2;
    if (note.hidden) { return; }
    note.textContent = "The chosen models come from " + used.length + " tracks (" + chosen.map(function (id) {
      return entries[id].name + ": " + entries[id].track_name;
    }).join("; ") + "). Different tracks were measured under different protocols (other tasks, items per " +
      "task, seed, chat template or few-shot), so their scores cannot be paired item by item, tested or " +
      "ranked against each other; only models of one track are compared.";
  }

  function render() {
    boxes.forEach(function (box) { box.checked = chosen.indexOf(box.value) >= 0; });
    explainTracks();
    if (chosen.length < 2) {
      section.hidden = true;
      status.textContent = "Choose at least two models (at most " + MAX + ").";
      return;
    }
    status.textContent = chosen.length + " models compared.";
    section.hidden = false;
    var names = labels();
    drawRadar(names);
    drawBars(names);
    drawSignificance(names);
    showQuantizations();
    drawSpecs(names);
  }

  boxes.forEach(function (box) {
    box.addEventListener("change", function () {
      if (box.checked && chosen.length >= MAX) {
        box.checked = false;
        status.textContent = "At most " + MAX + " models: uncheck one first.";
        return;
      }
      chosen = box.checked ? chosen.concat([box.value]) : chosen.filter(function (id) { return id !== box.value; });
      writeHash();
      render();
    });
  });
  window.addEventListener("hashchange", function () { chosen = readHash(); render(); });
  chosen = readHash();
  var first = data.order.filter(function (id) { return entries[id].track === data.shown_track; });
  if (!/(?:^#|&)m=/.test(location.hash) && first.length >= 2) {
    chosen = first.slice(0, 2);  // nothing chosen yet: the two best-ranked entries of the track shown first
    writeHash();
  }
  render();
})();
