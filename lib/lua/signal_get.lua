-- GET /api/signals/{id} and the mission page: the public view of one signal.
-- ARGV[4] signal id, [5] '1' to add `watching` (push.presence, presence.lua).
local now = now_ms()
local view = signal_view(ARGV[4], now)
if not view then
  return fail(404, 'not-found', 'no signal ' .. ARGV[4])
end
if ARGV[5] == '1' then
  -- the users some holder holds now (expired holdings not yet dropped do not count)
  view.watching = redis.call('ZCOUNT', P .. 'pres:' .. ARGV[4], '(' .. now, '+inf')
end
return {200, cjson.encode(view)}
