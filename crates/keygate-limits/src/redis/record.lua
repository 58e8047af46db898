-- Add usage after the fact, unconditionally.
-- KEYS: 1 workspace spent  2..5 token counters  6..9 cost counters
-- ARGV: 1 tokens  2 cost  3..6 counter ttl ms per period (0 = keep)

local tokens, cost = tonumber(ARGV[1]), tonumber(ARGV[2])
for p = 0, 3 do
  if tokens > 0 then
    redis.call('INCRBY', KEYS[2 + p], ARGV[1])
    if ARGV[3 + p] ~= '0' then redis.call('PEXPIRE', KEYS[2 + p], ARGV[3 + p]) end
  end
  if cost > 0 then
    redis.call('INCRBY', KEYS[6 + p], ARGV[2])
    if ARGV[3 + p] ~= '0' then redis.call('PEXPIRE', KEYS[6 + p], ARGV[3 + p]) end
  end
end
if cost > 0 then redis.call('INCRBY', KEYS[1], ARGV[2]) end
return 1
