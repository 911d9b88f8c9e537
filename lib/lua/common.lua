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
-- Nothing half-written: Redis keeps the writes a script made before a
-- redis.call that fails (wrong type, an integer out of range...), so every
-- script checks, before its first write, everything that could refuse *or fail*
-- later: the helpers under "Checks before the first write" below. A refusal is
-- a status >= 400; stored data a script cannot use is a 500 naming the key.
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
  -- both within 15 characters: |a|, |b| < 10^15, so the sum is below 2^53 and
  -- exact in a double (the common case, and five times cheaper)
  if #a <= 15 and #b <= 15 then return string.format('%d', tonumber(a) + tonumber(b)) end
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
-- last event it got, whatever channels it reads. `floor` is an id the new one
-- must also pass: the channel's newest entry (always below lastid unless
-- lastid was lost), or its stream's top (see emit_all). lastid is read once
-- per script (load_lastid) and written once, after the script's last event.
local last_ms, last_seq
local function load_lastid()
  if last_ms ~= nil then return nil end
  local last = redis.call('GET', P .. 'lastid')
  last_ms, last_seq = 0, -1
  if last then
    local a, b = string.match(last, '^(%d+)-(%d+)$')
    if a == nil then
      last_ms = nil
      return P .. 'lastid is not an event id'
    end
    last_ms, last_seq = tonumber(a), tonumber(b)
  end
  return nil
end

local function next_id(floor)
  local ms = now_ms()
  local bad = load_lastid()
  if bad then error(bad) end
  local pa, pb = string.match(floor, '^(%d+)-(%d+)$')
  pa, pb = tonumber(pa), tonumber(pb)
  if pa > last_ms or (pa == last_ms and pb > last_seq) then last_ms, last_seq = pa, pb end
  if ms > last_ms then
    last_ms, last_seq = ms, 0
  else
    last_seq = last_seq + 1
  end
  return string.format('%d-%d', last_ms, last_seq)
end

-- The type of a key as TYPE names it ('none' when absent).
local function key_type(key)
  local t = redis.call('TYPE', key)
  if type(t) == 'table' then t = t.ok end
  return t
end

-- A channel's history, read once per script: `last_in` its newest entry's id
-- (the `p` of the next one; '0-0' when there is none). One XREVRANGE of one
-- entry: XINFO STREAM, which also gives the stream's top, costs twice as much
-- and the top is needed only in the rare case emit_all handles apart.
-- Returns nil, or why the channel cannot take an event (for a 500).
local last_in = {}
local function load_channel(channel)
  if last_in[channel] ~= nil then return nil end
  local bad = load_lastid()
  if bad then return bad end
  local key = P .. 'h:' .. channel
  local r = redis.pcall('XREVRANGE', key, '+', '-', 'COUNT', '1')
  if r.err then return key .. ' is a ' .. key_type(key) .. ', not a stream' end
  if r[1] then last_in[channel] = r[1][1] else last_in[channel] = '0-0' end
  return nil
end

-- Appends events ({channel, type, data_json} each, in order) to their
-- channels' capped histories and publishes them; returns their ids. Each
-- entry records the id of the entry before it in its channel (`p`), so a
-- reader resuming from a cursor can tell "nothing was trimmed after you" from
-- a gap. Cannot fail once channel_check() accepted the channels (a script that
-- emits on a channel it has not checked gets an error before its write here):
-- an XADD refused because the stream's top is above its newest entry (that
-- entry was deleted) wrote nothing, and is made again past the top. lastid is
-- written once, for the last event.
local function emit_all(events)
  local ids = {}
  for i = 1, #events do
    local channel, etype, data_json = events[i][1], events[i][2], events[i][3]
    local bad = load_channel(channel)
    if bad then error(bad) end
    local key = P .. 'h:' .. channel
    local prev = last_in[channel]
    local id = next_id(prev)
    local r = redis.pcall('XADD', key, 'MAXLEN', '~', HISTORY_MAXLEN, id, 't', etype,
      'd', data_json, 'p', prev)
    if type(r) == 'table' and r.err then
      local info = redis.call('XINFO', 'STREAM', key)
      local top = '0-0'
      for k = 1, #info, 2 do
        if info[k] == 'last-generated-id' then top = info[k + 1] end
      end
      id = next_id(top)
      redis.call('XADD', key, 'MAXLEN', '~', HISTORY_MAXLEN, id, 't', etype, 'd', data_json,
        'p', prev)
    end
    last_in[channel] = id
    redis.call('PUBLISH', P .. 'ch:' .. channel, envelope(id, channel, etype, data_json))
    ids[i] = id
  end
  if #ids > 0 then redis.call('SET', P .. 'lastid', ids[#ids]) end
  return ids
