-- wrk script of scripts/bench.sh.
--
-- Environment:
--   BENCH_PATHS   request paths separated by "|", sent in turn by each
--                 thread; "{id}" is replaced by the thread's number (1..t),
--                 so that with -tN -cN (one connection per thread) every
--                 connection has its own, strictly ordered sequence
--   BENCH_METHOD  GET (default) or POST
--   BENCH_BODY    request body (POST)
--
-- Headers given with -H (e.g. Host) are kept. done() prints one line:
--   WRK requests=.. duration_us=.. rps=.. p50_us=.. p90_us=.. p99_us=..
--       max_us=.. mean_us=.. err_connect=.. err_read=.. err_write=..
--       err_timeout=.. non2xx=..

local threads = 0

function setup(thread)
   threads = threads + 1
   thread:set("id", threads)
end

local reqs = {}
local n = 0

function init(args)
   local method = os.getenv("BENCH_METHOD") or "GET"
   local body = os.getenv("BENCH_BODY")
   if body == "" then body = nil end
   local paths = os.getenv("BENCH_PATHS") or "/"
   local me = tostring(id or 1)
   for p in string.gmatch(paths, "[^|]+") do
      local headers = {}
      for k, v in pairs(wrk.headers) do headers[k] = v end
      p = p:gsub("{id}", me)
      local b = body and body:gsub("{id}", me) or nil
      table.insert(reqs, wrk.format(method, p, headers, b))
   end
   -- wrk 4.1 calls request() once more on the first thread's state before
   -- the run (script_verify_request): start that thread one step back so
   -- that its first real request is the first path too.
   if id == 1 then n = #reqs - 1 end
end

function request()
   n = n % #reqs + 1
   return reqs[n]
end

function done(summary, latency, requests)
   local e = summary.errors
   local secs = summary.duration / 1e6
   io.write(string.format(
      "WRK requests=%d duration_us=%d rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d mean_us=%.1f " ..
      "err_connect=%d err_read=%d err_write=%d err_timeout=%d non2xx=%d\n",
      summary.requests, summary.duration, summary.requests / secs,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean,
      e.connect, e.read, e.write, e.timeout, e.status))
end
