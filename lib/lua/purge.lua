-- sortie-expire, retention: drops what belongs to one signal that ended more
-- than ARGV[5] seconds ago (the signal, who fired it, its mission history).
-- Trades stay: they are the users' history. ARGV[4] signal id. Returns {1}
-- (dropped), {0} (not due), or {3, why} when stored data would make a write
-- fail (nothing is written; it stays for a later run).
local sid, keep = ARGV[4], tonumber(ARGV[5])
local ended = redis.call('ZSCORE', P .. 'ended', sid)
local now_s = math.floor(now_ms() / 1000)
if not ended or tonumber(ended) > now_s - keep then
  return {0}
end
local bad = type_check(P .. 'signals', 'zset')
if bad then return {3, bad} end
redis.call('DEL', P .. 'signal:' .. sid, P .. 'signal:' .. sid .. ':fired',
  P .. 'h:mission:' .. sid)
redis.call('ZREM', P .. 'ended', sid)
redis.call('ZREM', P .. 'signals', sid)
return {1}
