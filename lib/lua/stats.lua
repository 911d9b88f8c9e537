-- GET /api/users/{id}/stats. ARGV[4] user id. Returns {200, json}.
-- A user who never traded has zero stats and no rank: users exist implicitly.
local stats = user_stats(ARGV[4], now_ms())
return {200, with_member(cjson.encode({user_id = ARGV[4]}), 'stats', stats)}
