// The charts of the pages and of the self-contained HTML report, drawn with the vendored uPlot
// (data shaped as testledger/web/charts.py says; the report inlines this file). Hovering shows
// the run under the cursor; clicking a point opens that run (on the pages). Change points are
// dashed vertical lines, a budget a dashed horizontal one.
(function () {
  "use strict";
  var COLORS = ["#2563eb", "#d97706", "#059669", "#dc2626", "#7c3aed", "#0891b2"];

  function fmt(v) {
    if (v === null || v === undefined || isNaN(v)) return "–";
    if (Number.isInteger(v)) return v.toLocaleString("en");
    var a = Math.abs(v);
    if (a >= 1000) return Math.round(v).toLocaleString("en");
    if (a >= 100) return v.toFixed(0);
    if (a >= 1) return v.toFixed(2);
    if (a === 0) return "0";
    return v.toPrecision(3);
  }

  function when(t) {
    return new Date(t * 1000).toISOString().slice(0, 16).replace("T", " ");
  }

  function runAt(data, idx, focused) {
    var order = [];
    if (focused !== null && focused !== undefined && focused > 0) order.push(focused - 1);
    for (var i = 0; i < data.series.length; i++) order.push(i);
    for (var k = 0; k < order.length; k++) {
      var s = data.series[order[k]];
      if (s && s.runs && s.runs[idx] !== null && s.runs[idx] !== undefined) return s.runs[idx];
    }
    return null;
  }

  function dashedLines(u, data) {
    var ctx = u.ctx, top = u.bbox.top, bottom = u.bbox.top + u.bbox.height;
    ctx.save();
    ctx.setLineDash([5, 4]);
    ctx.lineWidth = 1.5 * devicePixelRatio;
    ctx.strokeStyle = "#dc2626";
    (data.marks || []).forEach(function (t) {
      var x = u.valToPos(t, "x", true);
      ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, bottom); ctx.stroke();
    });
    if (data.budget !== null && data.budget !== undefined) {
      var y = u.valToPos(data.budget, "y", true);
      ctx.strokeStyle = "#9ca3af";
      ctx.beginPath(); ctx.moveTo(u.bbox.left, y); ctx.lineTo(u.bbox.left + u.bbox.width, y); ctx.stroke();
    }
    ctx.restore();
  }

  // Wide enough for the longest tick label (0.00150, 12,345).
  function yAxisWidth(u, values) {
    var longest = 0;
    (values || []).forEach(function (v) { longest = Math.max(longest, String(v).length); });
    return Math.max(40, 16 + 7 * longest);
  }

  // Bars a day apart need half a day either side, a lone point an hour; else uPlot's own range.
  function xScale(data, bars) {
    var lo = data.x[0], hi = data.x[data.x.length - 1];
    var pad = bars ? 43200 : (lo === hi ? 3600 : 0);
    if (!pad) return { time: true };
    return { time: true, auto: false, range: [lo - pad, hi + pad] };
  }

  function options(el, data, tip) {
    var bars = data.kind === "bars";
    var series = [{ label: "time", value: function (u, t) { return t === null ? "–" : when(t); } }];
    data.series.forEach(function (s, i) {
      var color = COLORS[i % COLORS.length];
      series.push({
        label: s.label,
        stroke: color,
        width: 2,
        fill: bars ? color + "88" : undefined,
        spanGaps: true,
        paths: bars ? uPlot.paths.bars({ size: [0.8, 24] }) : undefined,
        points: { show: !bars && data.x.length <= 120, size: 5 },
        value: function (u, v) { return fmt(v); }
      });
    });
    return {
      width: Math.max(240, el.clientWidth),
      height: 190,
      series: series,
      scales: { x: xScale(data, bars) },
      axes: [{ space: 90 }, { size: yAxisWidth, values: function (u, vals) { return vals.map(fmt); } }],
      legend: { show: data.series.length > 1 },
      cursor: { focus: { prox: 24 } },
      focus: { alpha: 0.4 },
      hooks: {
        draw: [function (u) { dashedLines(u, data); }],
        setCursor: [function (u) {
          var idx = u.cursor.idx;
          if (idx === null || idx === undefined) { tip.hidden = true; return; }
          var run = runAt(data, idx, null);
          var parts = [when(data.x[idx])];
          if (run !== null) parts.unshift("run #" + run);
          data.series.forEach(function (s) {
            if (s.values[idx] !== null) parts.push((data.series.length > 1 ? s.label + " " : "") + fmt(s.values[idx]));
          });
          tip.textContent = parts.join(" · ");
          tip.hidden = false;
        }]
      }
    };
  }

  function hasValues(data) {
    return data.series.some(function (s) {
      return s.values.some(function (v) { return v !== null && v !== undefined; });
    });
  }

  // Draw one chart into el; returns the uPlot instance (null: nothing to draw).
  function draw(el, data) {
    var tip = document.createElement("div");
    tip.className = "tip";
    tip.hidden = true;
    if (!data.x.length || !hasValues(data)) {
      el.textContent = "no data";
      el.classList.add("empty");
      return null;
    }
    var columns = [data.x].concat(data.series.map(function (s) { return s.values; }));
    var u = new uPlot(options(el, data, tip), columns, el);
    el.appendChild(tip);
    if (data.link) {
      u.over.classList.add("clickable");
      u.over.addEventListener("click", function () {
        var idx = u.cursor.idx;
        if (idx === null || idx === undefined) return;
        var run = runAt(data, idx, null);
        if (run !== null) window.location.href = data.link + run;
      });
    }
    el.setAttribute("data-drawn", "1");
    return u;
  }

  var plots = [];

  function keep(el, u) {
    if (u) plots.push([el, u]);
    return u;
  }

  window.addEventListener("resize", function () {
    plots.forEach(function (p) { p[1].setSize({ width: Math.max(240, p[0].clientWidth), height: 190 }); });
  });

  // The pages: each [data-chart] element names the JSON block beside it.
  function drawAll() {
    if (typeof uPlot === "undefined") return;
    document.querySelectorAll("[data-chart]").forEach(function (el) {
      var source = document.getElementById(el.getAttribute("data-chart"));
      keep(el, draw(el, JSON.parse(source.textContent)));
    });
    document.body.setAttribute("data-charts", String(plots.length));
  }

  // The self-contained HTML report draws its charts itself from its own data block.
  window.testledgerCharts = { draw: function (el, data) { return keep(el, draw(el, data)); } };

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", drawAll);
  else drawAll();
})();
