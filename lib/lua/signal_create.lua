-- POST /api/signals: creates a signal and announces it on `signals`.
-- ARGV[4] id or '' (then one is made), [5] symbol, [6] direction, [7] entry,
-- [8] stop_loss, [9] take_profit, [10] expires_at (unix s) or '', [11] ttl (s)
-- or '', [12] title, [13] briefing, [14] creator (the token's sub).
-- Field syntax is checked in C; what needs the server clock is checked here.
local sid = ARGV[4]
local now = now_ms()
local now_s = math.floor(now / 1000)
local expires
if ARGV[10] ~= '' then
  expires = tonumber(ARGV[10])
  if expires <= now_s then
    return fail(422, 'invalid-field', 'expires_at must be in the future (server time ' ..
      now_s .. ')', {field = 'expires_at', server_time = now_s})
  end
else
  expires = now_s + tonumber(ARGV[11])
end

-- checks before the first write (see common.lua): a free id, and keys and
-- channels that the writes below cannot fail on
local seq
if sid == '' then
  -- the next sig_<n> that is free (ids given by clients may have taken some)
  local cur = redis.call('GET', P .. 'seq:signal')
  seq = int_plus(cur, '1')
  while seq and redis.call('EXISTS', P .. 'signal:sig_' .. seq) == 1 do seq = int_plus(seq, '1') end
  if seq == nil then return fail_stored(P .. 'seq:signal is not an integer below 2^63 - 1') end
  sid = 'sig_' .. seq
elseif redis.call('EXISTS', P .. 'signal:' .. sid) == 1 then
  return fail(409, 'duplicate-signal', 'signal ' .. sid .. ' already exists', {field = 'id'})
end
local bad = type_check(P .. 'active', 'zset') or type_check(P .. 'signals', 'zset') or
            channel_check('signals', 'admin')
if bad then return fail_stored(bad) end

if seq then redis.call('SET', P .. 'seq:signal', seq) end
redis.call('HSET', P .. 'signal:' .. sid, 'id', sid, 'symbol', ARGV[5], 'direction', ARGV[6],
  'entry', ARGV[7], 'stop_loss', ARGV[8], 'take_profit', ARGV[9], 'expires_at', expires,
  'title', ARGV[12], 'briefing', ARGV[13], 'status', 'ACTIVE', 'created_at', now_s,
  'created_by', ARGV[14], 'fire_count', 0)
redis.call('ZADD', P .. 'active', expires, sid)
redis.call('ZADD', P .. 'signals', now_s, sid)

local view = signal_view(sid, now)
local body = cjson.encode(view)
emit('signals', 'signal_created', body)
syslog('info', 'api', 'signal ' .. sid .. ' (' .. ARGV[5] .. ' ' .. ARGV[6] .. ') created by ' ..
  ARGV[14])
return {201, body}
