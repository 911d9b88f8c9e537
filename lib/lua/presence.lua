-- sortie-pushd: presence, the distinct users watching each mission, counted
-- across every worker and daemon on this Redis (docs/PUSHD.md, "Presence").
--
-- A worker (a "holder", named host.pid) tells Redis which users it holds on
-- which mission; each holding expires unless renewed, so a killed worker's
-- users stop counting by themselves. Per mission {sid}:
--   pres:{sid}    zset: user -> the ms until which some holder holds it (the
--                 latest of its holders'); the count is its members
--   pres:{sid}:h  hash: user -> "holder expiry_ms holder expiry_ms ..."
-- and for every mission:
--   pres:pub      hash: sid -> "count at_ms": the count last published and
--                 the ms of that presence_update's id
--   pres:due      zset: sid -> the ms at which it must be looked at again
--                 (a holding expires, or a held-back change may go out)
--   pres:top      zset: sid -> its count (for admin_stats's top_watched)
--
-- ARGV[4] holder, [5] ttl (ms), [6] debounce (ms), [7] how many due missions
-- this call looks at, then (sid, user, '1' held | '0' let go) triples.
-- Returns {1} or {1, why}: a mission whose keys cannot be used (a wrong type)
-- is left untouched, and named.
--
-- Debounce: a mission's presence_update goes out when its count differs from
-- the last published one and the last one's id is at least `debounce` ms old;
-- otherwise it is due then, and whatever the count is at that time goes out
-- (nothing when it came back to the published value).
local holder, ttl, debounce = ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6])
local due_max = tonumber(ARGV[7])
local now = now_ms()
local PUB, DUE, TOP = P .. 'pres:pub', P .. 'pres:due', P .. 'pres:top'

local bad = type_check(PUB, 'hash') or type_check(DUE, 'zset') or type_check(TOP, 'zset')
if bad then return {1, bad} end

local why = nil

-- a mission's keys are usable: nil, or why not
local function mission_check(sid)
  local z = P .. 'pres:' .. sid
  return type_check(z, 'zset') or type_check(z .. ':h', 'hash')
end

-- holders' string -> {holder = expiry}, the live ones only
local function holders(s)
  local t = {}
  if s then
    for h, e in string.gmatch(s, '(%S+) (%d+)') do
      e = tonumber(e)
      if e > now then t[h] = e end
    end
  end
  return t
end

-- Sets (expiry) or removes (nil) this holder's holding of user on sid.
local function hold(sid, user, expiry)
  local z = P .. 'pres:' .. sid
  local h = z .. ':h'
  local t = holders(redis.call('HGET', h, user))
  t[holder] = expiry
  local parts, top = {}, nil
  for k, e in pairs(t) do
    parts[#parts + 1] = k .. ' ' .. string.format('%d', e)
    if top == nil or e > top then top = e end
  end
  if top == nil then
    redis.call('HDEL', h, user)
    redis.call('ZREM', z, user)
  else
    redis.call('HSET', h, user, table.concat(parts, ' '))
    redis.call('ZADD', z, top, user)
  end
end

-- Counts sid again (its expired holdings dropped), publishes the count if
-- the debounce allows and it changed, and says when to look again.
local function settle(sid)
  local z = P .. 'pres:' .. sid
  local gone = redis.call('ZRANGEBYSCORE', z, '-inf', now)
  for i = 1, #gone do redis.call('HDEL', z .. ':h', gone[i]) end
  if #gone > 0 then redis.call('ZREMRANGEBYSCORE', z, '-inf', now) end
  local n = redis.call('ZCARD', z)
  local pub, at = 0, 0
  local pv = redis.call('HGET', PUB, sid)
  if pv then
    local a, b = string.match(pv, '^(%d+) (%d+)$')
    pub, at = tonumber(a or 0), tonumber(b or 0)
  end
  local next_at = nil
  if n ~= pub then
    if now < at + debounce then
      next_at = at + debounce
    elseif redis.call('EXISTS', P .. 'signal:' .. sid) == 1 and
        channel_check('mission:' .. sid) == nil then
      local id = emit('mission:' .. sid, 'presence_update',
        '{"signal_id":' .. cjson.encode(sid) .. ',"watching":' .. n .. '}')
      pub, at = n, tonumber(string.match(id, '^(%d+)'))
      redis.call('HSET', PUB, sid, string.format('%d %d', pub, at))
      next_at = at + debounce -- to drop the record once it is 0 and old
    end
    -- (no signal, or a history that cannot take an event: counted, not published)
  end
  if n == 0 and pub == 0 and next_at == nil and pv then
    if now >= at + debounce then
      redis.call('HDEL', PUB, sid)
    else
      next_at = at + debounce
    end
  end
  if n > 0 then
    redis.call('ZADD', TOP, n, sid)
    local first = redis.call('ZRANGE', z, 0, 0, 'WITHSCORES')
    local e = tonumber(first[2])
    if next_at == nil or e < next_at then next_at = e end
  else
    redis.call('ZREM', TOP, sid)
  end
  if next_at then
    redis.call('ZADD', DUE, next_at, sid)
  else
    redis.call('ZREM', DUE, sid)
  end
end

-- the holdings this call carries, grouped by mission in order
local order, recs = {}, {}
for i = 8, #ARGV - 2, 3 do
  local sid = ARGV[i]
  if not recs[sid] then
    recs[sid] = {}
    order[#order + 1] = sid
  end
  local r = recs[sid]
  r[#r + 1] = {ARGV[i + 1], ARGV[i + 2] == '1'}
end
local done = {}
for _, sid in ipairs(order) do
  local b = mission_check(sid)
  if b then
    why = b
  else
    for _, r in ipairs(recs[sid]) do
      if r[2] then hold(sid, r[1], now + ttl) else hold(sid, r[1], nil) end
    end
    settle(sid)
  end
  done[sid] = true
end

-- missions whose time came: an expiry, a held-back change
local due = redis.call('ZRANGEBYSCORE', DUE, '-inf', now, 'LIMIT', 0, due_max)
for _, sid in ipairs(due) do
  if not done[sid] then
    local b = mission_check(sid)
    if b then
      why = b
      redis.call('ZREM', DUE, sid)
    else
      settle(sid)
    end
  end
end
if why then return {1, why} end
return {1}
