// Leaderboard: one track at a time (never two in one ranking or filter), then sorting, search, the
// five filters and expandable variants over that track's rows, with values from window.SLM. The view
// (track, search, filters, sort) lives in the URL fragment
// (#track=...&q=...&family=...&sort=aggregate&dir=desc), so a link shares it.
(function () {
  "use strict";
  var data = window.SLM, table = document.getElementById("board");
  if (!data || !table) { return; }
  var entries = data.entries, tbody = table.tBodies[0];
  var FILTERS = ["bucket", "family", "license", "badge", "pillar"];
  var KEYS = ["track", "q"].concat(FILTERS, ["min", "provisional", "sort", "dir"]);
  var provisionalBox = document.getElementById("f-provisional");  // only when some entry is provisional
  var tracks = {};
  data.tracks.forEach(function (t) { tracks[t.id] = t; });
  var rowOf = {};
  Array.prototype.forEach.call(tbody.rows, function (tr) { rowOf[tr.getAttribute("data-id")] = tr; });
  var order = {};
  data.order.forEach(function (id, i) { order[id] = i; });
  var expanded = {};
  var state = {};

  function readHash() {
    var out = {};
    location.hash.replace(/^#/, "").split("&").forEach(function (part) {
      var i = part.indexOf("=");
      if (i < 1) { return; }
      var key = decodeURIComponent(part.slice(0, i)), value;
      try { value = decodeURIComponent(part.slice(i + 1).replace(/\+/g, " ")); } catch (e) { return; }
      if (KEYS.indexOf(key) >= 0 && value !== "") { out[key] = value; }
    });
    return out;
  }

  function writeHash() {
    var text = KEYS.filter(function (k) { return state[k]; }).map(function (k) {
      return encodeURIComponent(k) + "=" + encodeURIComponent(state[k]);
    }).join("&");
    var url = location.pathname + location.search + (text ? "#" + text : "");
    try { history.replaceState(null, "", url); } catch (e) { location.replace("#" + text); }
  }

  function value(v, key) {
    if (key.indexOf("pillar:") === 0) { return v.pillars[key.slice(7)]; }
    if (key === "badges") { return (v.badges || []).length; }
    var x = v[key];
    return typeof x === "string" ? x.toLowerCase() : x;
  }

  function track() { return tracks[state.track] ? state.track : data.shown_track; }

  function describe(t) {
    var p = t.protocol, items = function (n) { return n === null ? "all" : String(n); };
    return "Ranked within the track " + t.name + ": suite " + p.suite + ", " + p.tasks.length + " tasks (" +
      p.tasks.join(", ") + "), " + items(p.limit) + " items per multiple-choice task and " +
      items(p.limit_generative) + " per generative task, seed " + p.seed + ", chat template " +
      (p.apply_chat_template === null ? "not recorded" : String(p.apply_chat_template)) + ". " +
      t.entries + (t.entries === 1 ? " entry" : " entries") + (t["default"] ? "; the default track." : ".");
  }

  function matches(v) {
    if (v.track !== track()) { return false; }
    if (v.provisional && state.provisional !== "1") { return false; }  // unranked: shown only when asked
    var terms = (state.q || "").toLowerCase().split(/\s+/).filter(Boolean);
    var hay = [v.name, v.family, v.hf_repo, v.model_id].join(" ").toLowerCase();
    if (!terms.every(function (t) { return hay.indexOf(t) >= 0; })) { return false; }
    if (state.bucket && v.size_bucket !== state.bucket) { return false; }
    if (state.family && v.family !== state.family) { return false; }
    if (state.license && v.license !== state.license) { return false; }
    if (state.badge && (v.badges || []).indexOf(state.badge) < 0) { return false; }
    var min = parseFloat(state.min), score = state.pillar ? v.pillars[state.pillar] : v.aggregate;
    if (state.pillar && (score === undefined || score === null)) { return false; }
    if (!isNaN(min) && (score === undefined || score === null || score < min)) { return false; }
    return true;
  }

  function compare(a, b) {
    var key = state.sort || "rank", x = value(entries[a.primary], key), y = value(entries[b.primary], key);
    var missX = x === null || x === undefined, missY = y === null || y === undefined;
    if (missX || missY) { return missX === missY ? order[a.primary] - order[b.primary] : (missX ? 1 : -1); }
    var c = typeof x === "string" ? (x < y ? -1 : (x > y ? 1 : 0)) : x - y;  // code points: predictable
    if (c === 0) { return order[a.primary] - order[b.primary]; }
    return state.dir === "desc" ? -c : c;
  }

  function offerOptions(current) {  // a filter offers only the values the shown track holds
    var present = {};
    FILTERS.forEach(function (f) { present[f] = {}; });
    data.groups.forEach(function (g) {
      if (g.track !== current) { return; }
      var v = entries[g.primary];
      present.bucket[v.size_bucket] = present.family[v.family] = present.license[v.license] = true;
      (v.badges || []).forEach(function (b) { present.badge[b] = true; });
      Object.keys(v.pillars || {}).forEach(function (p) { present.pillar[p] = true; });
    });
    FILTERS.forEach(function (f) {
      Array.prototype.forEach.call(document.getElementById("f-" + f).options, function (o) {
        o.hidden = o.value !== "" && !present[f][o.value];
      });
    });
  }

  function render() {
    var current = track(), groups = data.groups.slice().sort(compare), shown = 0, total = 0;
    offerOptions(current);
    groups.forEach(function (g) {
      var visible = matches(entries[g.primary]), primary = rowOf[g.primary];
      primary.hidden = !visible;
      tbody.appendChild(primary);
      g.variants.forEach(function (id) {
        rowOf[id].hidden = !(visible && expanded[g.track + " " + g.key]);
        tbody.appendChild(rowOf[id]);
      });
      shown += visible ? 1 : 0;
      total += g.track === current ? 1 : 0;
    });
    document.getElementById("count").textContent = shown + " of " + total + " models";
    document.getElementById("track-protocol").textContent = describe(tracks[current]);
    Array.prototype.forEach.call(document.querySelectorAll("section.charts-track"), function (charts) {
      charts.hidden = charts.getAttribute("data-track") !== current;
    });
    updateCompare();
    document.getElementById("empty").hidden = shown > 0;
    Array.prototype.forEach.call(table.tHead.querySelectorAll("th"), function (th) {
      var button = th.querySelector("button[data-key]");
      if (button && button.getAttribute("data-key") === (state.sort || "rank")) {
        th.setAttribute("aria-sort", state.dir === "desc" ? "descending" : "ascending");
      } else {
        th.removeAttribute("aria-sort");
      }
    });
  }

  function syncControls() {
    if (!tracks[state.track]) { delete state.track; }  // not a track of this site: the first one
    document.getElementById("f-track").value = track();
    document.getElementById("q").value = state.q || "";
    FILTERS.forEach(function (f) {
      var select = document.getElementById("f-" + f);
      select.value = state[f] || "";
      if (select.value !== (state[f] || "")) { delete state[f]; }  // not an option: ignored
    });
    document.getElementById("f-min").value = state.min || "";
    if (provisionalBox) { provisionalBox.checked = state.provisional === "1"; } else { delete state.provisional; }
  }

  function fromControls() {
    var chosen = document.getElementById("f-track").value;
    state.track = chosen === data.shown_track && !state.track ? "" : chosen;
    state.q = document.getElementById("q").value.trim();
    FILTERS.forEach(function (f) { state[f] = document.getElementById("f-" + f).value; });
    var min = document.getElementById("f-min").value;
    state.min = min === "" || isNaN(parseFloat(min)) ? "" : String(parseFloat(min));
    state.provisional = provisionalBox && provisionalBox.checked ? "1" : "";
    writeHash();
    render();
  }

  function load() {
    state = readHash();
    if (state.dir !== "asc" && state.dir !== "desc") { delete state.dir; }
    syncControls();
    render();
  }

  var form = document.getElementById("controls");
  form.addEventListener("input", fromControls);
  form.addEventListener("change", fromControls);
  form.addEventListener("submit", function (ev) { ev.preventDefault(); });
  form.addEventListener("reset", function () {
    setTimeout(function () { state = {}; writeHash(); syncControls(); render(); }, 0);
  });
  Array.prototype.forEach.call(table.tHead.querySelectorAll("button[data-key]"), function (button) {
    button.addEventListener("click", function () {
      var key = button.getAttribute("data-key"), same = (state.sort || "rank") === key;
      var textual = ["name", "family", "quantization_label", "license", "hf_repo", "rank"].indexOf(key) >= 0;
      state.dir = same ? (state.dir === "desc" ? "asc" : "desc") : (textual ? "asc" : "desc");
      state.sort = key === "rank" && state.dir === "asc" ? "" : key;
      if (!state.sort) { state.dir = ""; }
      writeHash();
      render();
    });
  });
  tbody.addEventListener("click", function (ev) {
    var button = ev.target.closest("button.variants");
    if (!button) { return; }
    var key = button.closest("tr").getAttribute("data-track") + " " + button.getAttribute("data-group");
    expanded[key] = !expanded[key];
    button.setAttribute("aria-expanded", expanded[key] ? "true" : "false");
    render();
  });

  function updateCompare() {
    var link = document.getElementById("compare-link");
    var ids = Array.prototype.filter.call(tbody.querySelectorAll("input.pick"), function (box) {
      return box.checked && box.closest("tr").getAttribute("data-track") === track();  // one track only
    }).map(function (box) { return box.value; });
    link.setAttribute("href", "compare.html" + (ids.length ? "#m=" + ids.map(encodeURIComponent).join(",") : ""));
    link.setAttribute("aria-disabled", ids.length >= 2 && ids.length <= 4 ? "false" : "true");
    link.textContent = "Compare selected (" + ids.length + ")";
  }
  tbody.addEventListener("change", function (ev) {
    if (ev.target.classList.contains("pick")) { updateCompare(); }
  });
  window.addEventListener("hashchange", load);
  load();
})();
