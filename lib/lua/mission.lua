-- GET /api/missions/{id}: the briefing and, for the caller, fired + stats, read
-- in one consistent snapshot. ARGV[4] signal id, [5] caller's user id.
local sid, uid = ARGV[4], ARGV[5]
local now = now_ms()
local view = signal_view(sid, now)
if not view then
  return fail(404, 'not-found', 'no signal ' .. sid)
end
local tid = redis.call('HGET', P .. 'signal:' .. sid .. ':fired', uid)
local stats = user_stats(uid, now)
return {200, cjson.encode({signal = view, status = view.status, seconds_left = view.seconds_left,
  fire_count = view.fire_count, fired = tid ~= false, trade_id = tid or cjson.null,
  stats = stats, server_time = math.floor(now / 1000)})}
