-- Add usage after the fact, unconditionally, saturating at the max amount (see decide.lua).
-- KEYS: 1 workspace spent  2..5 token counters  6..9 cost counters
-- ARGV: 1 tokens  2 cost  3..6 counter ttl ms per period (0 = keep)  7 max amount

local function int(x) return string.format('%d', x) end
local function num(v) return tonumber(v or '0') or 0 end
local MAX = tonumber(ARGV[7])
local function add(key, amount, ttl)
  local room = MAX - num(redis.call('GET', key))
  if amount > room then amount = room end
  if amount > 0 then redis.call('INCRBY', key, int(amount)) end
  if ttl ~= '0' then redis.call('PEXPIRE', key, ttl) end
end

local tokens, cost = tonumber(ARGV[1]), tonumber(ARGV[2])
for p = 0, 3 do
  if tokens > 0 then add(KEYS[2 + p], tokens, ARGV[3 + p]) end
  if cost > 0 then add(KEYS[6 + p], cost, ARGV[3 + p]) end
end
if cost > 0 then add(KEYS[1], cost, '0') end
return 1
