// Follow a running data-subject request on its admin page: poll the progress endpoint and move the
// bar. Without JavaScript the page refreshes itself instead (<noscript> meta refresh).
(function () {
  "use strict";
  var panel = document.getElementById("request-panel");
  if (!panel || panel.getAttribute("data-running") !== "1") { return; }
  var url = panel.getAttribute("data-progress-url");
  var bar = document.getElementById("request-progress");
  var text = document.getElementById("request-progress-text");
  var status = document.getElementById("request-status");
  var timer = null;

  function update(data) {
    bar.value = data.percent;
    bar.textContent = data.percent + "%";
    if (text && data.text) { text.textContent = data.text; }
    if (status && data.status !== status.getAttribute("data-status")) {
      // A new status brings new actions, a package link or a timeline: load the page again.
      window.clearInterval(timer);
      window.location.reload();
    }
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) { if (data) { update(data); } })
      .catch(function () { /* keep the last value; try again on the next tick */ });
  }

  timer = window.setInterval(poll, 2000);
})();
