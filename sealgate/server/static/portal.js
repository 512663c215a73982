// The only script on portal pages (CSP: script-src 'self'). It sizes the message frame to
// its content (the frame is same-origin but may not run scripts itself) and wires Print.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("iframe.body").forEach(function (frame) {
    function fit() {
      try {
        var doc = frame.contentDocument;
        if (doc && doc.documentElement) {
          // Shrink first: inside the frame, scrollHeight is never less than the frame itself.
          frame.style.height = "0px";
          frame.style.height = (doc.documentElement.scrollHeight + 24) + "px";
        }
      } catch (e) { /* another origin: keep the CSS height */ }
    }
    frame.addEventListener("load", fit);
    window.addEventListener("resize", fit);
    fit();
  });
  document.querySelectorAll("[data-print]").forEach(function (button) {
    button.addEventListener("click", function () { window.print(); });
  });
});
