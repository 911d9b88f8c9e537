#!lua
-- Helpers prepended to every Sortie script (the build joins common.lua + script).
-- The `#!lua` line makes Redis 7 refuse a write script up front under OOM, so a
-- script either runs whole or not at all: nothing is ever half-written.
--
-- Every script takes the same first arguments:
--   ARGV[1] key prefix ("sortie:"), ARGV[2] history length per channel,
--   ARGV[3] starting equity in units (10^-8).
-- and returns {status, json} (plus script-specific extras). For status >= 400
-- the json is {"slug","detail", extra members...}, made into problem+json in C.
--
-- Money: held in Redis as integer strings of units (1 unit = 10^-8) and changed
-- only by Redis's own int64 HINCRBY, or by the exact string arithmetic below.
-- Lua numbers are doubles: they carry counts, times and ratios, never money.

local P = ARGV[1]
local HISTORY_MAXLEN = ARGV[2]
local EQUITY_START = ARGV[3]

-- The Redis clock in ms, read once per script: a script runs atomically, so
-- one reading stands for all of it.
local clock_ms
local function now_ms()
  if clock_ms == nil then
    local t = redis.call('TIME')
    clock_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return clock_ms
end

local function fail(status, slug, detail, extra)
  local t = extra or {}
  t.slug = slug
  t.detail = detail
  return {status, cjson.encode(t)}
end

-- Exact integer-string arithmetic for money units (|v| < 9.2e18). A value is
-- split into hi * 1e9 + lo with hi and lo of the same sign; each part stays far
-- below 2^53, so every operation on the parts is exact in a double.
local B = 1000000000
local function isplit(s)
  local neg = string.sub(s, 1, 1) == '-'
  if neg then s = string.sub(s, 2) end
  local n = #s
  local lo = tonumber(string.sub(s, math.max(1, n - 8))) or 0
  local hi = 0
  if n > 9 then hi = tonumber(string.sub(s, 1, n - 9)) end
  if neg then return -hi, -lo end
  return hi, lo
end

local function ijoin(hi, lo)
  hi = hi + math.floor(lo / B)
  lo = lo % B -- now 0 <= lo < B
  if hi < 0 and lo > 0 then
    hi = hi + 1
    lo = lo - B
  end
  if hi == 0 then return string.format('%d', lo) end
  local sign = ''
  if hi < 0 then
    sign = '-'
    hi = -hi
    lo = -lo
  end
  return sign .. string.format('%d%09d', hi, lo)
end

local function iadd(a, b)
  local ah, al = isplit(a)
  local bh, bl = isplit(b)
  return ijoin(ah + bh, al + bl)
end

local function isub(a, b)
  local ah, al = isplit(a)
  local bh, bl = isplit(b)
  return ijoin(ah - bh, al - bl)
end

local function icmp(a, b)
  local d = isub(a, b)
  if d == '0' then return 0 end
  if string.sub(d, 1, 1) == '-' then return -1 end
  return 1
end

