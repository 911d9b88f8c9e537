-- GET /api/signals/{id} and the mission page: the public view of one signal.
-- ARGV[4] signal id.
local view = signal_view(ARGV[4], now_ms())
if not view then
  return fail(404, 'not-found', 'no signal ' .. ARGV[4])
end
return {200, cjson.encode(view)}
