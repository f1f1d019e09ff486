// The settings form's live preview, placeholder chips and test-text status. Served from our origin (the
// CSP allows no inline script). The rendering mirrors integration/textback/template.py: one pass over the
// five known placeholders, "{name|fallback}", empty values tidied; segments as carriers count them.
(function () {
  "use strict";
  var dataNode = document.getElementById("preview-data");
  if (!dataNode) { return; }
  var data = JSON.parse(dataNode.textContent);
  var NAMES = ["first_name", "business_name", "user_name", "booking_link", "next_open_time"];
  var PLACEHOLDER = new RegExp("\\{(" + NAMES.join("|") + ")(?:\\|([^{}\\n]{0,60}))?\\}", "g");
  var EMPTY = "\u0000";
  var GSM_BASIC = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
                  "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
  var GSM_EXTENSION = "^{}\\[~]|€\f";
  var limits = data.limits;

  function clean(value) {
    if (value === null || value === undefined) { return ""; }
    return String(value).replace(/[\u0000-\u001f\u007f-\u009f]/g, " ").split(/\s+/).filter(Boolean).join(" ");
  }

  function currentValues() {
    var values = {};
    NAMES.forEach(function (name) { values[name] = data.values[name]; });
    // What is typed in the form wins over what the page was rendered with.
    [["sender_name", "user_name"], ["business_name", "business_name"], ["booking_link", "booking_link"]]
      .forEach(function (pair) {
        var input = document.getElementById(pair[0]);
        if (input && clean(input.value)) { values[pair[1]] = input.value; }
      });
    return values;
  }

  function render(template, values) {
    var body = template.split(EMPTY).join("").replace(PLACEHOLDER, function (whole, name, fallback) {
      var value = clean(values[name]);
      if (!value) { value = fallback !== undefined ? fallback.trim() : data.fallbacks[name]; }
      return value || EMPTY;
    });
    body = body.replace(new RegExp(" ?" + EMPTY + "(?=[,.!?;:])", "g"), "").replace(new RegExp(EMPTY + " ?", "g"), "");
    return body.trim();
  }

  function pack(costs, single, multi) {
    var total = costs.reduce(function (a, b) { return a + b; }, 0);
    if (total === 0) { return 0; }
    if (total <= single) { return 1; }
    var segments = 1, used = 0;
    costs.forEach(function (cost) { if (used + cost > multi) { segments += 1; used = 0; } used += cost; });
    return segments;
  }

  function segmentInfo(text) {
    var chars = Array.from(text);
    var gsm = chars.every(function (ch) { return GSM_BASIC.indexOf(ch) >= 0 || GSM_EXTENSION.indexOf(ch) >= 0; });
    var costs;
    if (gsm) {
      costs = chars.map(function (ch) { return GSM_EXTENSION.indexOf(ch) >= 0 ? 2 : 1; });
      return { encoding: "GSM-7", units: costs.reduce(function (a, b) { return a + b; }, 0),
               segments: pack(costs, limits.gsmSingle, limits.gsmMulti) };
    }
    costs = chars.map(function (ch) { return ch.codePointAt(0) > 0xffff ? 2 : 1; });
    return { encoding: "UCS-2", units: costs.reduce(function (a, b) { return a + b; }, 0),
             segments: pack(costs, limits.ucs2Single, limits.ucs2Multi) };
  }

  function maxSegments() {
    var input = document.getElementById("max_segments");
    var typed = input ? parseInt(input.value, 10) : NaN;
    return isNaN(typed) ? data.maxSegments : typed;
  }

  function update(textarea) {
    var body = render(textarea.value, currentValues());
    var info = segmentInfo(body);
    var preview = document.getElementById(textarea.id + "-preview");
    var meta = document.getElementById(textarea.id + "-meta");
    preview.textContent = body || "(empty)";
    var perSegment = info.encoding === "GSM-7" ? (info.segments > 1 ? limits.gsmMulti : limits.gsmSingle)
                                               : (info.segments > 1 ? limits.ucs2Multi : limits.ucs2Single);
    var parts = [info.units + " characters", info.segments + (info.segments === 1 ? " segment" : " segments"),
                 info.encoding + " (" + perSegment + " per segment)"];
    meta.textContent = "";
    var strong = document.createElement("strong");
    strong.textContent = parts[1];
    meta.append(parts[0] + " · ", strong, " · " + parts[2]);
    if (info.encoding === "UCS-2") {
      meta.append(" · an emoji or special character makes every segment shorter");
    }
    if (info.segments > maxSegments()) {
      var over = document.createElement("span");
      over.className = "over";
      over.textContent = " · longer than your limit of " + maxSegments() + ": it will be cut";
      meta.append(over);
    }
  }

  var templates = Array.prototype.slice.call(document.querySelectorAll("textarea[data-template]"));
  function updateAll() { templates.forEach(update); }
  templates.forEach(function (textarea) {
    textarea.addEventListener("input", function () { update(textarea); });
  });
  ["sender_name", "business_name", "booking_link", "max_segments"].forEach(function (id) {
    var input = document.getElementById(id);
    if (input) { input.addEventListener("input", updateAll); }
  });
  updateAll();

  // Placeholder chips insert at the cursor of their template, and put the focus back there.
  Array.prototype.forEach.call(document.querySelectorAll(".chip[data-insert]"), function (chip) {
    chip.addEventListener("click", function () {
      var target = document.getElementById(chip.getAttribute("data-target"));
      var text = chip.getAttribute("data-insert");
      var start = target.selectionStart === undefined ? target.value.length : target.selectionStart;
      var end = target.selectionEnd === undefined ? start : target.selectionEnd;
      var before = target.value.slice(0, start), after = target.value.slice(end);
      var spacer = before && !/\s$/.test(before) ? " " : "";
      target.value = before + spacer + text + after;
      var caret = (before + spacer + text).length;
      target.focus();
      target.setSelectionRange(caret, caret);
      update(target);
    });
  });

  // The test text's status line follows the worker until the text is sent or has failed.
  var status = document.getElementById("test-text-status");
  if (status && status.getAttribute("data-status") === "queued") {
    var tries = 0;
    var poll = function () {
      tries += 1;
      fetch(status.getAttribute("data-url"), { credentials: "same-origin" })
        .then(function (r) { return r.json(); })
        .then(function (answer) {
          if (answer.status && answer.status !== "queued") {
            status.textContent = answer.status === "sent" ? "Test text " + answer.outcome + ". Check your phone."
                                                          : "Test text " + answer.outcome + ".";
            status.setAttribute("data-status", answer.status);
            status.className = answer.status === "sent" ? "notice" : "warn";
          } else if (tries < 30) { setTimeout(poll, 1000); }
        })
        .catch(function () { if (tries < 30) { setTimeout(poll, 2000); } });
    };
    setTimeout(poll, 700);
  }
})();
