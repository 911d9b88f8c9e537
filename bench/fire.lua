-- wrk script for POST /api/fire: every request is a different (user, signal)
-- pair, so each one does the whole fire (no 409 short cut).
-- Environment: BENCH_TOKENS (a file, one user token per line), BENCH_NSIG
-- (number of signals), BENCH_SIGPREFIX (signal ids are PREFIX0..PREFIXn-1),
-- BENCH_PATH (default /api/fire; the Flask peer is behind another path).
local tokens = {}
for line in io.lines(os.getenv("BENCH_TOKENS")) do tokens[#tokens + 1] = line end
local nsig = tonumber(os.getenv("BENCH_NSIG"))
local prefix = os.getenv("BENCH_SIGPREFIX")
local path = os.getenv("BENCH_PATH") or "/api/fire"
local threads = 0

function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end

local counter = 0

function request()
  counter = counter + 1
  local idx = counter * tonumber(os.getenv("BENCH_THREADS") or "2") + tid
  local u = idx % #tokens + 1
  local s = math.floor(idx / #tokens) % nsig
  local body = string.format('{"signal_id":"%s%d","timestamp":%d}', prefix, s, os.time())
  return wrk.format("POST", path, {
    ["Authorization"] = "Bearer " .. tokens[u],
    ["Content-Type"] = "application/json",
  }, body)
end
