/* The leads table: filters, sorting on any column, and pages of rows, in the browser.
   Every row is rendered by the server (so the page works without JavaScript); this keeps them in an
   array and puts only one page of them in the document, so 1,000 leads stay quick to filter and sort. */
(function () {
  "use strict";

  var table = document.getElementById("leads");
  if (!table) return;
  var body = table.tBodies[0];
  var headers = table.querySelectorAll("th[data-sort]");
  var pageSize = parseInt(table.getAttribute("data-page-size"), 10) || 50;
  var form = document.getElementById("lead-filters");
  var pager = document.getElementById("lead-pager");
  var info = document.getElementById("page-info");
  var countOut = document.getElementById("lead-count");

  // Each row once, with its keys read once.
  var rows = Array.prototype.map.call(body.rows, function (row) {
    var d = row.dataset;
    return {
      row: row,
      index: Number(d.index),
      score: Number(d.score),
      name: (d.name || "").toLocaleLowerCase(),
      address: (d.address || "").toLocaleLowerCase(),
      phone: d.phone || "",
      website: (d.website || "").toLocaleLowerCase().replace(/^https?:\/\/(www\.)?/, ""),
      email: (d.email || "").toLocaleLowerCase(),
      verified: d.verified === "true",
    };
  });
  var state = { column: "score", direction: "descending", page: 0 };
  var shown = rows.slice();

  function compare(a, b) {
    var column = state.column;
    var sign = state.direction === "ascending" ? 1 : -1;
    var x = a[column];
    var y = b[column];
    var order;
    if (column === "score") order = x - y;
    else if (!x !== !y) return x ? -1 : 1; // empty cells last, whichever the direction
    else order = x.localeCompare(y);
    // Ties keep the server's order (best first, then by name).
    return order * sign || a.index - b.index;
  }

  function passes(item, f) {
    if (f.email && !item.email) return false;
    if (f.phone && !item.phone) return false;
    if (f.website && !item.website) return false;
    if (f.verified && !item.verified) return false;
    if (f.minScore !== null && item.score < f.minScore) return false;
    return true;
  }

  function filters() {
    if (!form) return { email: false, phone: false, website: false, verified: false, minScore: null };
    var min = form.elements.min_score.value.trim();
    return {
      email: form.elements.has_email.checked,
      phone: form.elements.has_phone.checked,
      website: form.elements.has_website.checked,
      verified: form.elements.verified.checked,
      minScore: min === "" || isNaN(Number(min)) ? null : Number(min),
    };
  }

  function draw() {
    var pages = Math.max(1, Math.ceil(shown.length / pageSize));
    state.page = Math.min(state.page, pages - 1);
    var start = state.page * pageSize;
    var fragment = document.createDocumentFragment();
    shown.slice(start, start + pageSize).forEach(function (item) { fragment.appendChild(item.row); });
    while (body.firstChild) body.removeChild(body.firstChild);
    body.appendChild(fragment);
    if (countOut) {
      countOut.textContent = shown.length === rows.length
        ? rows.length + " leads"
        : shown.length + " of " + rows.length + " leads match";
    }
    if (pager) {
      pager.hidden = shown.length <= pageSize;
      info.textContent = shown.length
        ? (start + 1) + "–" + Math.min(start + pageSize, shown.length) + " of " + shown.length
        : "";
      document.getElementById("page-prev").disabled = state.page === 0;
      document.getElementById("page-next").disabled = state.page >= pages - 1;
    }
    for (var i = 0; i < headers.length; i++) {
      var column = headers[i].getAttribute("data-sort");
      headers[i].setAttribute("aria-sort", column === state.column ? state.direction : "none");
    }
  }

  function update() {
    var f = filters();
    shown = rows.filter(function (item) { return passes(item, f); });
    shown.sort(compare);
    draw();
  }

  Array.prototype.forEach.call(headers, function (th) {
    th.querySelector("button").addEventListener("click", function () {
      var column = th.getAttribute("data-sort");
      if (column === state.column) state.direction = state.direction === "descending" ? "ascending" : "descending";
      else state.direction = column === "score" ? "descending" : "ascending";
      state.column = column;
      state.page = 0;
      shown.sort(compare);
      draw();
    });
  });

  if (form) {
    form.hidden = false;
    form.addEventListener("input", function () { state.page = 0; update(); });
    form.addEventListener("change", function () { state.page = 0; update(); });
    form.addEventListener("submit", function (event) { event.preventDefault(); });
  }
  if (pager) {
    document.getElementById("page-prev").addEventListener("click", function () { state.page -= 1; draw(); });
    document.getElementById("page-next").addEventListener("click", function () { state.page += 1; draw(); });
  }
  // What the table shows, for the tests and for debugging.
  window.__leadsTable = {
    matching: function () { return shown.length; },
    total: rows.length,
  };
  update();
})();
