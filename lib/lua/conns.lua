-- sortie-pushd: the per-user connection limit, counted across every daemon and
-- worker on this Redis. ARGV[4] 'open', 'refresh' or 'close', [5] user,
-- [6] connection id, [7] limit, [8] ttl (s). A connection counts until it is
-- closed or until its daemon stops refreshing it, so a crashed daemon's
-- connections stop counting after ttl. Returns {1} (allowed/done) or {0, n}.
local op, user, conn = ARGV[4], ARGV[5], ARGV[6]
local limit, ttl = tonumber(ARGV[7]), tonumber(ARGV[8])
local key = P .. 'conns:' .. user
if op == 'close' then
  redis.call('ZREM', key, conn)
  return {1}
end
local now = math.floor(now_ms() / 1000)
if op == 'refresh' then
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  redis.call('ZADD', key, 'XX', now + ttl, conn)
  redis.call('EXPIRE', key, ttl)
  return {1}
end
-- counted among the live ones (score past now) without pruning first, so a
-- refusal writes nothing
local mine = redis.call('ZSCORE', key, conn)
if not mine or tonumber(mine) <= now then
  local n = redis.call('ZCOUNT', key, '(' .. now, '+inf')
  if n >= limit then
    return {0, n}
  end
end
redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
redis.call('ZADD', key, now + ttl, conn)
redis.call('EXPIRE', key, ttl)
return {1}
