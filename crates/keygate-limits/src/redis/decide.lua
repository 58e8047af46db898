-- Check every limit of one request and, only if all pass, consume them: one atomic step.
-- Numbers that go back to Redis are formatted with int() because Lua 5.1 would print large
-- ones in exponent form, which INCRBY refuses. Amounts are exact up to 2^53.
--
-- KEYS: 1 key holds (zset, score = deadline, member "<id>|<tokens>|<cost>")
--       2 key held (hash t, c)      3 workspace holds (zset)     4 workspace held (string)
--       5 workspace spent (string)  6..9 token counters (daily, weekly, monthly, never)
--       10..13 cost counters (same order)   14 reservation hash   15.. rate-window zsets
-- ARGV: 1 mode (status|admit|reserve)  2 now ms  3 nonce  4 tokens  5 cost
--       6 token limit (-1 = none)  7 its period index  8 cost limit (-1)  9 its period index
--       10 daily cap (-1)  11 credit balance (-1)  12..15 counter ttl ms per period (0 = keep)
--       16 hold deadline ms  17 reservation id  18 hold ttl ms  19 number of windows
--       20.. pairs (window ms, limit)

local function int(x) return string.format('%d', x) end
local function num(v) return tonumber(v or '0') or 0 end
local function refuses(used, req, limit) return used >= limit or used + req > limit end
local function extend(key, ttl)
  if redis.call('PTTL', key) < ttl then redis.call('PEXPIRE', key, ttl) end
end
local function counter_ttl(key, ttl)
  if ttl ~= '0' then redis.call('PEXPIRE', key, ttl) end
end

-- Releases the holds whose deadline has come; returns the tokens and cost they held.
local function sweep(holds, now)
  local expired = redis.call('ZRANGEBYSCORE', holds, '-inf', now)
  if #expired == 0 then return 0, 0 end
  local t, c = 0, 0
  for _, m in ipairs(expired) do
    local _, _, mt, mc = string.find(m, '|(%d+)|(%d+)$')
    t = t + tonumber(mt)
    c = c + tonumber(mc)
  end
  redis.call('ZREMRANGEBYSCORE', holds, '-inf', now)
  return t, c
end

local mode = ARGV[1]
local now = tonumber(ARGV[2])
local tokens = tonumber(ARGV[4])
local cost = tonumber(ARGV[5])
local tok_limit, tok_idx = tonumber(ARGV[6]), tonumber(ARGV[7])
local cost_limit, cost_idx = tonumber(ARGV[8]), tonumber(ARGV[9])
local cap, credit = tonumber(ARGV[10]), tonumber(ARGV[11])
local hold_ttl = tonumber(ARGV[18])
local nwin = tonumber(ARGV[19])

local st, sc = sweep(KEYS[1], now)
if st > 0 then redis.call('HINCRBY', KEYS[2], 't', int(-st)) end
if sc > 0 then redis.call('HINCRBY', KEYS[2], 'c', int(-sc)) end
local _, wc = sweep(KEYS[3], now)
if wc > 0 then redis.call('DECRBY', KEYS[4], int(wc)) end

-- 0 admitted, 1 rate limited, 2 tokens, 3 cost, 4 daily spend cap, 5 credits
local denied = 0
-- The longest wait among full windows, in ms; -1 when a zero limit makes waiting useless.
local retry = 0
for i = 1, nwin do
  local key = KEYS[14 + i]
  local w, lim = tonumber(ARGV[18 + 2 * i]), tonumber(ARGV[19 + 2 * i])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - w)
  local n = redis.call('ZCARD', key)
  if n >= lim then
    denied = 1
    local s = redis.call('ZRANGE', key, n - lim, n - lim, 'WITHSCORES')
    if retry >= 0 and s[2] then
      local r = tonumber(s[2]) + w - now
      if r > retry then retry = r end
    else
      retry = -1
    end
  end
end

local held = redis.call('HMGET', KEYS[2], 't', 'c')
local held_t, held_c = num(held[1]), num(held[2])
local tok_used, cost_used, daily_used, credit_used = 0, 0, 0, 0
if tok_limit >= 0 then tok_used = num(redis.call('GET', KEYS[6 + tok_idx])) + held_t end
if cost_limit >= 0 then cost_used = num(redis.call('GET', KEYS[10 + cost_idx])) + held_c end
if cap >= 0 then daily_used = num(redis.call('GET', KEYS[10])) + held_c end
if credit >= 0 then credit_used = num(redis.call('GET', KEYS[5])) + num(redis.call('GET', KEYS[4])) end
if denied == 0 then
  if tok_limit >= 0 and refuses(tok_used, tokens, tok_limit) then denied = 2
  elseif cost_limit >= 0 and refuses(cost_used, cost, cost_limit) then denied = 3
  elseif cap >= 0 and refuses(daily_used, cost, cap) then denied = 4
  elseif credit >= 0 and refuses(credit_used, cost, credit) then denied = 5
  end
end

local admitted = denied == 0 and mode ~= 'status'
if admitted then
  local seen = {}
  for i = 1, nwin do
    local key = KEYS[14 + i]
    if not seen[key] then
      seen[key] = true
      redis.call('ZADD', key, ARGV[2], ARGV[3])
      redis.call('PEXPIRE', key, ARGV[18 + 2 * i])
    end
  end
  if mode == 'admit' then
    for p = 0, 3 do
      if tokens > 0 then
        redis.call('INCRBY', KEYS[6 + p], ARGV[4])
        counter_ttl(KEYS[6 + p], ARGV[12 + p])
      end
      if cost > 0 then
        redis.call('INCRBY', KEYS[10 + p], ARGV[5])
        counter_ttl(KEYS[10 + p], ARGV[12 + p])
      end
    end
    if cost > 0 then redis.call('INCRBY', KEYS[5], ARGV[5]) end
  elseif mode == 'reserve' then
    local member = ARGV[17] .. '|' .. ARGV[4] .. '|' .. ARGV[5]
    redis.call('ZADD', KEYS[1], ARGV[16], member)
    redis.call('HINCRBY', KEYS[2], 't', ARGV[4])
    redis.call('HINCRBY', KEYS[2], 'c', ARGV[5])
    extend(KEYS[1], hold_ttl)
    extend(KEYS[2], hold_ttl)
    local wmember = ''
    if cost > 0 then
      wmember = ARGV[17] .. '|0|' .. ARGV[5]
      redis.call('ZADD', KEYS[3], ARGV[16], wmember)
      redis.call('INCRBY', KEYS[4], ARGV[5])
      extend(KEYS[3], hold_ttl)
      extend(KEYS[4], hold_ttl)
    end
    redis.call('HSET', KEYS[14], 'km', member, 'wm', wmember, 'deadline', ARGV[16])
    redis.call('PEXPIRE', KEYS[14], hold_ttl)
  end
end

local function after(used, amount)
  if admitted then return used + amount end
  return used
end
local out = { denied, retry, int(after(tok_used, tokens)), int(after(cost_used, cost)),
  int(after(daily_used, cost)), int(after(credit_used, cost)) }
for i = 1, nwin do
  local key = KEYS[14 + i]
  local lim = tonumber(ARGV[19 + 2 * i])
  local n = redis.call('ZCARD', key)
  local at = n - lim
  if at < 0 then at = 0 end
  local s = redis.call('ZRANGE', key, at, at, 'WITHSCORES')
  table.insert(out, n)
  table.insert(out, s[2] or '-1')
end
return out
