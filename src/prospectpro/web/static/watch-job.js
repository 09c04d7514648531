/*
 * watchJob(jobId, onUpdate, options?) -> { close() }
 *
 * Follows one ProspectPro job: its Server-Sent Events stream while that works,
 * else polling GET /api/v1/jobs/{id}. onUpdate(state) is called with
 *   { status, progress, current_stage, stage_label, metrics, error, message,
 *     summary, campaign_id, seq, kind, live, ... }
 * once per new event, in order, never twice for the same event (by seq).
 * `live` is true for updates from the stream, false for polled ones.
 *
 * options:
 *   baseUrl        the API's origin, e.g. "https://prospectpro.example" (default: this page's)
 *   pollMs         polling interval when the stream is unavailable (default 3000)
 *   after          the seq the caller has already drawn (e.g. from a server-rendered page);
 *                  events up to it are not replayed (default 0: replay from the start)
 *   openTimeoutMs  how long the stream may stay silent before polling instead (default 5000)
 *   retryMs        delay before reopening a dropped stream (default 2000)
 *   headers        extra headers for polling requests, e.g. { Authorization: "Bearer …" }
 *                  (EventSource cannot send headers: it relies on the pp_session cookie)
 *   withCredentials  send cookies to another origin (EventSource and fetch)
 *   onConnection(mode, info)  mode: "connecting" | "live" | "reconnecting" | "polling" |
 *                  "offline" | "error" | "closed"; info: { pollMs, reason, message }
 *
 * A plain script: it defines window.watchJob (globalThis.watchJob; module.exports under CommonJS).
 */
