-- sortie-expire, history by age: keeps only a channel's events newer than
-- ARGV[5] (unix ms). A channel whose newest event is older is dropped whole;
-- checked and done in one step, so an event published meanwhile is never lost.
-- ARGV[4] channel. Returns {removed entries, 1 if the channel was dropped}.
local key, min = P .. 'h:' .. ARGV[4], tonumber(ARGV[5])
local last = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)
if last[1] == nil or tonumber(string.match(last[1][1], '^(%d+)')) < min then
  local n = redis.call('XLEN', key)
  redis.call('DEL', key)
  return {n, 1}
end
return {redis.call('XTRIM', key, 'MINID', '~', string.format('%d-0', min)), 0}
