-- sortie-expire, history by age: keeps only a channel's events newer than
-- ARGV[5] (unix ms). A channel whose newest event is older is dropped whole;
-- checked and done in one step, so an event published meanwhile is never lost.
-- ARGV[4] channel. Returns {removed entries, 1 if the channel was dropped}.
local ch, min = ARGV[4], tonumber(ARGV[5])
local key = P .. 'h:' .. ch
local last = redis.call('ZSCORE', P .. 'hchannels', ch)
if last and tonumber(last) < min then
  local n = redis.call('XLEN', key)
  redis.call('DEL', key)
  redis.call('ZREM', P .. 'hchannels', ch)
  return {n, 1}
end
if not last then
  return {0, 0}
end
return {redis.call('XTRIM', key, 'MINID', '~', string.format('%d-0', min)), 0}
