// tq web: live figures, an operation's progress and confirmations. Values
// are set with textContent only: nothing the server sends is ever parsed as
// HTML.
"use strict";
(function () {
  document.addEventListener("submit", function (e) {
    var f = e.target, b = e.submitter;
    var ask = (f && f.hasAttribute && f.hasAttribute("data-confirm")) || (b && b.hasAttribute("data-confirm"));
    if (ask && !window.confirm("Sure?")) {
      e.preventDefault();
    }
  });
  function poll(url, every, apply) {
    var timer = setInterval(function () {
      fetch(url, { credentials: "same-origin", cache: "no-store" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (doc) {
          if (doc && apply(doc) === false) clearInterval(timer);
        })
        .catch(function () {});
    }, every);
  }
  // A background operation's progress, until it is no longer running.
  var op = document.querySelector("[data-op]");
  if (op) {
    var fields = op.querySelectorAll("[data-op-field]");
    poll("/api/operation?id=" + encodeURIComponent(op.getAttribute("data-op")), 1000, function (doc) {
      fields.forEach(function (el) {
        var v = doc[el.getAttribute("data-op-field")];
        el.textContent = v === null || v === undefined ? "" : String(v);
      });
      op.setAttribute("data-op-shown", doc.state);
      return doc.state === "running";
    });
  }
  var cells = document.querySelectorAll("[data-live]");
  if (!cells.length) return;
  poll("/api/live", 2000, function (doc) {
    if (!doc.figures) return;
    cells.forEach(function (el) {
      var k = el.getAttribute("data-live");
      if (Object.prototype.hasOwnProperty.call(doc.figures, k)) {
        el.textContent = String(doc.figures[k]);
      }
    });
  });
})();
