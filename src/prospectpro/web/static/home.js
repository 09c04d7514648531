/* The campaign form: business type suggestions (synonyms too) as the user types. */
(function () {
  "use strict";

  var input = document.getElementById("business_type");
  var list = document.getElementById("business-types");
  if (!input || !list || typeof fetch !== "function") return;

  var all = Array.prototype.map.call(list.options, function (option) {
    return { value: option.value, label: option.label };
  });
  var timer = null;
  var latest = 0;

  function fill(options) {
    var fragment = document.createDocumentFragment();
    options.forEach(function (item) {
      var option = document.createElement("option");
      option.value = item.value;
      if (item.label && item.label !== item.value) option.label = item.label;
      fragment.appendChild(option);
    });
    while (list.firstChild) list.removeChild(list.firstChild);
    list.appendChild(fragment);
  }

  input.addEventListener("input", function () {
    clearTimeout(timer);
    var prefix = input.value.trim();
    if (prefix.length < 2) {
      if (list.options.length !== all.length) fill(all);
      return;
    }
    timer = setTimeout(function () {
      var ticket = ++latest;
      fetch("/api/v1/business-types?limit=15&prefix=" + encodeURIComponent(prefix), { credentials: "same-origin" })
        .then(function (response) { return response.ok ? response.json() : { types: [] }; })
        .then(function (body) {
          if (ticket !== latest || !body.types || !body.types.length) return;
          fill(body.types.map(function (name) { return { value: name }; }));
        })
        .catch(function () {});
    }, 150);
  });
})();
