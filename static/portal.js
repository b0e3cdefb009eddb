// Progressive enhancement only: countdowns, the live request timeline and copy buttons.
// Every page works without it.
(function () {
  "use strict";

  function remaining(iso) {
    var seconds = Math.floor((Date.parse(iso) - Date.now()) / 1000);
    if (!(seconds > 0)) return "time is up";
    var h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
    var pad = function (n) { return (n < 10 ? "0" : "") + n; };
    if (h) return h + " h " + pad(m) + " min left";
    if (m) return m + " min " + pad(s) + " s left";
    return s + " s left";
  }

  function tick() {
    document.querySelectorAll("[data-countdown]").forEach(function (el) {
      el.textContent = remaining(el.getAttribute("data-countdown"));
    });
  }

  function formsTouched() {
    return Array.prototype.some.call(
      document.querySelectorAll("form.action input[type=text], form.action textarea"),
      function (field) { return field.value.trim() !== ""; }
    );
  }

  function pollLive(region) {
    var url = region.getAttribute("data-live-url");
    var inner = region.querySelector(".live-inner");
    var status = inner ? inner.getAttribute("data-status") : "";
    if (inner && inner.getAttribute("data-terminal") === "true") return;
    var timer = window.setInterval(function () {
      fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (response) {
          if (response.status === 401) { window.clearInterval(timer); window.location.reload(); return null; }
          return response.ok ? response.text() : null;
        })
        .then(function (html) {
          if (html === null) return;
          var holder = document.createElement("div");
          holder.innerHTML = html;
          var fresh = holder.querySelector(".live-inner");
          if (!fresh) return;
          var newStatus = fresh.getAttribute("data-status");
          if (newStatus !== status && !formsTouched()) {
            // The actions on offer depend on the status: show the page as it now is.
            window.location.reload();
            return;
          }
          var current = region.querySelector(".live-inner");
          if (current && current.getAttribute("data-version") === fresh.getAttribute("data-version")) return;
          region.replaceChildren(fresh);
          tick();
          if (fresh.getAttribute("data-terminal") === "true") window.clearInterval(timer);
        })
        .catch(function () { /* offline for a moment: the next poll retries */ });
    }, 3000);
  }

  function copyText(button) {
    var target = document.getElementById(button.getAttribute("data-copy-target"));
    if (!target) return;
    var text = target.textContent;
    var done = function () {
      var label = button.textContent;
      button.textContent = "Copied";
      window.setTimeout(function () { button.textContent = label; }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done);
      return;
    }
    var range = document.createRange();
    range.selectNodeContents(target);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    if (document.execCommand("copy")) done();
  }

  document.addEventListener("DOMContentLoaded", function () {
    tick();
    window.setInterval(tick, 1000);
    var live = document.getElementById("live");
    if (live) pollLive(live);
    document.querySelectorAll("[data-copy-target]").forEach(function (button) {
      button.addEventListener("click", function () { copyText(button); });
    });
  });
})();
