-- Shared by every script: `redis.rs` puts this in front of each one when it builds them. A
-- script sets MAX from its max-amount argument before it adds anything.
--
-- Numbers that go back to Redis are formatted with int() because Lua 5.1 would print large
-- ones in exponent form, which INCRBY refuses.

local function int(x) return string.format('%d', x) end
local function num(v) return tonumber(v or '0') or 0 end
local MAX

-- Adds to a counter, saturating at MAX.
local function add(key, amount, ttl)
  local room = MAX - num(redis.call('GET', key))
  if amount > room then amount = room end
  if amount > 0 then redis.call('INCRBY', key, int(amount)) end
  if ttl ~= '0' then redis.call('PEXPIRE', key, ttl) end
end

-- Charges what was spent: `tokens` and `cost` to the four period counters (KEYS from
-- `token_key` and `cost_key` on, their ttls in ARGV from `ttl_arg` on), `cost` to the
-- workspace's spend (`spent`; nil for an identity's counters, whose workspace is charged
-- with its key's).
local function charge(tokens, cost, token_key, cost_key, ttl_arg, spent)
  for p = 0, 3 do
    if tokens > 0 then add(KEYS[token_key + p], tokens, ARGV[ttl_arg + p]) end
    if cost > 0 then add(KEYS[cost_key + p], cost, ARGV[ttl_arg + p]) end
  end
  if spent and cost > 0 then add(spent, cost, '0') end
end
