-- sortie-expire, one signal: marks it EXPIRED if it is ACTIVE and past
-- expires_at, and publishes mission_status_update. Running it twice, or from
-- two cron jobs at once, expires a signal once: the status check and the write
-- are one atomic step. ARGV[4] signal id. Returns {1} if it expired it, {2} if
-- it only took a stale entry (a signal no longer ACTIVE, or gone) off the
-- active set, {0} if the signal is not due yet (it stays in the set).
local sid = ARGV[4]
local skey = P .. 'signal:' .. sid
local s = redis.call('HMGET', skey, 'status', 'expires_at')
local now = now_ms()
if not s[1] or s[1] ~= 'ACTIVE' then
  redis.call('ZREM', P .. 'active', sid)
  return {2}
end
if now < tonumber(s[2]) * 1000 then
  return {0}
end
local now_s = math.floor(now / 1000)
redis.call('HSET', skey, 'status', 'EXPIRED', 'ended_at', now_s)
redis.call('ZREM', P .. 'active', sid)
redis.call('ZADD', P .. 'ended', now_s, sid)
emit('mission:' .. sid, 'mission_status_update',
  cjson.encode({signal_id = sid, status = 'EXPIRED', ended_at = now_s}))
syslog('info', 'expire', 'signal ' .. sid .. ' expired')
return {1}