-- units (10^-8) -> decimal text with at least two decimals: "1234500000" -> "12.345"
local function money(u)
  local neg = string.sub(u, 1, 1) == '-'
  if neg then u = string.sub(u, 2) end
  while #u < 9 do u = '0' .. u end
  local int = string.sub(u, 1, #u - 8)
  local frac = string.gsub(string.sub(u, -8), '0+$', '')
  while #frac < 2 do frac = frac .. '0' end
  local s = int .. '.' .. frac
  if neg and s ~= '0.00' then s = '-' .. s end
  return s
end

-- Stream ids "ms-seq" compared as numbers (ms < 2^53, seq small).
local function idcmp(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  am, as, bm, bs = tonumber(am or 0), tonumber(as or 0), tonumber(bm or 0), tonumber(bs or 0)
  if am ~= bm then
    if am < bm then return -1 end
    return 1
  end
  if as == bs then return 0 end
  if as < bs then return -1 end
  return 1
end

-- The envelope, byte for byte the same as pushd and /api/events build it from
-- history (lib/event.c): field order id, channel, type, ts, data.
local function envelope(id, channel, etype, data_json)
  local ms = string.match(id, '^(%d+)')
  return '{"id":"' .. id .. '","channel":"' .. channel .. '","type":"' .. etype ..
         '","ts":' .. ms .. ',"data":' .. data_json .. '}'
end

-- The next event id. Ids are global, not per channel: "<ms>-<seq>" from the
-- Redis clock, strictly increasing across every channel (P..'lastid' holds the
-- last one). So the order of ids is the order of publishing, and one id is a
-- position in every channel at once: a client's cursor is simply the id of the
-- last event it got, whatever channels it reads. `prev` is the channel's own
-- last id, which the new id must also pass (it always does unless lastid was
-- lost). lastid is read once per script and written at every event.
local last_ms, last_seq
local function next_id(prev)
  local ms = now_ms()
  if last_ms == nil then
    last_ms, last_seq = 0, -1
    local last = redis.call('GET', P .. 'lastid')
    if last then
      local a, b = string.match(last, '^(%d+)-(%d+)$')
      last_ms, last_seq = tonumber(a), tonumber(b)
    end
  end
  local pa, pb = string.match(prev, '^(%d+)-(%d+)$')
  pa, pb = tonumber(pa), tonumber(pb)
  if pa > last_ms or (pa == last_ms and pb > last_seq) then last_ms, last_seq = pa, pb end
  if ms > last_ms then
    last_ms, last_seq = ms, 0
  else
    last_seq = last_seq + 1
  end
  local id = string.format('%d-%d', last_ms, last_seq)
  redis.call('SET', P .. 'lastid', id)
  return id
end

-- Appends an event to the channel's capped history and publishes it. Each entry
-- records the id of the entry before it in its channel (`p`), so a reader
-- resuming from a cursor can tell "nothing was trimmed after you" from a gap.
local last_in = {} -- channel -> its newest id, once this script knows it
local function emit(channel, etype, data_json)
  local key = P .. 'h:' .. channel
  local prev = last_in[channel]
  if prev == nil then
    local last = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)
    prev = '0-0'
    if last[1] then prev = last[1][1] end
  end
  local id = next_id(prev)
  redis.call('XADD', key, 'MAXLEN', '~', HISTORY_MAXLEN, id, 't', etype, 'd', data_json, 'p', prev)
  last_in[channel] = id
  redis.call('PUBLISH', P .. 'ch:' .. channel, envelope(id, channel, etype, data_json))
  return id
end

-- A line on the admin page's system log.
local function syslog(level, source, message)
  emit('admin', 'system_log', cjson.encode({level = level, source = source, message = message}))
end

local function utc_day(ms)
  return math.floor(ms / 86400000)
end

-- A user's stats as the API shows them.
local function user_stats(uid, now)
  local ukey = P .. 'user:' .. uid
  local h = redis.call('HMGET', ukey, 'day', 'day_trades', 'total_trades', 'wins', 'losses',
                       'total_pnl')
  local day = utc_day(now)
  local trades_today = 0
  if h[1] == tostring(day) then trades_today = tonumber(h[2]) end
  local days = {}
  for i = 0, 6 do days[#days + 1] = tostring(day - i) end
  local buckets = redis.call('HMGET', ukey .. ':pnl_days', unpack(days))
  local week = '0'
  for i = 1, 7 do
    if buckets[i] then week = iadd(week, buckets[i]) end
  end
  local wins, losses = tonumber(h[4] or '0'), tonumber(h[5] or '0')
  local win_rate = 0
  if wins + losses > 0 then win_rate = math.floor(wins * 1000 / (wins + losses) + 0.5) / 10 end
  local total = h[6] or '0'
  local rank = redis.call('ZREVRANK', P .. 'rank', uid)
  if rank then rank = rank + 1 else rank = cjson.null end
  local stats = {
    trades_today = trades_today,
    last_7d_pnl = money(week),
    win_rate = win_rate,
    total_trades = tonumber(h[3] or '0'),
    wins = wins,
    losses = losses,
    total_pnl = money(total),
    equity = money(iadd(EQUITY_START, total)),
    rank = rank,
  }
  return stats
end

-- The public view of a signal, or nil. A signal past expires_at shows as
-- EXPIRED even before the cron job has marked it.
local function signal_view(sid, now)
  local f = redis.call('HGETALL', P .. 'signal:' .. sid)
  if #f == 0 then return nil end
  local s = {}
  for i = 1, #f, 2 do s[f[i]] = f[i + 1] end
  local exp = tonumber(s.expires_at)
  local status = s.status
  if status == 'ACTIVE' and now >= exp * 1000 then status = 'EXPIRED' end
  local left = math.floor(exp - now / 1000)
  if left < 0 or status ~= 'ACTIVE' then left = 0 end
  return {
    id = s.id, symbol = s.symbol, direction = s.direction, entry = s.entry,
    stop_loss = s.stop_loss, take_profit = s.take_profit, title = s.title or '',
    briefing = s.briefing or '', status = status, created_at = tonumber(s.created_at),
    expires_at = exp, fire_count = tonumber(s.fire_count or '0'), seconds_left = left,
  }
end
