-- wrk script for bench/collector_bench.py: POST a pageview body to the path given on the
-- command line, with the Content-Type and User-Agent a browser's sendBeacon would send.
-- Config (environment): BENCH_SID (site public id), BENCH_EXPECT (the status that counts as OK),
-- BENCH_PAGES (distinct pages K), BENCH_CLIENTS (distinct client addresses; 0 = no
-- X-Forwarded-For). With clients, each request carries X-Forwarded-For with one of that many
-- addresses of 198.18.0.0/15 (the range set aside for benchmarks, RFC 2544) for a server started
-- with TRUSTED_PROXY_HOPS=1: per-IP rate limits and detectors then see many clients, as behind a
-- load balancer. The addresses are only header text: no traffic goes to them.
-- Prints one line "BENCH_RESULT {json}" at the end, read by collector_bench.py.

local sid = os.getenv("BENCH_SID") or "UNKNOWN"
local expect = tonumber(os.getenv("BENCH_EXPECT") or "202")
local pages = tonumber(os.getenv("BENCH_PAGES") or "2000")
local clients = tonumber(os.getenv("BENCH_CLIENTS") or "0")
local agent = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
  .. "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"

local threads = {}
local requests = {}
local count = 0
local counter = 0
statuses = {}
unexpected = 0

function setup(thread)
  thread:set("thread_id", #threads)
  table.insert(threads, thread)
end

function init(args)
  -- Pre-built requests (cheap per request): page i % pages, client i % clients.
  count = math.max(pages, clients)
  for i = 0, count - 1 do
    local k = (i % pages) + 1
    local body = string.format(
      '{"n":"pageview","u":"https://bench.example/page-%d","sid":"%s","r":"https://www.google.com/"}', k, sid)
    local headers = {
      ["Content-Type"] = "text/plain",
      ["User-Agent"] = agent,
      ["Accept"] = "*/*",
    }
    if clients > 0 then
      local c = i % clients
      headers["X-Forwarded-For"] = string.format("198.18.%d.%d", math.floor(c / 256) % 256, c % 256)
    end
    requests[i + 1] = wrk.format("POST", nil, headers, body)
  end
  counter = (thread_id or 0) * 7919
end

function request()
  counter = counter + 1
  return requests[(counter % count) + 1]
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if status ~= expect then
    unexpected = unexpected + 1
  end
end

function done(summary, latency, reqs)
  local all = {}
  local bad = 0
  for _, thread in ipairs(threads) do
    bad = bad + (thread:get("unexpected") or 0)
    for code, n in pairs(thread:get("statuses") or {}) do
      all[code] = (all[code] or 0) + n
    end
  end
  local parts = {}
  for code, n in pairs(all) do
    table.insert(parts, string.format('"%d":%d', code, n))
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,'
      .. '"mean_us":%.1f,"unexpected":%d,"statuses":{%s},"errors":{"connect":%d,"read":%d,"write":%d,'
      .. '"status":%d,"timeout":%d}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean, bad, table.concat(parts, ","),
    e.connect, e.read, e.write, e.status, e.timeout))
end
