// The console's live audit feed: Server-Sent Events from the page's own
// stream (same filters as the list). Builds text nodes only, never HTML.
(function () {
  "use strict";
  var section = document.getElementById("live");
  if (!section || !window.EventSource) { return; }
  var list = document.getElementById("live-events");
  var status = document.getElementById("live-status");
  var source = new EventSource(section.getAttribute("data-stream"));
  function text(tag, value) {
    var el = document.createElement(tag);
    el.textContent = value;
    return el;
  }
  source.addEventListener("open", function () {
    status.textContent = "Connected: new events matching these filters appear below as they are written.";
  });
  source.addEventListener("audit", function (message) {
    var e = JSON.parse(message.data);
    var item = document.createElement("li");
    item.className = "outcome-" + e.outcome;
    item.appendChild(text("time", new Date(e.time * 1000).toISOString().replace("T", " ").replace(".000Z", " UTC")));
    item.appendChild(document.createTextNode(" "));
    item.appendChild(text("code", e.type));
    item.appendChild(document.createTextNode(" " + e.outcome + " · " + e.actor.type + (e.actor.id ? " " + e.actor.id : "") +
      (e.user ? " · user " + e.user : "") + (e.client_id ? " · client " + e.client_id : "") +
      (e.reason ? " · " + e.reason : "")));
    if (e.correlation_id) {
      item.appendChild(document.createTextNode(" · "));
      var link = text("a", "flow " + e.correlation_id);
      link.href = "/console/audit/flow/" + encodeURIComponent(e.correlation_id);
      item.appendChild(link);
    }
    list.appendChild(item);
  });
  source.addEventListener("lagged", function () {
    status.textContent = "Some events were missed; reload the page to see them all.";
  });
  source.addEventListener("error", function () {
    status.textContent = "The live feed is disconnected; reload the page to see new events.";
  });
})();
