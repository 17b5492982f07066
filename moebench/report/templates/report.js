/* moebench report tables: click a column header to sort (again to reverse), type to filter.
   Written for moebench (MIT); no dependencies, works offline. Cells with a data-sort
   attribute sort as numbers; empty values ("–") always sort last. */
(function () {
  "use strict";
  function sortKey(cell) {
    var v = cell.getAttribute("data-sort");
    if (v !== null) {
      return v === "" ? null : parseFloat(v);
    }
    var t = cell.textContent.trim();
    return t === "" || t === "–" || t === "-" ? null : t.toLowerCase();
  }
  function compare(a, b) {
    if (typeof a === "number" && typeof b === "number") {
      return a - b;
    }
    if (typeof a !== typeof b) {
      return typeof a === "number" ? -1 : 1;
    }
    return a.localeCompare(b, undefined, { numeric: true });
  }
  function sortTable(table, col, direction) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows).map(function (row, i) {
      return { row: row, key: sortKey(row.cells[col]), i: i };
    });
    rows.sort(function (a, b) {
      if (a.key === null || b.key === null) {
        return a.key === b.key ? a.i - b.i : a.key === null ? 1 : -1;
      }
      if (typeof a.key !== typeof b.key) {
        return compare(a.key, b.key); // numbers before text in either direction
      }
      return direction * compare(a.key, b.key) || a.i - b.i;
    });
    rows.forEach(function (r) {
      body.appendChild(r.row);
    });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, j) {
      th.setAttribute("aria-sort", j === col ? (direction > 0 ? "ascending" : "descending") : "none");
    });
  }
  function filterTable(table, text, counter) {
    var words = text.toLowerCase().split(/\s+/).filter(Boolean);
    var shown = 0;
    Array.prototype.forEach.call(table.tBodies[0].rows, function (row) {
      var content = row.textContent.toLowerCase();
      var keep = words.every(function (w) {
        return content.indexOf(w) >= 0;
      });
      row.hidden = !keep;
      shown += keep ? 1 : 0;
    });
    var total = table.tBodies[0].rows.length;
    counter.textContent = shown === total ? total + " rows" : shown + " of " + total + " rows";
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, j) {
      th.querySelector("button").addEventListener("click", function () {
        sortTable(table, j, th.getAttribute("aria-sort") === "ascending" ? -1 : 1);
      });
    });
  });
  Array.prototype.forEach.call(document.querySelectorAll("input.filter"), function (input) {
    var table = document.getElementById(input.getAttribute("data-table"));
    var counter = input.parentNode.querySelector(".count");
    input.addEventListener("input", function () {
      filterTable(table, input.value, counter);
    });
  });
})();
