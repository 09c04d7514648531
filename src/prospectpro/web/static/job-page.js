/* The job page: draws the job's state as watchJob reports it. Text only (textContent). */
(function () {
  "use strict";

  var root = document.getElementById("job");
  if (!root || typeof window.watchJob !== "function") return;

  // The stages in order and every label come from the server: the page's data-stage-order, each state's stage_label.
  var STAGE_ORDER = (root.getAttribute("data-stage-order") || "").split(" ");

  var jobId = root.getAttribute("data-job-id");
  var pollMs = parseInt(root.getAttribute("data-poll-ms"), 10) || 3000;
  var initial = JSON.parse(document.getElementById("job-state").textContent);
  var baseTitle = document.title.replace(/^\d+% · /, "");

  function $(id) {
    return document.getElementById(id);
  }

  function setText(id, text) {
    var el = $(id);
    if (el && el.textContent !== text) el.textContent = text;
  }

  function money(value) {
    var n = Number(value);
    if (!isFinite(n)) n = 0;
    return "$" + n.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  }

  function exactMoney(text) {
    var parts = text.split(".");
    var cents = parts.length > 1 ? parts[1] : "";
    while (cents.length < 2) cents += "0";
    return "$" + parts[0] + "." + cents;
  }

  function count(value) {
    return value === undefined || value === null ? "—" : String(value);
  }

  // What the page applied, in order: handy when debugging a stream (and for the tests).
  var log = (window.__jobPage = { seqs: [], progress: [initial.progress], connection: [] });

  function draw(state) {
    var status = state.status;
    var terminal = window.watchJob.isTerminal(status);
    var progress = Math.max(0, Math.min(100, Number(state.progress) || 0));
    root.setAttribute("data-status", status);

    // The server's label: the stage while it runs, the outcome once it ended (as pages.headline draws it).
    setText("stage-label", state.cancel_requested && !terminal ? "Cancelling…" : state.stage_label || "");

    var bar = $("progress");
    bar.value = progress;
    bar.setAttribute("aria-valuenow", String(progress));
    bar.textContent = progress + "%";
    setText("progress-text", progress + "%");
    document.title = progress + "% · " + baseTitle;

    var at = STAGE_ORDER.indexOf(state.current_stage);
    var steps = root.querySelectorAll(".steps .step");
    for (var i = 0; i < steps.length; i++) {
      var position = STAGE_ORDER.indexOf(steps[i].getAttribute("data-stage"));
      var step = status === "completed" || position < at ? "done" : position === at ? "current" : "todo";
      steps[i].className = "step " + step;
      if (step === "current") steps[i].setAttribute("aria-current", "step");
      else steps[i].removeAttribute("aria-current");
    }

    var m = state.metrics || {};
    setText("m-found", count(m.businesses_found));
    setText("m-qualified", count(m.qualified_leads));
    var enriched = count(m.leads_enriched);
    if (m.leads_enriched !== undefined && m.selected_for_enrichment !== undefined) {
      enriched += " / " + m.selected_for_enrichment;
    }
    setText("m-enriched", enriched);
    setText("m-cost", money(m.total_cost));
    // Cost per lead: once the job knows it (null for no leads). Shown from its decimal string, not
    // rounded to cents: a Google-found lead costs a fraction of one ($0.00175).
    var perLead = m.cost_per_lead === undefined || m.cost_per_lead === null ? null : String(m.cost_per_lead);
    $("m-cpl-item").hidden = perLead === null;
    if (perLead !== null) setText("m-cpl", exactMoney(perLead));
    $("budget-stop").hidden = !m.budget_exhausted;
    drawFunnel(m);

    $("cancel-form").hidden = terminal;
    if (state.cancel_requested && !terminal) {
      var button = $("cancel");
      button.disabled = true;
      button.textContent = "Cancelling…";
    }

    $("done").hidden = status !== "completed";
    if (status === "completed") setText("summary", state.summary || "");
    $("failed").hidden = status !== "failed";
    if (status === "failed") setText("error", state.error || "The campaign failed.");
    $("cancelled").hidden = status !== "cancelled";
  }

  // The funnel's steps that the job's metrics count (the e-mail ones count stored leads: the server's).
  var FUNNEL = { found: "businesses_found", qualified: "qualified_leads", enriched: "leads_enriched",
    with_email: "leads_with_email", verified: "leads_verified", delivered: "leads" };

  function drawFunnel(m) {
    var steps = root.querySelectorAll("#funnel .funnel-step");
    if (!steps.length) return;
    var counts = [];
    var widest = 0;
    for (var i = 0; i < steps.length; i++) {
      var name = FUNNEL[steps[i].getAttribute("data-step")];
      var value = m[name];
      var known = steps[i].getAttribute("data-count");
      var count = typeof value === "number" ? value : known === "" || known === null ? null : Number(known);
      counts.push(count);
      if (count !== null && count > widest) widest = count;
    }
    for (var j = 0; j < steps.length; j++) {
      var c = counts[j];
      steps[j].setAttribute("data-count", c === null ? "" : String(c));
      steps[j].querySelector(".funnel-count").textContent = c === null ? "—" : String(c);
      steps[j].querySelector(".fill").setAttribute("width", c === null || !widest ? "0" : String(Math.round(1000 * c / widest) / 10));
    }
    if (m.total_cost !== undefined && $("funnel-total-cost")) setText("funnel-total-cost", exactMoney(String(m.total_cost)));
  }

  function connection(mode, info) {
    log.connection.push(mode);
    var el = $("connection");
    el.className = "connection " + mode;
    var text = "";
    if (mode === "connecting") text = "Connecting to live updates…";
    else if (mode === "live") text = "Live";
    else if (mode === "reconnecting") text = "Connection lost — reconnecting…";
    else if (mode === "polling") text = "Live updates unavailable — refreshing every " + Math.round(info.pollMs / 1000) + " s";
    else if (mode === "offline") text = "Cannot reach the server — retrying every " + Math.round(info.pollMs / 1000) + " s";
    else if (mode === "error") text = info.message || "Cannot follow this job.";
    else if (mode === "closed") text = "";
    el.textContent = text;
  }

  draw(initial);
  if (window.watchJob.isTerminal(initial.status)) return; // nothing more will happen

  var watcher = window.watchJob(
    jobId,
    function (state) {
      if (typeof state.seq === "number") log.seqs.push(state.seq);
      log.progress.push(state.progress);
      draw(state);
    },
    { after: initial.seq, pollMs: pollMs, onConnection: connection }
  );
  window.addEventListener("pagehide", function () { watcher.close(); });
  window.addEventListener("pageshow", function (event) {
    if (event.persisted) window.location.reload(); // back from the page cache: start over from the server's state
  });

  // Cancel through the JSON API (the form posts to the page route without JavaScript).
  $("cancel-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var button = $("cancel");
    button.disabled = true;
    button.textContent = "Cancelling…";
    setText("cancel-message", "");
    fetch("/api/v1/jobs/" + encodeURIComponent(jobId) + "/cancel", {
      method: "POST",
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    })
      .then(function (response) {
        if (response.ok) return;
        return response.json().catch(function () { return {}; }).then(function (body) {
          throw new Error((body && body.error && body.error.message) || "HTTP " + response.status);
        });
      })
      .catch(function (err) {
        button.disabled = false;
        button.textContent = "Cancel campaign";
        setText("cancel-message", "Could not cancel: " + err.message);
      });
  });
})();
