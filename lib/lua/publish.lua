-- POST /api/publish: injects one event. ARGV[4] channel, [5] type, [6] data as
-- JSON text (already validated and re-serialized in C). The channel is checked
-- before anything is written (see common.lua).
local bad = channel_check(ARGV[4])
if bad then return fail_stored(bad) end
local id = emit(ARGV[4], ARGV[5], ARGV[6])
return {201, cjson.encode({id = id, channel = ARGV[4], type = ARGV[5]})}
