// For bench/realtime_latency.py: the useJobProgress subscription with the real supabase-js,
// printing when each change reached the callback. env BASE_URL, KEY, JOB_ID.
// Prints "READY", then per change "CHANGE <metrics.t> <arrival, ms since the epoch>", then exits
// after the job's terminal change.
import { createClient } from "@supabase/supabase-js";

const { BASE_URL, KEY, JOB_ID } = process.env;
const client = createClient(BASE_URL, KEY, { auth: { persistSession: false, autoRefreshToken: false } });
const now = () => performance.timeOrigin + performance.now();

client
  .channel("discovery_jobs:" + JOB_ID)
  .on(
    "postgres_changes",
    { event: "UPDATE", schema: "public", table: "discovery_jobs", filter: "id=eq." + JOB_ID },
    (payload) => {
      const arrival = now();
      const job = payload.new;
      process.stdout.write(`CHANGE ${job.metrics.t ?? "-"} ${arrival.toFixed(3)} ${job.status}\n`);
      if (["completed", "failed", "cancelled"].includes(job.status)) process.exit(0);
    },
  )
  .subscribe((status, err) => {
    if (status === "SUBSCRIBED") process.stdout.write("READY\n");
    else if (status === "CHANNEL_ERROR" || status === "TIMED_OUT") {
      console.error(status, err);
      process.exit(2);
    }
  });
setTimeout(() => {
  console.error("timed out");
  process.exit(3);
}, Number(process.env.TIMEOUT_MS || 120000));
