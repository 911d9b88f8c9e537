-- POST /api/trades/{id}/close: closes an open trade and books its P/L.
-- ARGV[4] trade id, [5] P/L in units (10^-8, integer string), [6] P/L as the
-- caller's exact decimal text, [7] exit price or '', [8] drawdown alert
-- thresholds in percent, comma-separated ("5,10,20").
-- Refuses (422, field pnl or exit_price) a P/L that would take the owner's
-- total or day's P/L past int64 units, before writing anything.
-- Writes the trade, the owner's stats, P/L day bucket, equity peak and rank;
-- publishes trade_closed, user_stats_update, equity_updated and, when the
-- drawdown crosses a threshold, risk_alert.
local tid, pnl_u, pnl_text, exit_price = ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local tkey = P .. 'trade:' .. tid
local t = redis.call('HMGET', tkey, 'status', 'user_id', 'signal_id', 'symbol', 'direction',
  'entry')
if not t[1] then
  return fail(404, 'not-found', 'no trade ' .. tid)
end
if t[1] ~= 'OPEN' then
  return fail(409, 'already-closed', 'trade ' .. tid .. ' is already closed')
end
local uid = t[2]
if not uid then return fail_stored(tkey .. ' has no user_id') end
local now = now_ms()
local now_s = math.floor(now / 1000)
local ukey = P .. 'user:' .. uid

local result = 'breakeven'
local sign = icmp(pnl_u, '0')
if sign > 0 then result = 'win' elseif sign < 0 then result = 'loss' end

-- every check before the first write (see common.lua): stored numbers usable,
-- and no running total pushed past what HINCRBY can hold
local bad = user_check(uid) or channel_check('user:' .. uid)
if bad then return fail_stored(bad) end
local day = utc_day(now)
local dkey = ukey .. ':pnl_days'
local h = redis.call('HMGET', ukey, 'total_pnl', 'wins', 'losses', 'closed_trades')
local old_total = h[1] or '0'
local field = 'pnl'
if exit_price ~= '' then field = 'exit_price' end
if int_plus(old_total, pnl_u) == nil or
   int_plus(redis.call('HGET', dkey, tostring(day)), pnl_u) == nil then
  return fail(422, 'invalid-field', 'a P/L of ' .. pnl_text .. ' would take the running P/L ' ..
    'of user ' .. uid .. ' past what can be stored exactly; nothing was booked',
    {field = field})
end
bad = field_check(ukey, 'closed_trades', h[4], '1')
if not bad and result == 'win' then bad = field_check(ukey, 'wins', h[2], '1') end
if not bad and result == 'loss' then bad = field_check(ukey, 'losses', h[3], '1') end
if bad then return fail_stored(bad) end

local old_equity = iadd(EQUITY_START, old_total)
local peak = redis.call('HGET', ukey, 'peak') or EQUITY_START
if icmp(old_equity, peak) > 0 then peak = old_equity end

redis.call('HSET', tkey, 'status', 'CLOSED', 'closed_at', now_s, 'pnl', pnl_text,
  'exit_price', exit_price, 'result', result)
redis.call('HINCRBY', ukey, 'total_pnl', pnl_u)
if result == 'win' then redis.call('HINCRBY', ukey, 'wins', 1) end
if result == 'loss' then redis.call('HINCRBY', ukey, 'losses', 1) end
redis.call('HINCRBY', ukey, 'closed_trades', 1)

redis.call('HINCRBY', dkey, tostring(day), pnl_u)
for _, d in ipairs(redis.call('HKEYS', dkey)) do
  if tonumber(d) == nil or tonumber(d) < day - 6 then redis.call('HDEL', dkey, d) end
end

local total = iadd(old_total, pnl_u)
local equity = iadd(EQUITY_START, total)
local new_peak = peak
if icmp(equity, peak) > 0 then new_peak = equity end
redis.call('HSET', ukey, 'peak', new_peak)
-- the rank is an order, not an amount: a double score is precise enough for it
redis.call('ZADD', P .. 'rank', tonumber(total), uid)

-- drawdown from the peak, as a percentage (a ratio: doubles are fine here)
local function drawdown(pk, eq)
  local p = tonumber(pk)
  if p <= 0 then return 0 end
  local d = tonumber(isub(pk, eq)) / p * 100
  if d < 0 then d = 0 end
  return d
end
local dd_old = drawdown(peak, old_equity)
local dd_new = drawdown(new_peak, equity)

local stats = user_stats(uid, now)
local trade = {trade_id = tid, signal_id = t[3], user_id = uid, symbol = t[4], direction = t[5],
  entry = t[6], exit_price = exit_price, pnl = pnl_text, result = result, closed_at = now_s}
if exit_price == '' then trade.exit_price = cjson.null end
local eq = {user_id = uid, equity = money(equity), peak = money(new_peak),
  drawdown_pct = string.format('%.2f', dd_new), total_pnl = money(total)}

local ch = 'user:' .. uid
local trade_json, eq_json = cjson.encode(trade), cjson.encode(eq)
local events = {{ch, 'trade_closed', trade_json},
  {ch, 'user_stats_update', with_member(cjson.encode({user_id = uid}), 'stats', stats)},
  {ch, 'equity_updated', eq_json}}
local crossed
for th in string.gmatch(ARGV[8], '[^,]+') do
  local x = tonumber(th)
  if x and dd_old < x and dd_new >= x and (crossed == nil or x > crossed) then crossed = x end
end
if crossed then
  events[4] = {ch, 'risk_alert', cjson.encode({user_id = uid, kind = 'drawdown',
    threshold_pct = crossed, drawdown_pct = string.format('%.2f', dd_new),
    equity = money(equity), peak = money(new_peak),
    message = string.format('Drawdown %.2f%% crossed %s%%', dd_new, tostring(crossed))})}
end
emit_all(events)
return {200, '{"trade":' .. trade_json .. ',"stats":' .. stats .. ',"equity":' .. eq_json .. '}'}
