-- wrk script: POST a JSON body (no response() hook, so wrk stays on its fast path,
-- like the peers' post.lua). Env: BENCH_BODY (default: the campaign body),
-- BENCH_TOKEN (optional; sent as "Authorization: Bearer <token>").
wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY") or '{"business_type":"cafe","location":"Helsinki","max_results":5}'
wrk.headers["Content-Type"] = "application/json"
local token = os.getenv("BENCH_TOKEN")
if token and #token > 0 then
  wrk.headers["Authorization"] = "Bearer " .. token
end
