-- sortie-pushd: the per-user connection limit, counted across every daemon and
-- worker on this Redis. A connection counts until it is closed or until its
-- daemon stops renewing it, so a crashed daemon's connections stop counting
-- after ttl.
--   ARGV[4] 'open', [5] user, [6] connection id, [7] limit, [8] ttl (s):
--   returns {1} (allowed) or {0, n} (n already open).
--   ARGV[4] 'refresh' or 'close', [5] ttl, then (user, connection id) pairs:
--   renews or gives back a batch of slots in one call (a worker with 10,000
--   streams renews them all every minute and gives them all back when it
--   stops; one call each made Redis answer late to everything else). A
--   renewal does not bring back a slot already given back or expired.
--   Returns {1}.
local op = ARGV[4]
local now = math.floor(now_ms() / 1000)
if op == 'close' then
  for i = 6, #ARGV - 1, 2 do
    redis.call('ZREM', P .. 'conns:' .. ARGV[i], ARGV[i + 1])
  end
  return {1}
end
if op == 'refresh' then
  local ttl = tonumber(ARGV[5])
  local keys = {}
  for i = 6, #ARGV - 1, 2 do
    local key = P .. 'conns:' .. ARGV[i]
    if not keys[key] then
      redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
      keys[key] = true
    end
    redis.call('ZADD', key, 'XX', now + ttl, ARGV[i + 1])
  end
  for key in pairs(keys) do
    redis.call('EXPIRE', key, ttl)
  end
  return {1}
end
local user, conn = ARGV[5], ARGV[6]
local limit, ttl = tonumber(ARGV[7]), tonumber(ARGV[8])
local key = P .. 'conns:' .. user
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
