-- Check every limit of one request and, only if all pass, consume them: one atomic step.
-- Lua numbers are doubles, exact up to 2^53: the caller clamps every amount and limit to
-- ARGV[20] (2^53 - 1) and add() (counters.lua) saturates there, so no counter can pass it and
-- no sum here loses a unit that matters to a decision.
--
-- KEYS: 1 key holds (zset, score = deadline, member "<id>|<tokens>|<cost>")
--       2 key held (hash t, c)      3 workspace holds (zset)     4 workspace held (string)
--       5 workspace spent (string)  6..9 token counters (daily, weekly, monthly, never)
--       10..13 cost counters (same order)   14 reservation hash
--       then per window i: 13 + 2i its log (zset, score = time, member "<time>|<requests>"),
--       14 + 2i its total (string, the sum of the log's requests)
-- ARGV: 1 mode (status|admit|reserve)  2 now ms  3 tokens  4 cost
--       5 token limit (-1 = none)  6 its period index  7 cost limit (-1)  8 its period index
--       9 daily cap (-1)  10 credit balance (-1)  11..14 counter ttl ms per period (0 = keep)
--       15 hold deadline ms  16 reservation id  17 hold ttl ms  18 workspace id  19 key id
--       20 max amount  21 number of windows
--       then per window i: 19 + 3i length ms, 20 + 3i limit, 21 + 3i granularity ms

local function refuses(used, req, limit) return used >= limit or used + req > limit end
local function extend(key, ttl)
  if redis.call('PTTL', key) < ttl then redis.call('PEXPIRE', key, ttl) end
end

MAX = tonumber(ARGV[20])
-- How much of `amount` a hold may take while its total stays within MAX.
local function room(total, amount)
  local r = MAX - total
  if amount < r then r = amount end
  if r < 0 then r = 0 end
  return r
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

-- A window's log: entries "<time>|<requests>", oldest first, and their total.
local function requests_of(member) return tonumber(string.match(member, '|(%d+)$')) end

-- Drops the entries that left the window (logged at or before `cutoff`); returns the total.
local function prune(log, total, cutoff)
  local old = redis.call('ZRANGEBYSCORE', log, '-inf', cutoff)
  if #old == 0 then return num(redis.call('GET', total)) end
  redis.call('ZREMRANGEBYSCORE', log, '-inf', cutoff)
  if redis.call('ZCARD', log) == 0 then
    redis.call('DEL', total)
    return 0
  end
  local gone = 0
  for _, m in ipairs(old) do gone = gone + requests_of(m) end
  local n = redis.call('DECRBY', total, int(gone))
  if n < 0 then
    -- The total was lost (evicted or deleted by hand): count what is left of the log again.
    n = 0
    for _, m in ipairs(redis.call('ZRANGE', log, 0, -1)) do n = n + requests_of(m) end
    redis.call('SET', total, int(n))
    local ttl = redis.call('PTTL', log)
    if ttl > 0 then redis.call('PEXPIRE', total, ttl) end
  end
  return n
end

-- The logged time of the request at `index` (0 = oldest), or nil. Every entry holds at least
-- one request, so it is among the first `index + 1` entries: read no more than that.
local function stamp_at(log, index)
  local seen, from = 0, 0
  while true do
    local upto = from + math.min(index - seen, 63)
    local batch = redis.call('ZRANGE', log, from, upto, 'WITHSCORES')
    if #batch == 0 then return nil end
    for j = 1, #batch, 2 do
      seen = seen + requests_of(batch[j])
      if seen > index then return batch[j + 1] end
    end
    from = upto + 1
  end
end

-- Logs one request at the end of its bucket (granularity 1 = its own millisecond), merging
-- it into the newest entry when that is as late (same bucket, or a clock that stepped back).
local function push(log, total, now, w, g)
  local stamp = now - (now % g) + g - 1
  local n = 1
  local last = redis.call('ZRANGE', log, -1, -1, 'WITHSCORES')
  if last[1] and tonumber(last[2]) >= stamp then
    stamp = tonumber(last[2])
    n = requests_of(last[1]) + 1
    redis.call('ZREM', log, last[1])
  end
  redis.call('ZADD', log, int(stamp), int(stamp) .. '|' .. int(n))
  redis.call('INCR', total)
  local ttl = int(stamp + w - now)
  redis.call('PEXPIRE', log, ttl)
  redis.call('PEXPIRE', total, ttl)
end

local mode = ARGV[1]
local now = tonumber(ARGV[2])
local tokens = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local tok_limit, tok_idx = tonumber(ARGV[5]), tonumber(ARGV[6])
local cost_limit, cost_idx = tonumber(ARGV[7]), tonumber(ARGV[8])
local cap, credit = tonumber(ARGV[9]), tonumber(ARGV[10])
local hold_ttl = tonumber(ARGV[17])
local nwin = tonumber(ARGV[21])

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
  local log, total = KEYS[13 + 2 * i], KEYS[14 + 2 * i]
  local w, lim = tonumber(ARGV[19 + 3 * i]), tonumber(ARGV[20 + 3 * i])
  local n = prune(log, total, now - w)
  if n >= lim then
    denied = 1
    local s = stamp_at(log, n - lim)
    if retry >= 0 and s then
      local r = tonumber(s) + w - now
      if r > retry then retry = r end
    else
      retry = -1
    end
  end
end

local held = redis.call('HMGET', KEYS[2], 't', 'c')
local held_t, held_c = num(held[1]), num(held[2])
local ws_held = num(redis.call('GET', KEYS[4]))
local tok_used, cost_used, daily_used, credit_used = 0, 0, 0, 0
if tok_limit >= 0 then tok_used = num(redis.call('GET', KEYS[6 + tok_idx])) + held_t end
if cost_limit >= 0 then cost_used = num(redis.call('GET', KEYS[10 + cost_idx])) + held_c end
if cap >= 0 then daily_used = num(redis.call('GET', KEYS[10])) + held_c end
if credit >= 0 then credit_used = num(redis.call('GET', KEYS[5])) + ws_held end
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
    local log = KEYS[13 + 2 * i]
    if not seen[log] then
      seen[log] = true
      push(log, KEYS[14 + 2 * i], now, tonumber(ARGV[19 + 3 * i]), tonumber(ARGV[21 + 3 * i]))
    end
  end
  if mode == 'admit' then
    charge(tokens, cost, 6, 10, 11, KEYS[5])
  elseif mode == 'reserve' then
    local ht, hc = room(held_t, tokens), room(held_c, cost)
    local member = ARGV[16] .. '|' .. int(ht) .. '|' .. int(hc)
    redis.call('ZADD', KEYS[1], ARGV[15], member)
    redis.call('HINCRBY', KEYS[2], 't', int(ht))
    redis.call('HINCRBY', KEYS[2], 'c', int(hc))
    extend(KEYS[1], hold_ttl)
    extend(KEYS[2], hold_ttl)
    local wmember = ''
    if cost > 0 then
      local whc = room(ws_held, cost)
      wmember = ARGV[16] .. '|0|' .. int(whc)
      redis.call('ZADD', KEYS[3], ARGV[15], wmember)
      redis.call('INCRBY', KEYS[4], int(whc))
      extend(KEYS[3], hold_ttl)
      extend(KEYS[4], hold_ttl)
    end
    -- Who owns it: finish.lua ends it only for this workspace and key.
    redis.call('HSET', KEYS[14], 'km', member, 'wm', wmember, 'deadline', ARGV[15],
      'ws', ARGV[18], 'key', ARGV[19])
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
  local log = KEYS[13 + 2 * i]
  local lim = tonumber(ARGV[20 + 3 * i])
  local n = num(redis.call('GET', KEYS[14 + 2 * i]))
  local at = n - lim
  if at < 0 then at = 0 end
  table.insert(out, int(n))
  table.insert(out, stamp_at(log, at) or '-1')
end
return out
