// HighLevel's custom-page handshake (ghl-api-facts §10.3): ask the parent frame for the user, send the
// encrypted payload to our server, reload signed in. Outside an iframe, explain how to open the page.
(function () {
  "use strict";
  var recheck = document.getElementById("sso-recheck");
  if (recheck && window.parent !== window) {
    // Signed in already: HighLevel may have switched sub-account (or user) since, keeping our cookie. Ask who
    // the user is now; a different context is a new session, shown after a reload.
    window.addEventListener("message", function (event) {
      var data = event.data || {};
      if (data.message !== "REQUEST_USER_DATA_RESPONSE" || typeof data.payload !== "string") { return; }
      fetch(recheck.getAttribute("data-exchange-url"), {
        method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ encryptedData: data.payload })
      }).then(function (r) { return r.ok ? r.json() : null; })
        .then(function (answer) { if (answer && answer.changed) { window.location.replace("/app"); } });
    });
    window.parent.postMessage({ message: "REQUEST_USER_DATA" }, "*");
    return;
  }
  var box = document.getElementById("sso");
  if (!box) { return; }
  var message = document.getElementById("sso-message");
  function show(id) { document.getElementById(id).hidden = false; }
  if (window.parent === window) {
    message.textContent = "Open TextBack from inside HighLevel.";
    show("sso-outside");
    return;
  }
  var done = false;
  window.addEventListener("message", function (event) {
    var data = event.data || {};
    if (done || data.message !== "REQUEST_USER_DATA_RESPONSE" || typeof data.payload !== "string") { return; }
    done = true;
    fetch(box.getAttribute("data-exchange-url"), {
      method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ encryptedData: data.payload })
    }).then(function (response) {
      if (!response.ok) { throw new Error(String(response.status)); }
      window.location.reload();
    }).catch(function () {
      message.textContent = "HighLevel's sign-in could not be verified.";
      show("sso-failed");
    });
  });
  window.parent.postMessage({ message: "REQUEST_USER_DATA" }, "*");
  setTimeout(function () {
    if (!done) { message.textContent = "HighLevel did not answer."; show("sso-outside"); }
  }, 8000);
})();
