/*
 * The webhooks portal's small progressive layer (no library, no build).
 *
 * Every page works without it: these only make things quicker.
 *   - reveal a secret in place (the same POST the button makes without it);
 *   - copy a secret or a code snippet to the clipboard;
 *   - ask before disabling, rotating, deleting or resending;
 *   - add and remove payload filter rows;
 *   - refresh the first page of the delivery list every few seconds.
 */
(function () {
  "use strict";

  function announce(text) {
    var live = document.getElementById("portal-live");
    if (!live) return;
    live.textContent = "";
    window.setTimeout(function () {
      live.textContent = text;
    }, 50);
  }

  function show(element) {
    if (element) element.hidden = false;
  }

  // -- copy -------------------------------------------------------------------

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    // Plain http (e.g. a development server): the older way.
    return new Promise(function (resolve, reject) {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.className = "visually-hidden";
      document.body.appendChild(area);
      area.select();
      var done = false;
      try {
        done = document.execCommand("copy");
      } catch (error) {
        done = false;
      }
      document.body.removeChild(area);
      if (done) resolve();
      else reject(new Error("copy refused"));
    });
  }

  function onCopy(event) {
    var button = event.target.closest("[data-copy]");
    if (!button) return;
    var target = document.querySelector(button.getAttribute("data-copy"));
    if (!target) return;
    var label = button.textContent;
    copyText(target.textContent).then(
      function () {
        button.textContent = "Copied";
        announce("Copied to the clipboard.");
        window.setTimeout(function () {
          button.textContent = label;
        }, 2000);
      },
      function () {
        announce("The browser refused to copy: select the text and copy it.");
      }
    );
  }

  // -- reveal a secret ----------------------------------------------------------

  function onReveal(event) {
    var form = event.target.closest("form[data-portal-reveal]");
    if (!form || !window.fetch) return;
    event.preventDefault();
    fetch(form.action, {
      method: "POST",
      body: new FormData(form),
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    })
      .then(function (response) {
        if (!response.ok) throw new Error("status " + response.status);
        return response.json();
      })
      .then(function (data) {
        var box = document.querySelector("[data-secret]");
        var value = document.getElementById("secret-value");
        value.textContent = data.secret;
        box.setAttribute("data-revealed", "");
        show(box.querySelector("[data-copy='#secret-value']"));
        if (data.standard_secret) {
          document.getElementById("standard-value").textContent = data.standard_secret;
          show(box.querySelector(".standard"));
        }
        form.hidden = true;
        announce("The secret is shown.");
      })
      .catch(function () {
        form.submit(); // the page answers the same POST without JavaScript
      });
  }

  // -- confirm ------------------------------------------------------------------

  function onConfirm(event) {
    var form = event.target.closest("form[data-confirm]");
    if (!form || event.defaultPrevented) return;
    if (!window.confirm(form.getAttribute("data-confirm"))) {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
  }

  // -- payload filter rows ------------------------------------------------------

  function setUpFilters() {
    var rows = document.querySelector("[data-filter-rows]");
    var template = document.querySelector("template[data-filter-template]");
    var add = document.querySelector("[data-filter-add]");
    if (!rows || !template || !add) return;
    var total = document.querySelector("input[name$='-TOTAL_FORMS']");
    var max = document.querySelector("input[name$='-MAX_NUM_FORMS']");
    var limit = max ? parseInt(max.value, 10) : 1000;

    function renumber() {
      var shown = rows.querySelectorAll("[data-filter-row]:not([hidden])");
      shown.forEach(function (row, index) {
        var legend = row.querySelector("legend");
        if (legend) legend.textContent = "Filter " + (index + 1);
      });
    }

    function enableRemove(row) {
      var remove = row.querySelector("[data-filter-remove]");
      show(remove);
    }

    rows.querySelectorAll("[data-filter-row]").forEach(enableRemove);
    show(add);

    add.addEventListener("click", function () {
      var index = parseInt(total.value, 10);
      if (index >= limit) {
        announce("At most " + limit + " filters.");
        return;
      }
      var html = template.innerHTML.replace(/__prefix__/g, String(index));
      var holder = document.createElement("div");
      holder.innerHTML = html;
      var row = holder.firstElementChild;
      rows.appendChild(row);
      total.value = String(index + 1);
      enableRemove(row);
      renumber();
      var first = row.querySelector("input[type='text']");
      if (first) first.focus();
    });

    rows.addEventListener("click", function (event) {
      var button = event.target.closest("[data-filter-remove]");
      if (!button) return;
      var row = button.closest("[data-filter-row]");
      // An emptied row is ignored by the server: clear it, then hide it.
      row.querySelectorAll("input[type='text']").forEach(function (input) {
        input.value = "";
      });
      var select = row.querySelector("select");
      if (select) select.value = "is";
      row.hidden = true;
      renumber();
      announce("Filter removed.");
      add.focus();
    });
  }

  // -- auto-refresh -------------------------------------------------------------

  function setUpRefresh() {
    var box = document.querySelector("[data-refresh]");
    if (!box || !window.fetch || !window.DOMParser) return;
    var seconds = parseInt(box.getAttribute("data-refresh"), 10);
    if (!(seconds > 0)) return;
    var busy = false;
    window.setInterval(function () {
      if (busy || document.visibilityState !== "visible") return;
      if (box.contains(document.activeElement) && document.activeElement !== document.body) return;
      busy = true;
      fetch(window.location.href, {
        credentials: "same-origin",
        headers: { "X-Requested-With": "portal.js" },
      })
        .then(function (response) {
          if (!response.ok) throw new Error("status " + response.status);
          return response.text();
        })
        .then(function (html) {
          var fresh = new DOMParser().parseFromString(html, "text/html").getElementById(box.id);
          if (fresh && fresh.innerHTML !== box.innerHTML) {
            box.innerHTML = fresh.innerHTML;
            announce("The list of deliveries was updated.");
          }
        })
        .catch(function () {
          /* try again at the next tick */
        })
        .then(function () {
          busy = false;
        });
    }, seconds * 1000);
  }

  // -- start ------------------------------------------------------------------

  function start() {
    document.documentElement.classList.add("js");
    document.querySelectorAll(".code-block [data-copy]").forEach(show);
    var focus = document.querySelector("[data-focus-on-load]");
    if (focus) focus.focus();
    setUpFilters();
    setUpRefresh();
  }

  // Confirm runs first (capture), so a refused confirm stops the reveal too.
  document.addEventListener("submit", onConfirm, true);
  document.addEventListener("submit", onReveal);
  document.addEventListener("click", onCopy);
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
