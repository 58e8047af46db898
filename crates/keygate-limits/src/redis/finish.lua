-- Settle or release one reservation. Returns 1 if this call ended it, 0 if it was unknown,
-- someone else's, already ended or expired (so a retried settle has no second effect, and a
-- foreign id learns nothing an unknown one would not tell).
--
-- KEYS: 1 reservation hash  2 key holds  3 key held  4 workspace holds  5 workspace held
--       6 workspace spent   7..10 token counters  11..14 cost counters
-- ARGV: 1 mode (settle|release)  2 now ms  3 actual tokens  4 actual cost
--       5..8 counter ttl ms per period (0 = keep)  9 workspace id  10 key id  11 max amount

MAX = tonumber(ARGV[11])

local r = redis.call('HMGET', KEYS[1], 'km', 'wm', 'deadline', 'ws', 'key')
if not r[1] then return 0 end
-- Only the workspace and key it was made for may end it; anyone else leaves it untouched.
if r[4] ~= ARGV[9] or r[5] ~= ARGV[10] then return 0 end
redis.call('DEL', KEYS[1])
if tonumber(r[3]) <= tonumber(ARGV[2]) then return 0 end
if redis.call('ZREM', KEYS[2], r[1]) == 0 then return 0 end
local _, _, t, c = string.find(r[1], '|(%d+)|(%d+)$')
redis.call('HINCRBY', KEYS[3], 't', int(-tonumber(t)))
redis.call('HINCRBY', KEYS[3], 'c', int(-tonumber(c)))
if r[2] ~= '' and redis.call('ZREM', KEYS[4], r[2]) == 1 then
  local _, _, wc = string.find(r[2], '|(%d+)$')
  redis.call('DECRBY', KEYS[5], wc)
end

if ARGV[1] == 'settle' then
  charge(tonumber(ARGV[3]), tonumber(ARGV[4]), 7, 11, 5, KEYS[6])
end
return 1
