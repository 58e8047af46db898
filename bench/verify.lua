-- wrk script for bench/run.sh: every request is `POST /v1/keys/verify` with the body
-- {"key":"<a random line of KEYS_FILE>"} and the management token as Bearer, so nginx (the
-- baseline) and Keygate get the same request shape.
--
--   wrk -t1 -c64 -d10s -s bench/verify.lua http://127.0.0.1:PORT -- KEYS_FILE TOKEN
--
-- At the end it prints one JSON line (prefixed `RESULT `) that run.sh reads.

local keys = {}
local count = 0
local headers = {}

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then
      count = count + 1
      keys[count] = line
    end
  end
  headers["Content-Type"] = "application/json"
  headers["Authorization"] = "Bearer " .. args[2]
  math.randomseed(os.time())
end

function request()
  local body = '{"key":"' .. keys[math.random(count)] .. '"}'
  return wrk.format("POST", "/v1/keys/verify", headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests":%d,"seconds":%.3f,"rps":%.1f,"errors":%d,"non_2xx":%d,"p50_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99)))
end
