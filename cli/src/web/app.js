// tq web: live figures and confirmations. Values are set with textContent
// only: nothing the server sends is ever parsed as HTML.
"use strict";
(function () {
  document.addEventListener("submit", function (e) {
    var f = e.target, b = e.submitter;
    var ask = (f && f.hasAttribute && f.hasAttribute("data-confirm")) || (b && b.hasAttribute("data-confirm"));
    if (ask && !window.confirm("Sure?")) {
      e.preventDefault();
    }
  });
  var cells = document.querySelectorAll("[data-live]");
  if (!cells.length) return;
  function refresh() {
    fetch("/api/live", { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (doc) {
        if (!doc || !doc.figures) return;
        cells.forEach(function (el) {
          var k = el.getAttribute("data-live");
          if (Object.prototype.hasOwnProperty.call(doc.figures, k)) {
            el.textContent = String(doc.figures[k]);
          }
        });
      })
      .catch(function () {});
  }
  setInterval(refresh, 2000);
})();
