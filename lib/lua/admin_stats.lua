-- The admin page's figures: GET /api/admin/stats, and the admin_stats event
-- each push daemon publishes every few seconds. ARGV[4] the daemon's
-- connection counts as JSON ('' for none), [5] the daemon's name ('' for
-- none), [6] 'publish' to publish it on `admin` too, [7] '1' to add
-- top_watched (push.presence): the five most-watched missions, ranked by the
-- daemons' last count (pres:top, presence.lua) and shown with their count now.
local now = now_ms()
local minute = math.floor(now / 60000)
local last = tonumber(redis.call('GET', P .. 'stats:fires:' .. (minute - 1)) or '0')
local this = tonumber(redis.call('GET', P .. 'stats:fires:' .. minute) or '0')
-- expires_at > now: a signal is EXPIRED from its expires_at on (signal_view)
local active = redis.call('ZCOUNT', P .. 'active', '(' .. math.floor(now / 1000), '+inf')
local s = '{"fires_last_minute":' .. last .. ',"fires_this_minute":' .. this ..
  ',"active_signals":' .. active .. ',"server_time":' .. math.floor(now / 1000)
if ARGV[4] ~= '' then
  s = s .. ',"daemon":' .. cjson.encode(ARGV[5]) .. ',"connections":' .. ARGV[4]
end
if ARGV[7] == '1' then
  local top = redis.call('ZREVRANGE', P .. 'pres:top', 0, 4)
  local rows = {}
  for i = 1, #top do
    local n = redis.call('ZCOUNT', P .. 'pres:' .. top[i], '(' .. now, '+inf')
    if n > 0 then rows[#rows + 1] = {top[i], n} end
  end
  table.sort(rows, function(a, b)
    if a[2] ~= b[2] then return a[2] > b[2] end
    return a[1] < b[1]
  end)
  local parts = {}
  for i = 1, #rows do
    parts[i] = '{"signal_id":' .. cjson.encode(rows[i][1]) .. ',"watching":' .. rows[i][2] .. '}'
  end
  s = s .. ',"top_watched":[' .. table.concat(parts, ',') .. ']'
end
s = s .. '}'
if ARGV[6] == 'publish' then emit('admin', 'admin_stats', s) end
return {200, s}
