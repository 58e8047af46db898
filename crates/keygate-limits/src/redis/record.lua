-- Add usage after the fact, unconditionally, saturating at the max amount (see decide.lua).
-- KEYS: 1 workspace spent  2..5 token counters  6..9 cost counters
-- ARGV: 1 tokens  2 cost  3..6 counter ttl ms per period (0 = keep)  7 max amount

MAX = tonumber(ARGV[7])
charge(tonumber(ARGV[1]), tonumber(ARGV[2]), 2, 6, 3, KEYS[1])
return 1
