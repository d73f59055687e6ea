-- post.lua - wrk script for bench/gw: POST /v1/payments with real signed
-- bodies. wrk cannot compute HMACs cheaply, so run.py pre-generates
-- BENCH_BODIES (default bodies.txt): one "<X-Signature>\t<JSON body>" per
-- line, each signed with a fresh t. Every wrk thread cycles through all of
-- them, starting at its own offset.
--
-- done() prints one machine-readable line:
--   RESULT requests=N duration_s=S rps=R p50_ms=.. p99_ms=.. max_ms=..
--          non2xx=N connect_err=N read_err=N write_err=N timeouts=N

local path = os.getenv("BENCH_BODIES") or "bodies.txt"
local threads = {}
local counter = 0

function setup(thread)
   thread:set("tid", counter)
   counter = counter + 1
   table.insert(threads, thread)
end

local reqs = {}
local n = 0
local i = 0

function init(args)
   local f = assert(io.open(path, "r"))
   for line in f:lines() do
      local tab = line:find("\t", 1, true)
      if tab then
         local sig = line:sub(1, tab - 1)
         local body = line:sub(tab + 1)
         n = n + 1
         reqs[n] = wrk.format("POST", "/v1/payments", {
            ["Content-Type"] = "application/json",
            ["X-Signature"] = sig,
         }, body)
      end
   end
   f:close()
   assert(n > 0, "no bodies in " .. path)
   i = (tid or 0) * 7919 % n
end

function request()
   i = i % n + 1
   return reqs[i]
end

function done(summary, latency, requests)
   local secs = summary.duration / 1e6
   local e = summary.errors
   io.write(string.format(
      "RESULT requests=%d duration_s=%.2f rps=%.1f p50_ms=%.3f p99_ms=%.3f " ..
      "max_ms=%.3f non2xx=%d connect_err=%d read_err=%d write_err=%d timeouts=%d\n",
      summary.requests, secs, summary.requests / secs,
      latency:percentile(50) / 1000, latency:percentile(99) / 1000,
      latency.max / 1000, e.status, e.connect, e.read, e.write, e.timeout))
end
