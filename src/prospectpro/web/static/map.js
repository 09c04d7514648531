/* The map's popups: a marker, clicked or chosen with the keyboard, shows its lead's name, score and
   contacts. Text only (textContent); links only http(s), tel: and mailto:. */
(function () {
  "use strict";

  var svg = document.getElementById("map-svg");
  var popup = document.getElementById("map-popup");
  if (!svg || !popup) return;

  function fill(selector, text, href) {
    var el = popup.querySelector(selector);
    el.textContent = text || "";
    el.hidden = !text;
    if (href !== undefined) {
      if (text) el.setAttribute("href", href);
      else el.removeAttribute("href");
    }
  }

  function open(marker) {
    var d = marker.dataset;
    fill(".map-popup-name", d.name || "—");
    fill(".map-popup-score", d.score === "" ? "Not scored yet" : "Score " + d.score);
    fill(".map-popup-phone", d.phone, "tel:" + (d.phone || "").replace(/[^0-9+]/g, ""));
    fill(".map-popup-email", d.email, "mailto:" + d.email);
    var site = /^https?:\/\//i.test(d.website || "") ? d.website : "";
    fill(".map-popup-website", site.replace(/^https?:\/\/(www\.)?/i, "").replace(/\/$/, ""), site);
    popup.hidden = false;
    var frame = svg.getBoundingClientRect();
    var dot = marker.getBoundingClientRect();
    var x = dot.left - frame.left + dot.width / 2;
    var y = dot.top - frame.top;
    // Inside the frame, whichever side the marker is on.
    var left = Math.max(0, Math.min(x - popup.offsetWidth / 2, frame.width - popup.offsetWidth));
    popup.style.left = left + "px";
    popup.style.top = Math.max(0, y - popup.offsetHeight - 8) + "px";
    var previous = svg.querySelector(".marker.active");
    if (previous) previous.classList.remove("active");
    marker.classList.add("active");
  }

  function close() {
    popup.hidden = true;
    var active = svg.querySelector(".marker.active");
    if (active) active.classList.remove("active");
  }

  svg.addEventListener("click", function (event) {
    var marker = event.target.closest(".marker");
    if (marker) open(marker);
    else close();
  });
  svg.addEventListener("keydown", function (event) {
    var marker = event.target.closest && event.target.closest(".marker");
    if (marker && (event.key === "Enter" || event.key === " ")) {
      event.preventDefault();
      open(marker);
    }
    if (event.key === "Escape") close();
  });
  popup.querySelector(".map-popup-close").addEventListener("click", close);
})();
