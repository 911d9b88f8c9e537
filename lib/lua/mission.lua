-- GET /api/missions/{id}: the briefing and, for the caller, fired + stats, read
-- in one consistent snapshot. ARGV[4] signal id, [5] caller's user id, [6] '1'
-- to add `watching` (push.presence, presence.lua).
local sid, uid = ARGV[4], ARGV[5]
local now = now_ms()
local view = signal_view(sid, now)
if not view then
  return fail(404, 'not-found', 'no signal ' .. sid)
end
local tid = redis.call('HGET', P .. 'signal:' .. sid .. ':fired', uid)
local stats = user_stats(uid, now)
-- where this snapshot stands in the event stream: a client that follows the
-- mission from this cursor misses nothing and counts nothing twice
local cursor = redis.call('GET', P .. 'lastid')
if not cursor then
  redis.call('SET', P .. 'lastid', string.format('%d-0', now), 'NX')
  cursor = redis.call('GET', P .. 'lastid')
end
local m = {signal = view, status = view.status,
  seconds_left = view.seconds_left, fire_count = view.fire_count, fired = tid ~= false,
  trade_id = tid or cjson.null, user_id = uid, server_time = math.floor(now / 1000),
  cursor = cursor}
if ARGV[6] == '1' then
  m.watching = redis.call('ZCOUNT', P .. 'pres:' .. sid, '(' .. now, '+inf')
end
return {200, with_member(cjson.encode(m), 'stats', stats)}
