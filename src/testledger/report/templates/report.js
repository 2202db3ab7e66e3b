// Draws the trend charts once from the inline JSON; no library, no network.
(function () {
  "use strict";
  var t0 = performance.now();
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var NS = "http://www.w3.org/2000/svg";
  var W = 520, H = 160, L = 58, R = 8, T = 8, B = 18;
  var tip = document.getElementById("tip");

  function el(name, attrs, parent) {
    var node = document.createElementNS(NS, name);
    for (var k in attrs) node.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(node);
    return node;
  }
  function fmt(v) {
    if (v === null || v === undefined) return "–";
    return Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 1 ? v.toFixed(2) : v.toPrecision(3);
  }

  function chart(box, label, values, labels) {
    var svg = el("svg", { viewBox: "0 0 " + W + " " + H, preserveAspectRatio: "none", "data-metric": label }, box);
    var present = values.filter(function (v) { return v !== null; });
    var n = values.length;
    if (!present.length) { el("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, svg).textContent = "no data"; return; }
    var lo = Math.min.apply(null, present), hi = Math.max.apply(null, present);
    if (lo === hi) { lo -= 1; hi += 1; }
    var x = function (i) { return L + (n === 1 ? (W - L - R) / 2 : i * (W - L - R) / (n - 1)); };
    var y = function (v) { return T + (hi - v) * (H - T - B) / (hi - lo); };
    [lo, (lo + hi) / 2, hi].forEach(function (v) {
      el("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), "class": "axis" }, svg);
      el("text", { x: L - 4, y: y(v) + 3, "text-anchor": "end" }, svg).textContent = fmt(v);
    });
    // One path with gaps (M restarts) for runs without a value.
    var d = "", pen = false, first = null, last = null;
    for (var i = 0; i < n; i++) {
      var v = values[i];
      if (v === null) { pen = false; continue; }
      d += (pen ? "L" : "M") + x(i).toFixed(1) + "," + y(v).toFixed(1);
      pen = true; if (first === null) first = i; last = i;
    }
    el("path", { d: d + "L" + x(last).toFixed(1) + "," + (H - B) + "L" + x(first).toFixed(1) + "," + (H - B) + "Z", "class": "area" }, svg);
    el("path", { d: d, "class": "line" }, svg);
    if (n <= 120) {
      for (var j = 0; j < n; j++) if (values[j] !== null) el("circle", { cx: x(j), cy: y(values[j]), r: 2.2, "class": "pt" }, svg);
    }
    svg.addEventListener("mousemove", function (ev) {
      var rect = svg.getBoundingClientRect();
      var px = (ev.clientX - rect.left) * W / rect.width;
      var idx = Math.max(0, Math.min(n - 1, Math.round(n === 1 ? 0 : (px - L) * (n - 1) / (W - L - R))));
      tip.hidden = false;
      tip.textContent = labels[idx] + " · " + label + " " + fmt(values[idx]);
      tip.style.left = ev.clientX + 12 + "px"; tip.style.top = ev.clientY + 12 + "px";
    });
    svg.addEventListener("mouseleave", function () { tip.hidden = true; });
  }

  var host = document.getElementById("charts");
  data.charts.forEach(function (c) {
    var values = data.metrics[c.name];
    var box = document.createElement("div");
    box.className = "chart"; box.id = "chart-" + c.name;
    var h = document.createElement("h3");
    var latest = values.length ? values[values.length - 1] : null;
    h.innerHTML = "<span></span><span class=\"muted\"></span>";
    h.firstChild.textContent = c.label; h.lastChild.textContent = "latest " + fmt(latest);
    box.appendChild(h); host.appendChild(box);
    chart(box, c.label, values, data.labels);
  });
  window.reportRenderMs = performance.now() - t0;
  document.body.setAttribute("data-render-ms", window.reportRenderMs.toFixed(1));
})();
