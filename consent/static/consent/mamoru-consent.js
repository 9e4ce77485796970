/*! mamoru-consent.js — show consent choices, record them, read state. No dependencies.
 * <script src="https://mamoru.example/consent/mamoru-consent.js"></script>
 * MamoruConsent.init({endpoint: "https://mamoru.example", key: "mcpk_…", container: "#consent",
 *                     purposes: ["marketing_email"], lang: "ja"});
 * One click gives a consent and one click withdraws it (GDPR Art. 7(3)).
 */
(function (global) {
  "use strict";
  var STORE = "mamoru_browser_id";
  var TEXT = {
    en: {accept: "Accept all", reject: "Reject all", saved: "Saved", error: "Could not save", title: "Your privacy choices"},
    ja: {accept: "すべて同意", reject: "すべて拒否", saved: "保存しました", error: "保存できませんでした", title: "プライバシー設定"}
  };

  function newId() {
    var bytes = new Uint8Array(16);
    (global.crypto || global.msCrypto).getRandomValues(bytes);
    return "b-" + Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  function browserId(given) {
    if (given) return given;
    try {
      var id = global.localStorage.getItem(STORE);
      if (!id) { id = newId(); global.localStorage.setItem(STORE, id); }
      return id;
    } catch (e) { return newId(); }
  }

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    for (var k in attrs || {}) node.setAttribute(k, attrs[k]);
    if (text) node.textContent = text;
    return node;
  }

  var api = {
    options: null, browserId: null, purposes: [], current: {},

    request: function (method, path, body) {
      var o = api.options;
      var init = {method: method, headers: {"Authorization": "Bearer " + o.key, "Accept": "application/json"}};
      if (body) { init.headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
      return fetch(o.endpoint.replace(/\/$/, "") + path, init).then(function (r) {
        return r.json().then(function (data) {
          if (!r.ok) { var err = new Error(data.detail || r.statusText); err.problem = data; throw err; }
          return data;
        });
      });
    },

    state: function () {
      return api.request("GET", "/api/v1/consent/state?browser_id=" + encodeURIComponent(api.browserId))
        .then(function (data) {
          api.current = {};
          data.purposes.forEach(function (p) { api.current[p.purpose] = p; });
          api.sync();
          return data;
        });
    },

    record: function (choices) {
      var o = api.options;
      var events = Object.keys(choices).map(function (code) {
        var on = choices[code];
        var was = api.current[code] && api.current[code].state;
        return {browser_id: api.browserId, purpose: code, method: o.method || "banner",
                state: on ? "given" : (was === "given" ? "withdrawn" : "refused"),
                page_url: global.location.href.split("#")[0].slice(0, 1000), language: o.lang};
      });
      return api.request("POST", "/api/v1/consent/events", {events: events})
        .then(function (r) { api.status("saved"); return api.state().then(function () { return r; }); })
        .catch(function (e) { api.status("error"); throw e; });
    },

    set: function (code, on) { var c = {}; c[code] = !!on; return api.record(c); },
    acceptAll: function () { return api.all(true); },
    rejectAll: function () { return api.all(false); },
    all: function (on) {
      var c = {}; api.purposes.forEach(function (p) { c[p.code] = on; }); return api.record(c);
    },

    status: function (kind) {
      var node = api.root && api.root.querySelector("[data-mamoru-status]");
      if (node) { node.textContent = (TEXT[api.options.lang] || TEXT.en)[kind]; node.setAttribute("data-state", kind); }
    },

    sync: function () {
      if (!api.root) return;
      Array.prototype.forEach.call(api.root.querySelectorAll("input[data-purpose]"), function (box) {
        var s = api.current[box.getAttribute("data-purpose")];
        box.checked = !!(s && s.allowed);
        box.setAttribute("data-state", (s && s.state) || "none");
      });
    },

    render: function () {
      var o = api.options, t = TEXT[o.lang] || TEXT.en;
      var root = typeof o.container === "string" ? document.querySelector(o.container) : o.container;
      if (!root) return;
      api.root = root;
      root.innerHTML = "";
      root.appendChild(el("h2", {}, o.title || t.title));
      api.purposes.forEach(function (p) {
        var row = el("div", {"class": "mamoru-purpose"});
        var label = el("label");
        var box = el("input", {type: "checkbox", "data-purpose": p.code, id: "mamoru-" + p.code});
        box.addEventListener("change", function () { api.set(p.code, box.checked); });
        label.appendChild(box);
        label.appendChild(document.createTextNode(" " + p.name));
        row.appendChild(label);
        row.appendChild(el("p", {"class": "mamoru-description"}, p.description));
        root.appendChild(row);
      });
      var accept = el("button", {type: "button", "data-mamoru-action": "accept"}, t.accept);
      var reject = el("button", {type: "button", "data-mamoru-action": "reject"}, t.reject);
      accept.addEventListener("click", api.acceptAll);
      reject.addEventListener("click", api.rejectAll);
      root.appendChild(accept);
      root.appendChild(reject);
      root.appendChild(el("p", {"data-mamoru-status": "", "aria-live": "polite"}));
    },

    init: function (options) {
      api.options = options;
      options.lang = (options.lang || document.documentElement.lang || "en").slice(0, 2) === "ja" ? "ja" : "en";
      api.browserId = browserId(options.browserId);
      return fetch(options.endpoint.replace(/\/$/, "") + "/api/v1/purposes/?lang=" + options.lang)
        .then(function (r) { return r.json(); })
        .then(function (all) {
          var wanted = options.purposes && options.purposes.length ? options.purposes : null;
          api.purposes = all.filter(function (p) { return !wanted || wanted.indexOf(p.code) >= 0; });
          api.render();
          return api.state();
        })
        .then(function () {
          if (api.root) api.root.setAttribute("data-mamoru-ready", "true");
          return api;
        });
    }
  };
  global.MamoruConsent = api;
})(window);
