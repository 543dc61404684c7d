// Progressive enhancement only: the page works without it.
// - chart times in the browser's own time zone (the server renders its own);
// - "select all" for the bulk actions, and a count of the selected rows.
(function () {
  "use strict";

  function hhmm(seconds) {
    return new Date(seconds * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hour12: false });
  }

  function localTimes() {
    document.querySelectorAll(".chart [data-ts]").forEach(function (node) {
      var ts = Number(node.getAttribute("data-ts"));
      if (!ts) return;
      var detail = node.getAttribute("data-detail");
      node.textContent = detail ? hhmm(ts) + ": " + detail : hhmm(ts);
    });
    var caption = document.getElementById("chart-tz");
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (caption && zone) caption.textContent = "Requests per minute · times in your time zone (" + zone + ")";
  }

  function bulkSelection() {
    var all = document.querySelector("[data-select-all]");
    var counter = document.querySelector("[data-selected-count]");
    var boxes = Array.prototype.slice.call(document.querySelectorAll('input[type=checkbox][form="bulk"]'));
    if (!all || !boxes.length) return;
    all.hidden = false;
    function update() {
      var checked = boxes.filter(function (box) { return box.checked; }).length;
      all.checked = checked === boxes.length;
      all.indeterminate = checked > 0 && checked < boxes.length;
      if (counter) {
        counter.hidden = checked === 0;
        counter.textContent = checked + " selected";
      }
    }
    all.addEventListener("change", function () {
      boxes.forEach(function (box) { box.checked = all.checked; });
      update();
    });
    boxes.forEach(function (box) { box.addEventListener("change", update); });
    update();
  }

  document.addEventListener("DOMContentLoaded", function () {
    localTimes();
    bulkSelection();
  });
})();
