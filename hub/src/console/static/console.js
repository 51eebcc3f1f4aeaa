// IMI Hub console: live updates and local times. The pages work without it.
(function () {
  "use strict";

  // Times in the viewer's time zone.
  function localTimes(root) {
    var fmt = new Intl.DateTimeFormat(undefined, {
      year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
      timeZoneName: "short"
    });
    root.querySelectorAll("time[data-local]").forEach(function (el) {
      var d = new Date(el.getAttribute("datetime"));
      if (!isNaN(d)) { el.textContent = fmt.format(d); el.title = el.getAttribute("datetime"); }
    });
  }

  function refresh(el) {
    var url = el.getAttribute("data-live") || el.getAttribute("data-poll");
    return fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (html !== null) { el.innerHTML = html; localTimes(el); }
      })
      .catch(function () {});
  }

  document.addEventListener("DOMContentLoaded", function () {
    localTimes(document);

    // The dashboard: the server says when the counts move.
    var live = document.querySelector("[data-live]");
    if (live && window.EventSource) {
      // What the page shows; the stream says what there is now.
      var shown = live.getAttribute("data-activity");
      var source = new EventSource("/console/live");
      source.addEventListener("activity", function (e) {
        if (e.data !== shown) { shown = e.data; refresh(live); }
      });
    }

    // Parts that follow their own state (an alert's acknowledgements).
    document.querySelectorAll("[data-poll]").forEach(function (el) {
      setInterval(function () { refresh(el); }, 3000);
    });
  });
})();