(function (root) {
  "use strict";

  var TERMINAL = { completed: true, failed: true, cancelled: true };

  function isTerminal(status) {
    return TERMINAL[status] === true;
  }

  function assign(target) {
    for (var i = 1; i < arguments.length; i++) {
      var source = arguments[i];
      if (!source) continue;
      for (var key in source) {
        if (Object.prototype.hasOwnProperty.call(source, key)) target[key] = source[key];
      }
    }
    return target;
  }

  function watchJob(jobId, onUpdate, options) {
    options = options || {};
    var base = String(options.baseUrl || "").replace(/\/+$/, "");
    var pollMs = options.pollMs > 0 ? options.pollMs : 3000;
    var openTimeoutMs = options.openTimeoutMs > 0 ? options.openTimeoutMs : 5000;
    var retryMs = options.retryMs > 0 ? options.retryMs : 2000;
    var onConnection = typeof options.onConnection === "function" ? options.onConnection : function () {};
    var credentials = options.withCredentials ? "include" : "same-origin";
    var jobUrl = base + "/api/v1/jobs/" + encodeURIComponent(jobId);

    var lastSeq = options.after > 0 ? Math.floor(options.after) : 0;
    var last = null; // the last state handed to onUpdate
    var closed = false;
    var source = null;
    var timers = {};
    var mode = null;

    function setMode(next, info) {
      if (mode === next && next !== "error") return;
      mode = next;
      onConnection(next, assign({ pollMs: pollMs }, info || {}));
    }

    function later(name, fn, ms) {
      clearTimeout(timers[name]);
      timers[name] = setTimeout(fn, ms);
    }

    function clear(name) {
      clearTimeout(timers[name]);
      delete timers[name];
    }

    function emit(state) {
      if (state.status === "completed" && !state.summary) state.summary = (state.metrics || {}).summary || null;
      last = state;
      try {
        onUpdate(state);
      } catch (err) {
        setTimeout(function () { throw err; }); // report, but keep watching
      }
      if (isTerminal(state.status)) close("finished");
    }

    function closeSource() {
      if (source) {
        source.onmessage = source.onerror = null;
        source.close();
        source = null;
      }
      clear("open");
    }

    function close(reason) {
      if (closed) return;
      closed = true;
      closeSource();
      for (var name in timers) clearTimeout(timers[name]);
      timers = {};
      if (mode !== "error") setMode("closed", { reason: reason || "closed" }); // an error stays said
    }

    // -- the event stream ---------------------------------------------------
    function openStream(reconnecting) {
      if (closed) return;
      if (typeof root.EventSource !== "function") return startPolling("no EventSource in this browser");
      setMode(reconnecting ? "reconnecting" : "connecting");
      var heard = false;
      var events = 0; // events received on this connection
      var terminalSnapshot = null;
      // Resume exactly after what was applied: the server replays every later event.
      var es = new root.EventSource(jobUrl + "/events?after=" + lastSeq, { withCredentials: !!options.withCredentials });
      source = es;

      function heardSomething() {
        if (!heard) {
          heard = true;
          clear("open");
          setMode("live");
        }
      }

      // A stream that says nothing (a buffering proxy) is as good as none.
      later("open", function () {
        if (!heard && source === es) {
          closeSource();
          startPolling("no message from the event stream within " + openTimeoutMs / 1000 + " s");
        }
      }, openTimeoutMs);

      es.addEventListener("snapshot", function (e) {
        if (source !== es) return;
        heardSomething();
        // The snapshot carries no seq, so it cannot be ordered against replayed events;
        // it only matters when the job is over and nothing follows it.
        var snap = parse(e.data);
        if (snap && isTerminal(snap.status)) terminalSnapshot = snap;
      });

      es.onmessage = function (e) {
        if (source !== es) return;
        heardSomething();
        events += 1;
        var event = parse(e.data);
        if (!event || typeof event.seq !== "number" || event.seq <= lastSeq) return; // seen already
        lastSeq = event.seq;
        emit(assign({}, event.data, { seq: event.seq, kind: event.kind, created_at: event.created_at, live: true }));
      };

      es.onerror = function () {
        if (source !== es) return;
        closeSource(); // we reconnect ourselves, with ?after= the last applied seq
        if (closed) return;
        if (terminalSnapshot && events === 0) {
          // The job had ended and the server had nothing after lastSeq: draw the final state.
          emit(assign({}, terminalSnapshot, { seq: lastSeq, kind: terminalSnapshot.status, live: true }));
          return;
        }
        if (!heard) return startPolling("the event stream could not be opened");
        setMode("reconnecting", { reason: "the event stream was interrupted" });
        later("reconnect", function () { openStream(true); }, retryMs);
      };
    }

    function parse(text) {
      try {
        return JSON.parse(text);
      } catch (err) {
        return null;
      }
    }

    // -- polling ---------------------------------------------------------------
    var pollFailures = 0;

    function startPolling(reason) {
      if (closed) return;
      closeSource();
      setMode("polling", { reason: reason });
      poll();
    }

    function poll() {
      if (closed) return;
      var headers = assign({ Accept: "application/json" }, options.headers);
      fetch(jobUrl, { credentials: credentials, headers: headers, cache: "no-store" })
        .then(function (response) {
          if (response.status === 401 || response.status === 404) {
            return response.json().catch(function () { return {}; }).then(function (body) {
              var message = (body && body.error && body.error.message) || "job not found";
              setMode("error", { message: message, status: response.status });
              close("error");
            });
          }
          if (!response.ok) throw new Error("HTTP " + response.status);
          return response.json().then(function (job) {
            if (pollFailures > 0) setMode("polling", { reason: "back online" });
            pollFailures = 0;
            applyPolled(job);
          });
        })
        .catch(function () {
          pollFailures += 1;
          setMode("offline", { reason: "cannot reach the server" });
        })
        .then(function () {
          if (!closed) later("poll", poll, pollMs);
        });
    }

    function fingerprint(s) {
      return JSON.stringify([s.status, s.progress, s.current_stage, s.metrics, s.error, s.cancel_requested]);
    }

    function applyPolled(job) {
      if (!job || typeof job.status !== "string") return;
      if (last && !isTerminal(job.status) && job.progress < last.progress) return; // a stale answer
      var state = assign({}, job, { seq: null, kind: "poll", live: false });
      if (last && fingerprint(last) === fingerprint(state)) return;
      emit(state);
    }

    openStream(false);
    return {
      close: function () { close("closed by caller"); },
    };
  }

  watchJob.isTerminal = isTerminal;
  root.watchJob = watchJob;
  if (typeof module === "object" && module && module.exports) module.exports = watchJob;
})(typeof globalThis !== "undefined" ? globalThis : typeof window !== "undefined" ? window : this);
