-- A line for the admin page's system log (system_log on `admin`), from a
-- program that is not a script itself (sortie-pushd, sortie-expire).
-- ARGV[4] level (info, warn, error), [5] source, [6] message.
syslog(ARGV[4], ARGV[5], ARGV[6])
return {201, '{}'}
