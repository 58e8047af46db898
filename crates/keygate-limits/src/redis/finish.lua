-- Settle or release one reservation. Returns 1 if this call ended it, 0 if it was unknown,
-- already ended or expired (so a retried settle has no second effect).
--
-- KEYS: 1 reservation hash  2 key holds  3 key held  4 workspace holds  5 workspace held
--       6 workspace spent   7..10 token counters  11..14 cost counters
-- ARGV: 1 mode (settle|release)  2 now ms  3 actual tokens  4 actual cost
--       5..8 counter ttl ms per period (0 = keep)

local function int(x) return string.format('%d', x) end

local r = redis.call('HMGET', KEYS[1], 'km', 'wm', 'deadline')
if not r[1] then return 0 end
redis.call('DEL', KEYS[1])
if tonumber(r[3]) <= tonumber(ARGV[2]) then return 0 end
if redis.call('ZREM', KEYS[2], r[1]) == 0 then return 0 end
local _, _, t, c = string.find(r[1], '|(%d+)|(%d+)$')
redis.call('HINCRBY', KEYS[3], 't', int(-tonumber(t)))
redis.call('HINCRBY', KEYS[3], 'c', int(-tonumber(c)))
if r[2] ~= '' and redis.call('ZREM', KEYS[4], r[2]) == 1 then
  redis.call('DECRBY', KEYS[5], c)
end

if ARGV[1] == 'settle' then
  local tokens, cost = tonumber(ARGV[3]), tonumber(ARGV[4])
  for p = 0, 3 do
    if tokens > 0 then
      redis.call('INCRBY', KEYS[7 + p], ARGV[3])
      if ARGV[5 + p] ~= '0' then redis.call('PEXPIRE', KEYS[7 + p], ARGV[5 + p]) end
    end
    if cost > 0 then
      redis.call('INCRBY', KEYS[11 + p], ARGV[4])
      if ARGV[5 + p] ~= '0' then redis.call('PEXPIRE', KEYS[11 + p], ARGV[5 + p]) end
    end
  end
  if cost > 0 then redis.call('INCRBY', KEYS[6], ARGV[4]) end
end
return 1
