/* The leads table: sort by score (default: best first) or by name, in the browser. */
(function () {
  "use strict";

  var table = document.getElementById("leads");
  if (!table) return;
  var body = table.tBodies[0];
  var headers = table.querySelectorAll("th[data-sort]");

  function key(row, column) {
    return column === "score" ? Number(row.getAttribute("data-score")) : (row.getAttribute("data-name") || "").toLocaleLowerCase();
  }

  function sort(column, direction) {
    var rows = Array.prototype.slice.call(body.rows);
    var sign = direction === "ascending" ? 1 : -1;
    rows.sort(function (a, b) {
      var x = key(a, column);
      var y = key(b, column);
      var order = column === "score" ? x - y : x.localeCompare(y);
      // Ties keep the server's order (best first, then by name).
      return order * sign || Number(a.getAttribute("data-index")) - Number(b.getAttribute("data-index"));
    });
    rows.forEach(function (row) { body.appendChild(row); });
    for (var i = 0; i < headers.length; i++) {
      headers[i].setAttribute("aria-sort", headers[i].getAttribute("data-sort") === column ? direction : "none");
    }
  }

  Array.prototype.forEach.call(headers, function (th) {
    th.querySelector("button").addEventListener("click", function () {
      var column = th.getAttribute("data-sort");
      var current = th.getAttribute("aria-sort");
      var next;
      if (current === "none") next = column === "score" ? "descending" : "ascending";
      else next = current === "descending" ? "ascending" : "descending";
      sort(column, next);
    });
  });
})();
