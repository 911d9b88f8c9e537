-- The events after a cursor in several channels, in id order: what
-- GET /api/events answers and what sortie-pushd sends a client that connects
-- or comes back. ARGV[4] at most this many events, [5] the cursor ('' when the
-- client has none), [6] history.max_age_s, [7] the reader counted against
-- [8] reads a minute ('' for sortie-pushd, which queues its reads itself),
-- [9...] the channels.
--
-- A cursor is an event id (ids are global: see next_id in common.lua). A
-- channel whose history no longer reaches back to the cursor is reported in
-- `resets` instead of its events; the client must refetch its state:
--   - the cursor is newer than any id the store ever gave (the store lost data);
--   - the cursor is older than history.max_age_s (history cannot reach it);
--   - the channel's first event after the cursor was preceded by one that has
--     been trimmed away (its `p`, the previous id, is after the cursor).
-- Returns {200, new cursor, {reset channels}, {id, channel, type, envelope,
-- id, channel, ...}}. The new cursor is the id of the last event returned, or,
-- when every event up to now was returned, the newest id of the store.
local limit, cur, max_age = tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6])
local reader, rate = ARGV[7], tonumber(ARGV[8])
if reader ~= '' then
  -- reads a minute per reader, in clock minutes; a refusal writes nothing
  local t = now_ms()
  local minute = math.floor(t / 60000)
  local rkey = P .. 'rate:read:' .. reader .. ':' .. minute
  if (tonumber(redis.call('GET', rkey)) or 0) >= rate then
    local wait = math.ceil(((minute + 1) * 60000 - t) / 1000)
    if wait < 1 then wait = 1 end
    return fail(429, 'rate-limited', 'at most ' .. rate .. ' event reads a minute; retry in ' ..
      wait .. ' s', {retry_after = wait})
  end
  if redis.call('INCR', rkey) == 1 then redis.call('EXPIRE', rkey, 120) end
end
local last = redis.call('GET', P .. 'lastid')
local fresh = not last
if fresh then
  -- nothing was ever published: "now" is the position, and every id to come
  -- will be after it (next_id never goes below lastid). Written only at the
  -- end, once every read that could fail is done.
  last = string.format('%d-0', now_ms())
end
if cur == '' then
  if fresh then redis.call('SET', P .. 'lastid', last) end
  return {200, last, {}, {}}
end
if cur == '0' then cur = '0-0' end

local resets, items = {}, {}
local all_reset = idcmp(cur, last) > 0
if not all_reset then
  local cms = tonumber(string.match(cur, '^(%d+)'))
  all_reset = cms < now_ms() - max_age * 1000
end

for i = 9, #ARGV do
  local ch = ARGV[i]
  if all_reset then
    resets[#resets + 1] = ch
  else
    -- one more than the limit tells whether this page is the end
    local entries = redis.call('XRANGE', P .. 'h:' .. ch, '(' .. cur, '+', 'COUNT', limit + 1)
    if #entries > 0 then
      local prev
      local f = entries[1][2]
      for j = 1, #f, 2 do
        if f[j] == 'p' then prev = f[j + 1] end
      end
      if prev and idcmp(prev, cur) > 0 then
        resets[#resets + 1] = ch
      else
        for _, e in ipairs(entries) do
          local t, d
          for j = 1, #e[2], 2 do
            if e[2][j] == 't' then t = e[2][j + 1] elseif e[2][j] == 'd' then d = e[2][j + 1] end
          end
          items[#items + 1] = {e[1], ch, t, d}
        end
      end
    end
  end
end

table.sort(items, function(a, b) return idcmp(a[1], b[1]) < 0 end)
local out, n = {}, math.min(limit, #items)
for k = 1, n do
  local e = items[k]
  out[#out + 1] = e[1]
  out[#out + 1] = e[2]
  out[#out + 1] = e[3]
  out[#out + 1] = envelope(e[1], e[2], e[3], e[4])
end
local cursor = last
if #items > limit then cursor = items[limit][1] end
if fresh then redis.call('SET', P .. 'lastid', last) end
return {200, cursor, resets, out}
