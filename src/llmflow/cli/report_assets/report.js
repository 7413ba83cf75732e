(function () {
  "use strict";
  var spans = JSON.parse(document.getElementById("span-data").textContent);
  var detail = document.getElementById("detail");

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function row(table, key, value, cls) {
    if (value === null || value === undefined || value === "") return;
    var tr = el("tr");
    tr.appendChild(el("td", {}, key));
    tr.appendChild(el("td", cls ? { "class": cls } : {}, value));
    table.appendChild(tr);
  }
  function block(title, text) {
    if (!text) return;
    detail.appendChild(el("h4", {}, title));
    detail.appendChild(el("pre", { "class": "payload" }, text));
  }
  function show(uuid) {
    var span = spans[uuid];
    if (!span) return;
    document.querySelectorAll(".row.selected").forEach(function (r) { r.classList.remove("selected"); });
    var target = document.querySelector('.row[data-span="' + uuid + '"]');
    if (target) target.classList.add("selected");
    detail.textContent = "";
    detail.appendChild(el("h3", {}, (span.category || "scope") + " " + span.name));
    var table = el("table", { "class": "facts" });
    row(table, "duration", span.duration);
    row(table, "model", span.model);
    row(table, "provider", span.provider);
    if (span.tokens && (span.tokens.input !== null || span.tokens.output !== null)) {
      var t = span.tokens;
      var text = (t.input === null ? "-" : t.input) + " in / " + (t.output === null ? "-" : t.output) + " out";
      if (t.cached) text += " / " + t.cached + " cached";
      if (t.reasoning) text += " / " + t.reasoning + " reasoning";
      row(table, "tokens", text);
    }
    row(table, "cost", span.cost);
    row(table, "attempts", span.attempts);
    row(table, "error", span.error, "err");
    if (span.rejected) row(table, "guardrail", "rejected the call", "rej");
    row(table, "uuid", span.uuid);
    detail.appendChild(table);
    block(span.category === "llm" ? "Request" : "Input", span.request);
    block(span.category === "llm" ? "Response" : "Output", span.response);
    block("Metadata", span.metadata);
  }
  document.querySelectorAll(".row.span").forEach(function (r) {
    r.addEventListener("click", function () { show(r.getAttribute("data-span")); });
    r.addEventListener("keydown", function (e) { if (e.key === "Enter") show(r.getAttribute("data-span")); });
  });

  var select = document.getElementById("trace-select");
  var onlyFailed = document.getElementById("only-failed");
  function filter() {
    document.querySelectorAll("section.trace").forEach(function (s) {
      var hide = (select.value && s.getAttribute("data-trace") !== select.value) ||
        (onlyFailed.checked && !s.classList.contains("failed"));
      s.classList.toggle("hidden", Boolean(hide));
    });
  }
  select.addEventListener("change", filter);
  onlyFailed.addEventListener("change", filter);

  // #span=<uuid> opens that span; otherwise the first LLM call is shown.
  var match = /span=([0-9a-fA-F-]+)/.exec(window.location.hash);
  var first = document.querySelector(".row.cat-llm");
  if (match && spans[match[1]]) show(match[1]);
  else if (first) show(first.getAttribute("data-span"));
  document.body.setAttribute("data-ready", "1");
})();
