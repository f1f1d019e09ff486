// Keyboard focus on every app page. Served from our origin (the CSP allows no inline script).
// - A page shown again with a mistake puts the focus on its summary of what to fix ([data-focus-on-load]), else
//   on the first field marked invalid, so the keyboard and a screen reader start where the fix is.
// - A link to an element of the page (the skip link, the summary's links to each field) moves the focus there,
//   not only the scroll position, so the next Tab continues from it.
(function () {
  "use strict";
  function focusable(target) {
    return target && (target.hasAttribute("tabindex") || /^(INPUT|SELECT|TEXTAREA|BUTTON|A)$/.test(target.tagName));
  }
  var start = document.querySelector("[data-focus-on-load]") || document.querySelector("[aria-invalid=true]");
  if (focusable(start)) { start.focus(); }
  document.addEventListener("click", function (event) {
    var link = event.target.closest ? event.target.closest("a[href^='#']") : null;
    if (!link) { return; }
    var target = document.getElementById(decodeURIComponent(link.getAttribute("href").slice(1)));
    if (!focusable(target)) { return; }
    event.preventDefault();
    target.focus();
    if (history.replaceState) { history.replaceState(null, "", link.getAttribute("href")); }
  });
})();
