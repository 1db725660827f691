// Licentia pages: the little behaviour that needs a script (no inline script anywhere).
"use strict";
document.addEventListener("submit", function (event) {
  // Destructive actions ask first: <form data-confirm="...">.
  var message = event.target.getAttribute("data-confirm");
  if (message && !window.confirm(message)) {
    event.preventDefault();
    event.stopImmediatePropagation();
  }
}, true);
document.addEventListener("click", function (event) {
  // <button data-copy="element-id">: copy that element's text.
  var button = event.target.closest("[data-copy]");
  if (!button) return;
  var source = document.getElementById(button.getAttribute("data-copy"));
  if (source && navigator.clipboard) {
    navigator.clipboard.writeText(source.textContent.trim()).then(function () {
      button.textContent = "Copied";
    });
  }
});
