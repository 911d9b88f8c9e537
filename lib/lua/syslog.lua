-- A line for the admin page's system log (system_log on `admin`), from a
-- program that is not a script itself (sortie-pushd, sortie-expire).
-- ARGV[4] level (info, warn, error), [5] source, [6] message. A channel that
-- cannot take the event is a 500 and nothing is written (see common.lua).
local bad = channel_check('admin')
if bad then return fail_stored(bad) end
syslog(ARGV[4], ARGV[5], ARGV[6])
return {201, '{}'}
