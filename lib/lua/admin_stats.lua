-- The admin page's figures: GET /api/admin/stats, and the admin_stats event
-- each push daemon publishes every few seconds. ARGV[4] the daemon's
-- connection counts as JSON ('' for none), [5] the daemon's name ('' for
-- none), [6] 'publish' to publish it on `admin` too.
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
s = s .. '}'
if ARGV[6] == 'publish' then emit('admin', 'admin_stats', s) end
return {200, s}
