-- GET /api/signals: signals with their fire counts, for the admin page and
-- dashboards. ARGV[4] 'active' (by expiry, soonest first) or 'all' (newest
-- first), [5] at most this many (1..200).
local which, limit = ARGV[4], tonumber(ARGV[5])
local now = now_ms()
local ids
if which == 'active' then
  -- expires_at > now: a signal is EXPIRED from its expires_at on (signal_view)
  ids = redis.call('ZRANGEBYSCORE', P .. 'active', '(' .. math.floor(now / 1000), '+inf', 'LIMIT', 0, limit)
else
  ids = redis.call('ZREVRANGE', P .. 'signals', 0, limit - 1)
end
local out = {}
for _, sid in ipairs(ids) do
  local v = signal_view(sid, now)
  if v then out[#out + 1] = v end
end
-- cjson would write an empty table as {}: an empty list is written by hand
local body = '[]'
if #out > 0 then body = cjson.encode(out) end
return {200, '{"signals":' .. body .. ',"server_time":' .. math.floor(now / 1000) .. '}'}
