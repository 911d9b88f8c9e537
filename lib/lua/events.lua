-- GET /api/events: the events after a position in several channels, merged in
-- id order, at most ARGV[4] of them. Then pairs: ARGV[5] channel, ARGV[6] its
-- position ('' when the client has none), and so on.
-- Returns {200, '[envelope,...]', channel, new position, ...}. A channel whose
-- position is older than its history (or unknown to it) yields a
-- {"type":"reset","channel":...} item and jumps to the newest position.
local limit = tonumber(ARGV[4])
local items, pos = {}, {}
local out = {200, ''}

local function last_id(key)
  local last = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)
  if last[1] then return last[1][1] end
  if redis.call('EXISTS', key) == 1 then
    local info = redis.call('XINFO', 'STREAM', key)
    for i = 1, #info, 2 do
      if info[i] == 'last-generated-id' then return info[i + 1] end
    end
  end
  return '0-0'
end

local resets = {}
for i = 5, #ARGV, 2 do
  local ch, cur = ARGV[i], ARGV[i + 1]
  local key = P .. 'h:' .. ch
  if cur == '' then
    pos[ch] = last_id(key)
  else
    local entries = redis.call('XRANGE', key, '(' .. cur, '+', 'COUNT', limit)
    if #entries > 0 then
      local first = entries[1][2]
      local prev
      for j = 1, #first, 2 do
        if first[j] == 'p' then prev = first[j + 1] end
      end
      if prev ~= cur and not (cur == '0' and prev == '0-0') then
        resets[#resets + 1] = ch
        pos[ch] = last_id(key)
      else
        pos[ch] = cur
        for _, e in ipairs(entries) do
          local f = {}
          for j = 1, #e[2], 2 do f[e[2][j]] = e[2][j + 1] end
          items[#items + 1] = {id = e[1], ch = ch, t = f.t, d = f.d}
        end
      end
    else
      local last = last_id(key)
      if idcmp(cur, last) ~= 0 then
        resets[#resets + 1] = ch
      end
      pos[ch] = last
    end
  end
end

table.sort(items, function(a, b)
  local c = idcmp(a.id, b.id)
  if c ~= 0 then return c < 0 end
  return a.ch < b.ch
end)

local parts = {}
for _, ch in ipairs(resets) do
  parts[#parts + 1] = '{"type":"reset","channel":"' .. ch .. '"}'
end
for k = 1, math.min(limit, #items) do
  local e = items[k]
  parts[#parts + 1] = envelope(e.id, e.ch, e.t, e.d)
  pos[e.ch] = e.id
end
out[2] = '[' .. table.concat(parts, ',') .. ']'
for i = 5, #ARGV, 2 do
  out[#out + 1] = ARGV[i]
  out[#out + 1] = pos[ARGV[i]]
end
return out
