-- Settle or release one reservation. Returns {1, 0, ''} if this call ended it, {0, 0, ''} if
-- it was unknown, someone else's, already ended or expired (so a retried settle has no second
-- effect, and a foreign id learns nothing an unknown one would not tell).
--
-- It is ended where it was made: its key, its workspace, and the identity it was made under
-- (`ident` in the reservation hash), whatever identity the caller has now. The caller names
-- the KEYS of an identity from a guess (its own); when the guess is wrong the script changes
-- nothing and returns {2, 1, <identity>} (or {2, 0, ''}: made under none), and the caller
-- runs it again with that identity's keys. A reservation's identity never changes, so one
-- retry suffices. Ownership (workspace and key only) is checked before anything is told.
--
-- KEYS: 1 reservation hash  2 key holds  3 key held  4 workspace holds  5 workspace held
--       6 workspace spent   7..10 token counters  11..14 cost counters
--       then, when an identity is named: 15 its holds  16 its held  17..20 its token counters
--       21..24 its cost counters
-- ARGV: 1 mode (settle|release)  2 now ms  3 actual tokens  4 actual cost
--       5..8 counter ttl ms per period (0 = keep)  9 workspace id  10 key id  11 max amount
--       12 identity named (1) or not (0)  13 identity id

MAX = tonumber(ARGV[11])

local r = redis.call('HMGET', KEYS[1], 'km', 'wm', 'deadline', 'ws', 'key', 'im', 'ident')
if not r[1] then return { 0, 0, '' } end
-- Only the workspace and key it was made for may end it; anyone else leaves it untouched.
if r[4] ~= ARGV[9] or r[5] ~= ARGV[10] then return { 0, 0, '' } end
local named = false
if ARGV[12] == '1' then named = ARGV[13] end
if r[7] ~= named then
  if r[7] then return { 2, 1, r[7] } end
  return { 2, 0, '' }
end
redis.call('DEL', KEYS[1])
if tonumber(r[3]) <= tonumber(ARGV[2]) then return { 0, 0, '' } end
if redis.call('ZREM', KEYS[2], r[1]) == 0 then return { 0, 0, '' } end
local _, _, t, c = string.find(r[1], '|(%d+)|(%d+)$')
redis.call('HINCRBY', KEYS[3], 't', int(-tonumber(t)))
redis.call('HINCRBY', KEYS[3], 'c', int(-tonumber(c)))
if r[2] ~= '' and redis.call('ZREM', KEYS[4], r[2]) == 1 then
  local _, _, wc = string.find(r[2], '|(%d+)$')
  redis.call('DECRBY', KEYS[5], wc)
end
if named and r[6] and r[6] ~= '' and redis.call('ZREM', KEYS[15], r[6]) == 1 then
  local _, _, it, ic = string.find(r[6], '|(%d+)|(%d+)$')
  redis.call('HINCRBY', KEYS[16], 't', int(-tonumber(it)))
  redis.call('HINCRBY', KEYS[16], 'c', int(-tonumber(ic)))
end

if ARGV[1] == 'settle' then
  local tokens, cost = tonumber(ARGV[3]), tonumber(ARGV[4])
  charge(tokens, cost, 7, 11, 5, KEYS[6])
  if named then charge(tokens, cost, 17, 21, 5, nil) end
end
return { 1, 0, '' }
