// The console's only script (CSP: script-src 'self'); every page works without it.
// A form marked data-previews refreshes its preview frames as its fields change: its values,
// CSRF token included, are posted into each frame, as the form's own Preview buttons do.
// Each frame gets a form of its own: a second submit() of one form in the same task would
// cancel the first.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("form[data-previews]").forEach(function (form) {
    var buttons = form.querySelectorAll("button[data-preview]");
    var senders = [];
    buttons.forEach(function (button) {
      var sender = document.createElement("form");
      sender.method = "post";
      sender.action = button.getAttribute("formaction");
      sender.target = button.getAttribute("formtarget");
      sender.hidden = true;
      document.body.appendChild(sender);
      senders.push(sender);
    });
    var timer = null;
    function refresh() {
      var data = new FormData(form);
      senders.forEach(function (sender) {
        sender.replaceChildren();
        data.forEach(function (value, name) {
          if (typeof value !== "string") { return; }
          var field = document.createElement("textarea");  // keeps line ends, unlike an input
          field.name = name;
          field.value = value;
          sender.appendChild(field);
        });
        sender.submit();
      });
    }
    function later() {
      window.clearTimeout(timer);
      timer = window.setTimeout(refresh, 400);
    }
    form.addEventListener("input", later);
    form.addEventListener("change", later);
  });
});