end

-- One event (see emit_all); returns its id.
local function emit(channel, etype, data_json)
  return emit_all({{channel, etype, data_json}})[1]
end

-- A line on the admin page's system log.
local function syslog(level, source, message)
  emit('admin', 'system_log', cjson.encode({level = level, source = source, message = message}))
end

local function utc_day(ms)
  return math.floor(ms / 86400000)
end

-- An integer read from Redis (absent: 0) as JSON text. The counters are
-- written only as checked integers; anything else must not make invalid JSON.
local function jint(v)
  if not v then return '0' end
  if v == '0' or string.match(v, '^%-?[1-9]%d*$') then return v end
  error('not an integer where one is stored: ' .. v)
end

-- A user's stats as the API shows them, as JSON text, from the user's hash
-- fields `u` (as load_user gives them), the P/L day buckets and the rank (or
-- nil). Written by hand rather than with cjson: every number here is an
-- integer string already, and cjson would format each through a double
-- (printf's %.14g), a large share of a fire's time in Redis.
local function stats_json(u, now, rank)
  local day = utc_day(now)
  local trades_today = '0'
  if u.day == string.format('%d', day) then trades_today = jint(u.day_trades) end
  local week = '0'
  for i = 0, 6 do
    local b = u.pnl_days[string.format('%d', day - i)]
    if b then week = iadd(week, b) end
  end
  local wins, losses = jint(u.wins), jint(u.losses)
  local w, l = tonumber(wins), tonumber(losses)
  local win_rate = '0'
  if w + l > 0 then
    -- tenths of a percent, rounded; shown as 66.7, or 50 for a whole number
    local t = math.floor(w * 1000 / (w + l) + 0.5)
    win_rate = string.format('%d', math.floor(t / 10))
    if t % 10 ~= 0 then win_rate = win_rate .. '.' .. string.format('%d', t % 10) end
  end
  local total = u.total_pnl or '0'
  local r = 'null'
  if rank then r = string.format('%d', rank + 1) end
  return '{"trades_today":' .. trades_today .. ',"last_7d_pnl":"' .. money(week) ..
    '","win_rate":' .. win_rate .. ',"total_trades":' .. jint(u.total_trades) ..
    ',"wins":' .. wins .. ',"losses":' .. losses .. ',"total_pnl":"' .. money(total) ..
    '","equity":"' .. money(iadd(EQUITY_START, total)) .. '","rank":' .. r .. '}'
end

-- A JSON object's text with one more member whose value is JSON text already.
local function with_member(obj, name, raw)
  local sep = ','
  if obj == '{}' then sep = '' end
  return string.sub(obj, 1, -2) .. sep .. '"' .. name .. '":' .. raw .. '}'
end

-- The fields of a user's hash that the stats and the checks read, and its
-- P/L day buckets: one read of each, typed, so that a key of another type
-- fails here, before any write. Returns the fields (false when absent, and
-- pnl_days, a table), or nil and why they cannot be read (for a 500).
local USER_FIELDS = {'day', 'day_trades', 'total_trades', 'wins', 'losses', 'closed_trades',
                     'total_pnl', 'peak'}
local function load_user(uid)
  local ukey = P .. 'user:' .. uid
  local h = redis.pcall('HMGET', ukey, unpack(USER_FIELDS))
  if h.err then return nil, ukey .. ' is a ' .. key_type(ukey) .. ', not a hash' end
  local d = redis.pcall('HGETALL', ukey .. ':pnl_days')
  if d.err then
    return nil, ukey .. ':pnl_days is a ' .. key_type(ukey .. ':pnl_days') .. ', not a hash'
  end
  local u = {pnl_days = {}, pnl_list = d}
  for i = 1, #USER_FIELDS do u[USER_FIELDS[i]] = h[i] end
  for i = 1, #d, 2 do u.pnl_days[d[i]] = d[i + 1] end
  return u
end

-- A user's rank (0-based, highest P/L first) or nil; and why the rank set
-- cannot be used, if it cannot.
local function load_rank(uid)
  local r = redis.pcall('ZREVRANK', P .. 'rank', uid)
  if type(r) == 'table' and r.err then
    return nil, P .. 'rank is a ' .. key_type(P .. 'rank') .. ', not a zset'
  end
  if r == false then r = nil end
  return r
end

-- A user's stats as the API shows them, read now, as JSON text.
local function user_stats(uid, now)
  local u, bad = load_user(uid)
  if not u then error(bad) end
  local rank, rbad = load_rank(uid)
  if rbad then error(rbad) end
  return stats_json(u, now, rank)
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

-- ---- Checks before the first write ----
-- Each returns nil when the later writes cannot fail, or why they would (a
-- script answers that reason as a 500, or as a refusal of its own, and writes
-- nothing).

local INT64_MAX, INT64_MIN = '9223372036854775807', '-9223372036854775808'

-- s is an integer as INCR/HINCRBY read one: '0', or digits without a leading
-- zero after an optional '-', within int64.
local function is_int64(s)
  if type(s) ~= 'string' or #s > 20 then return false end
  if s ~= '0' and not string.match(s, '^%-?[1-9]%d*$') then return false end
  if #s <= 18 then return true end -- at most 18 digits: far inside int64
  return icmp(s, INT64_MAX) <= 0 and icmp(s, INT64_MIN) >= 0
end

-- cur (an integer string, or nil/false for an absent one: 0) plus the integer
-- string delta, if both and the sum are int64 (what HINCRBY/INCR would store);
-- nil otherwise.
local function int_plus(cur, delta)
  cur = cur or '0'
  if not is_int64(cur) or not is_int64(delta) then return nil end
  -- both within 15 characters: the sum is far inside int64 (the common case)
  if #cur <= 15 and #delta <= 15 then return iadd(cur, delta) end
  local s = iadd(cur, delta)
  if not is_int64(s) then return nil end
  return s
end

-- key is absent or of type want ('hash', 'zset', 'string', 'stream').
local function type_check(key, want)
  local t = key_type(key)
  if t == 'none' or t == want then return nil end
  return key .. ' is a ' .. t .. ', not a ' .. want
end

-- every channel a script will emit on can take an event
local function channel_check(...)
  for _, ch in ipairs({...}) do
    local bad = load_channel(ch)
    if bad then return bad end
  end
  return nil
end

-- One field of a hash must be absent or an int64 (and stay one after +delta).
local function field_check(key, field, value, delta)
  if value and not is_int64(value) then
    return key .. ' ' .. field .. ' is not an integer'
  end
  if delta and int_plus(value, delta) == nil then
    return key .. ' ' .. field .. ' would pass the 64-bit range'
  end
  return nil
end

-- What user_stats and the stat writes of fire.lua and trade_close.lua read as
-- numbers: the user hash's counters and total, its equity peak, the P/L day
-- buckets, and the rank set's type. `u` is load_user's answer if the script
-- has it (else it is read here); returns why not, or nil and the rank.
local function user_check(uid, u)
  local ukey = P .. 'user:' .. uid
  local bad
  if u == nil then
    u, bad = load_user(uid)
    if not u then return bad end
  end
  local rank, rbad = load_rank(uid)
  if rbad then return rbad end
  local f = {'day_trades', 'total_trades', 'wins', 'losses', 'closed_trades', 'total_pnl'}
  for i = 1, #f do
    bad = field_check(ukey, f[i], u[f[i]])
    if bad then return bad end
  end
  -- the peak is equity (start + total), which may pass int64: only exactness matters
  local peak = u.peak
  if peak and (not string.match(peak, '^%-?%d+$') or #peak > 21) then
    return ukey .. ' peak is not an integer'
  end
  local days = u.pnl_list
  for i = 1, #days, 2 do
    bad = field_check(ukey .. ':pnl_days', days[i], days[i + 1])
    if bad then return bad end
  end
  return nil, rank
end

-- The answer for stored data a script cannot use: nothing was written.
local function fail_stored(reason)
  return fail(500, 'internal', 'nothing was changed: stored data is not usable (' .. reason .. ')')
end
