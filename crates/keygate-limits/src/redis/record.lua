-- Add usage after the fact, unconditionally, saturating at the max amount (see decide.lua):
-- to the key, to its identity when one is named, and to the workspace.
-- KEYS: 1 workspace spent  2..5 token counters  6..9 cost counters
--       then, when an identity is named: 10..13 its token counters  14..17 its cost counters
-- ARGV: 1 tokens  2 cost  3..6 counter ttl ms per period (0 = keep)  7 max amount

MAX = tonumber(ARGV[7])
local tokens, cost = tonumber(ARGV[1]), tonumber(ARGV[2])
charge(tokens, cost, 2, 6, 3, KEYS[1])
if #KEYS >= 17 then charge(tokens, cost, 10, 14, 3, nil) end
return 1
