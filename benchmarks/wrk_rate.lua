-- wrk script: offer a fixed request rate (open loop) instead of as many as the server
-- takes. Usage: wrk -tT -cC -dD -s benchmarks/wrk_rate.lua URL -- RATE T
-- (RATE: requests per second over all T threads).
-- Each thread sends its share of RATE on a fixed schedule; a connection whose answer came
-- back waits for the next free slot and never sends early, so the latency wrk reports is
-- the server's at that load, not a queue built by the load tool.
local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } robson_timespec;
  int clock_gettime(int clock, robson_timespec *ts);
]]
local ts = ffi.new("robson_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local interval, slot

function init(args)
  local rate, threads = tonumber(args[1]), tonumber(args[2])
  assert(rate and threads, "usage: -- RATE THREADS")
  interval = 1000 * threads / rate
end

function delay()
  local now = now_ms()
  if slot == nil or slot < now - interval then
    slot = now -- behind schedule (start, or the server fell behind): resume from now
  end
  slot = slot + interval
  return math.max(0, math.floor(slot - now))
end
