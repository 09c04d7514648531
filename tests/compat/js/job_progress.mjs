// The original product's frontend, as far as ProspectPro must serve it, with the real
// @supabase/supabase-js: submit through functions.invoke (useBusinessDiscovery), then
// useJobProgress's first read (.select('*').eq('id', jobId).single()) and its
// postgres_changes subscription. A second owner's client reads and subscribes too and
// must get nothing. Driven by tests/compat/test_supabase_js.py:
//   env BASE_URL, KEY_A, KEY_B; prints "READY <jobId>" once both channels are
//   subscribed (the test then starts a worker), and at the end one "RESULT <json>" line.
import assert from "node:assert/strict";
import { createClient } from "@supabase/supabase-js";

const { BASE_URL, KEY_A, KEY_B } = process.env;
const TIMEOUT_MS = Number(process.env.TIMEOUT_MS || 20000);
const options = { auth: { persistSession: false, autoRefreshToken: false } };
const alice = createClient(BASE_URL, KEY_A, options);
const bob = createClient(BASE_URL, KEY_B, options);

function within(ms, promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// Exactly the hook's subscription; resolves when SUBSCRIBED.
function subscribe(client, jobId, onChange) {
  return new Promise((resolve, reject) => {
    const channel = client
      .channel("discovery_jobs:" + jobId)
      .on(
        "postgres_changes",
        { event: "UPDATE", schema: "public", table: "discovery_jobs", filter: "id=eq." + jobId },
        onChange,
      )
      .subscribe((status, err) => {
        if (status === "SUBSCRIBED") resolve(channel);
        else if (status === "CHANNEL_ERROR" || status === "TIMED_OUT") reject(err || new Error(status));
      });
  });
}

const submitted = await alice.functions.invoke("business-discovery-background", {
  body: { businessType: "cafe", location: "Helsinki", maxResults: 3, budgetLimit: 5 },
});
assert.equal(submitted.error, null, String(submitted.error));
assert.equal(submitted.data.success, true);
const jobId = submitted.data.jobId;

// useJobProgress's first state.
const first = await alice.from("discovery_jobs").select("*").eq("id", jobId).single();
assert.equal(first.error, null, JSON.stringify(first.error));
assert.equal(first.data.id, jobId);
assert.equal(first.data.status, "pending");
assert.equal(typeof first.data.progress, "number");

// Another owner: no row (PostgREST's 406 for .single() on zero rows).
const stranger = await bob.from("discovery_jobs").select("*").eq("id", jobId).single();
assert.equal(stranger.data, null);
assert.equal(stranger.error.code, "PGRST116");
assert.equal(stranger.status, 406);
const strangerList = await bob.from("discovery_jobs").select("id").eq("id", jobId);
assert.deepEqual(strangerList.data, []);

const changes = [];
let done;
const completed = new Promise((resolve) => (done = resolve));
const received = (payload) => {
  const job = payload.new;
  changes.push({
    at: Date.now(),
    eventType: payload.eventType,
    table: payload.table,
    schema: payload.schema,
    status: job.status,
    progress: job.progress,
    current_stage: job.current_stage,
    total_cost: job.metrics.total_cost,
    shown_cost: job.metrics.total_cost.toFixed(2), // what the hook renders; throws unless a number
    error: job.error,
    completed_at: job.completed_at,
    old_id: payload.old.id,
  });
  if (["completed", "failed", "cancelled"].includes(job.status)) done();
};
const bobChanges = [];
await within(TIMEOUT_MS, subscribe(alice, jobId, received), "alice's subscription");
await within(TIMEOUT_MS, subscribe(bob, jobId, (p) => bobChanges.push(p)), "bob's subscription");
console.log("READY " + jobId);

await within(TIMEOUT_MS, completed, "the job's completed change");
await new Promise((r) => setTimeout(r, 300)); // time for a wrongly delivered change to bob to arrive

const last = changes[changes.length - 1];
assert.equal(last.status, "completed");
assert.ok(last.completed_at, "completed_at set on the completed change");
for (const change of changes) {
  assert.equal(change.eventType, "UPDATE");
  assert.equal(change.table, "discovery_jobs");
  assert.equal(change.schema, "public");
  assert.equal(typeof change.total_cost, "number");
  assert.equal(change.old_id, jobId);
}
for (let i = 1; i < changes.length; i++) {
  assert.ok(changes[i].progress >= changes[i - 1].progress, "progress never goes back");
}
assert.equal(bobChanges.length, 0, "the other owner's client gets no change");

const after = await alice.from("discovery_jobs").select("status,metrics").eq("id", jobId).single();
assert.equal(after.data.status, "completed");

await alice.removeAllChannels();
await bob.removeAllChannels();
console.log("RESULT " + JSON.stringify({ jobId, changes, bobChanges: bobChanges.length }));
process.exit(0);
