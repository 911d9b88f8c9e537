-- sortie-expire, one signal: marks it EXPIRED if it is ACTIVE and past
-- expires_at, and publishes mission_status_update. Running it twice, or from
-- two cron jobs at once, expires a signal once: the status check and the write
-- are one atomic step. ARGV[4] signal id. Returns {1} if it expired it, {2} if
-- it only took a stale entry (a signal no longer ACTIVE, or gone) off the
-- active set, {0} if the signal is not due yet (it stays in the set), {3, why}
-- if stored data would make a write fail: then nothing is written and the
-- signal stays in the set for a later run.
local sid = ARGV[4]
local skey = P .. 'signal:' .. sid
local s = redis.call('HMGET', skey, 'status', 'expires_at')
local now = now_ms()
if not s[1] or s[1] ~= 'ACTIVE' then
  redis.call('ZREM', P .. 'active', sid)
  return {2}
end
local exp = tonumber(s[2])
if exp == nil then
  return {3, skey .. ' expires_at is not a number'}
end
if now < exp * 1000 then
  return {0}
end
-- checks before the first write (see common.lua)
local bad = type_check(P .. 'active', 'zset') or type_check(P .. 'ended', 'zset') or
            channel_check('mission:' .. sid, 'admin')
if bad then return {3, bad} end
local now_s = math.floor(now / 1000)
redis.call('HSET', skey, 'status', 'EXPIRED', 'ended_at', now_s)
redis.call('ZREM', P .. 'active', sid)
redis.call('ZADD', P .. 'ended', now_s, sid)
emit('mission:' .. sid, 'mission_status_update',
  cjson.encode({signal_id = sid, status = 'EXPIRED', ended_at = now_s}))
syslog('info', 'expire', 'signal ' .. sid .. ' expired')
return {1}
