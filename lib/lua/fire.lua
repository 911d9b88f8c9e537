-- POST /api/fire: one user fires one signal, atomically.
-- ARGV[4] signal id, [5] user id, [6] client timestamp (unix s), [7] allowed
-- clock skew (s), [8] fires per minute per user, [9] Idempotency-Key or '',
-- [10] idempotency TTL (s).
-- Order of checks: idempotent replay, timestamp, 404, 410, 409, 429, then the
-- stored data every write relies on (500 if unusable); then every write, the
-- three events, and the remembered answer.
local sid, uid = ARGV[4], ARGV[5]
local client_ts, window = tonumber(ARGV[6]), tonumber(ARGV[7])
local rate, idem, idem_ttl = tonumber(ARGV[8]), ARGV[9], ARGV[10]
local now = now_ms()

local idem_key
if idem ~= '' then
  idem_key = P .. 'idem:' .. uid .. ':' .. idem
  local prev = redis.call('HMGET', idem_key, 'signal_id', 'body')
  if prev[1] then
    if prev[1] ~= sid then
      return fail(422, 'idempotency-key-reused',
        'this Idempotency-Key was already used to fire signal ' .. prev[1],
        {field = 'Idempotency-Key'})
    end
    return {201, prev[2], 'replayed'}
  end
end

if math.abs(now / 1000 - client_ts) > window then
  return fail(422, 'invalid-field', 'timestamp must be within ' .. window ..
    ' s of the server clock (server time ' .. math.floor(now / 1000) .. ')',
    {field = 'timestamp', server_time = math.floor(now / 1000)})
end

local skey = P .. 'signal:' .. sid
local s = redis.call('HMGET', skey, 'status', 'expires_at', 'symbol', 'direction', 'entry',
  'fire_count')
if not s[1] then
  return fail(404, 'not-found', 'no signal ' .. sid)
end
if s[1] ~= 'ACTIVE' or now >= tonumber(s[2]) * 1000 then
  local st = s[1]
  if st == 'ACTIVE' then st = 'EXPIRED' end
  return fail(410, 'signal-not-active', 'signal ' .. sid .. ' is ' .. st, {signal_status = st})
end

local fkey = skey .. ':fired'
local prior = redis.call('HGET', fkey, uid)
if prior then
  return fail(409, 'duplicate-fire', 'user ' .. uid .. ' already fired signal ' .. sid,
    {trade_id = prior})
end

-- the rate window counted without pruning it: a refusal writes nothing
local rkey = P .. 'rate:' .. uid
-- numbers that go to Redis are formatted here as integers: Redis would
-- format a Lua number through a double (printf's %.17g), a cost per argument
local cut = string.format('%d', now - 60000)
local since = '(' .. cut
if redis.call('ZCOUNT', rkey, since, '+inf') >= rate then
  local oldest = redis.call('ZRANGEBYSCORE', rkey, since, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  local wait = math.ceil((tonumber(oldest[2]) + 60000 - now) / 1000)
  if wait < 1 then wait = 1 end
  return fail(429, 'rate-limited', 'at most ' .. rate .. ' fires a minute; retry in ' ..
    wait .. ' s', {retry_after = wait})
end

-- every refusal is behind us; now what a write below could fail on (see
-- common.lua), so that either all of it happens or none. The user's hash,
-- P/L days and rank are read once, for the checks and the stats both.
local ukey = P .. 'user:' .. uid
local day = string.format('%d', utc_day(now))
local fkey_min = P .. 'stats:fires:' .. string.format('%d', math.floor(now / 60000))
local u, bad = load_user(uid)
local rank, seq
if u then
  bad, rank = user_check(uid, u)
end
if not bad then
  seq = redis.call('GET', P .. 'seq:trade')
  bad = field_check(skey, 'fire_count', s[6], '1') or
        field_check(P .. 'seq:trade', 'value', seq, '1') or
        field_check(fkey_min, 'value', redis.call('GET', fkey_min), '1') or
        field_check(ukey, 'total_trades', u.total_trades, '1') or
        channel_check('mission:' .. sid, 'user:' .. uid)
end
if not bad and u.day == day then bad = field_check(ukey, 'day_trades', u.day_trades, '1') end
-- the next trade id, past any trade already there (a seq:trade restored from
-- an older backup must not overwrite a trade)
local n
if not bad then n = int_plus(seq, '1') end
while not bad and redis.call('EXISTS', P .. 'trade:trd_' .. n) == 1 do
  n = int_plus(n, '1')
  if n == nil then bad = P .. 'seq:trade would pass the 64-bit range' end
end
if bad then return fail_stored(bad) end

-- write: the counters as the checks computed them (each checked to stay an
-- int64 above), so the stats below need no second read
local count = int_plus(s[6], '1')
redis.call('HSET', skey, 'fire_count', count)
local tid = 'trd_' .. n
redis.call('SET', P .. 'seq:trade', n)
local now_s = string.format('%d', math.floor(now / 1000))
redis.call('HSET', fkey, uid, tid)
redis.call('ZREMRANGEBYSCORE', rkey, '-inf', cut)
redis.call('ZADD', rkey, string.format('%d', now), tid)
redis.call('PEXPIRE', rkey, '60000')
redis.call('HSET', P .. 'trade:' .. tid, 'id', tid, 'signal_id', sid, 'user_id', uid,
  'symbol', s[3], 'direction', s[4], 'entry', s[5], 'status', 'OPEN', 'opened_at', now_s)

if u.day == day then
  u.day_trades = int_plus(u.day_trades, '1')
else
  u.day, u.day_trades = day, '1'
end
u.total_trades = int_plus(u.total_trades, '1')
redis.call('HSET', ukey, 'day', u.day, 'day_trades', u.day_trades, 'total_trades', u.total_trades)
if rank == nil then
  redis.call('ZADD', P .. 'rank', 'NX', '0', uid)
  rank = redis.call('ZREVRANK', P .. 'rank', uid)
end
if redis.call('INCR', fkey_min) == 1 then redis.call('EXPIRE', fkey_min, '600') end

-- the answer and the events as JSON text by hand (see stats_json): the ids
-- came through the API's validation (letters, digits, '_', '.', '-'), the
-- counts are integer strings, and what the signal's hash holds goes through
-- cjson
local stats = stats_json(u, now, rank)
local ids = '"signal_id":"' .. sid .. '"'
local body = '{"trade_id":"' .. tid .. '",' .. ids .. ',"user_id":"' .. uid .. '","fire_count":' ..
  count .. ',"stats":' .. stats .. '}'
emit_all({
  {'mission:' .. sid, 'fire_count_update', '{' .. ids .. ',"count":' .. count .. '}'},
  {'user:' .. uid, 'trade_executed', '{"trade_id":"' .. tid .. '",' .. ids .. ',"symbol":' ..
    cjson.encode(s[3]) .. ',"direction":' .. cjson.encode(s[4]) .. ',"entry":' ..
    cjson.encode(s[5]) .. ',"opened_at":' .. now_s .. '}'},
  {'user:' .. uid, 'user_stats_update', '{"user_id":"' .. uid .. '","stats":' .. stats .. '}'},
})

if idem_key then
  redis.call('HSET', idem_key, 'signal_id', sid, 'body', body)
  redis.call('EXPIRE', idem_key, idem_ttl)
end
return {201, body}
