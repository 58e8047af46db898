-- Check every limit of one request and, only if all pass, consume them: one atomic step.
-- Lua numbers are doubles, exact up to 2^53: the caller clamps every amount and limit to
-- ARGV[20] (2^53 - 1) and add() (counters.lua) saturates there, so no counter can pass it and
-- no sum here loses a unit that matters to a decision.
--
-- Two scopes have limits of the same kinds: the key, and (when ARGV[22] is 1) the identity
-- it is counted under, whose keys have the same layout as the key's. The checks, in order
-- of precedence: the key's rate windows, the identity's rate windows, the key's token limit,
-- cost limit and daily cap, the identity's token limit, cost limit and daily cap, the
-- workspace's credits. Every full window of both scopes is looked at, so a rate refusal
-- waits for the longest of them. Only if every check passes is anything written.
--
-- KEYS: 1 key holds (zset, score = deadline, member "<id>|<tokens>|<cost>")
--       2 key held (hash t, c)      3 workspace holds (zset)     4 workspace held (string)
--       5 workspace spent (string)  6..9 token counters (daily, weekly, monthly, never)
--       10..13 cost counters (same order)   14 reservation hash
--       then, with an identity: 15 its holds  16 its held  17..20 its token counters
--       21..24 its cost counters
--       then per window i (the key's, then the identity's), from B = 14 (24 with an
--       identity): B + 2i - 1 its log (zset, score = time, member "<time>|<requests>"),
--       B + 2i its total (string, the sum of the log's requests)
-- ARGV: 1 mode (status|admit|reserve)  2 now ms  3 tokens  4 cost
--       5 token limit (-1 = none)  6 its period index  7 cost limit (-1)  8 its period index
--       9 daily cap (-1)  10 credit balance (-1)  11..14 counter ttl ms per period (0 = keep)
--       15 hold deadline ms  16 reservation id  17 hold ttl ms  18 workspace id  19 key id
--       20 max amount  21 number of the key's windows
--       22 identity counted (1) or not (0)  23 identity id  24 its token limit (-1)
--       25 its period index  26 its cost limit (-1)  27 its period index  28 its daily cap (-1)
--       29 number of the identity's windows
--       then per window i (the key's, then the identity's): 27 + 3i length ms, 28 + 3i limit,
--       29 + 3i granularity ms
-- Returns: denial (0 admitted, 1 rate limited, 2 tokens, 3 cost, 4 daily spend cap,
--   5 credits), scope that refused (0 none, 1 key, 2 identity, 3 workspace), rate wait ms
--   (-1 = none helps), the key's tokens, cost and cost today, the identity's tokens, cost and
--   cost today, credit used (all after the decision), then per window (same order) its
--   total and the time of the request whose leaving frees a slot (-1 = none).

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
local credit = tonumber(ARGV[10])
local hold_ttl = tonumber(ARGV[17])
local has_identity = ARGV[22] == '1'
local nkey, nident = tonumber(ARGV[21]), tonumber(ARGV[29])

-- One scope's keys and budget limits; `tok` and `cost` index its first counter in KEYS.
local function scope(holds, held, tok, cost_at, a)
  return { holds = holds, held = held, tok = tok, cost = cost_at,
    tok_limit = tonumber(ARGV[a]), tok_idx = tonumber(ARGV[a + 1]),
    cost_limit = tonumber(ARGV[a + 2]), cost_idx = tonumber(ARGV[a + 3]),
    cap = tonumber(ARGV[a + 4]) }
end
local key = scope(KEYS[1], KEYS[2], 6, 10, 5)
local ident = nil
local base = 14
if has_identity then
  ident = scope(KEYS[15], KEYS[16], 17, 21, 24)
  base = 24
end
local scopes = { key, ident }

local windows = {}
for i = 1, nkey + nident do
  local a = 27 + 3 * i
  windows[i] = { log = KEYS[base + 2 * i - 1], total = KEYS[base + 2 * i],
    w = tonumber(ARGV[a]), lim = tonumber(ARGV[a + 1]), g = tonumber(ARGV[a + 2]) }
end

for _, s in pairs(scopes) do
  local st, sc = sweep(s.holds, now)
  if st > 0 then redis.call('HINCRBY', s.held, 't', int(-st)) end
  if sc > 0 then redis.call('HINCRBY', s.held, 'c', int(-sc)) end
end
local _, wc = sweep(KEYS[3], now)
if wc > 0 then redis.call('DECRBY', KEYS[4], int(wc)) end

local denied, by = 0, 0
-- The longest wait among full windows of both scopes, in ms; -1 when a zero limit makes
-- waiting useless.
local retry = 0
local key_full, ident_full = false, false
for i, win in ipairs(windows) do
  local n = prune(win.log, win.total, now - win.w)
  if n >= win.lim then
    if i <= nkey then key_full = true else ident_full = true end
    local s = stamp_at(win.log, n - win.lim)
    if retry >= 0 and s then
      local r = tonumber(s) + win.w - now
      if r > retry then retry = r end
    else
      retry = -1
    end
  end
end
if key_full then denied, by = 1, 1 elseif ident_full then denied, by = 1, 2 end

-- What the scope's budgets have used, holds included; then the first that refuses.
local function usage(s)
  local held = redis.call('HMGET', s.held, 't', 'c')
  s.held_t, s.held_c = num(held[1]), num(held[2])
  s.tok_used, s.cost_used, s.daily_used = 0, 0, 0
  if s.tok_limit >= 0 then s.tok_used = num(redis.call('GET', KEYS[s.tok + s.tok_idx])) + s.held_t end
  if s.cost_limit >= 0 then
    s.cost_used = num(redis.call('GET', KEYS[s.cost + s.cost_idx])) + s.held_c
  end
  if s.cap >= 0 then s.daily_used = num(redis.call('GET', KEYS[s.cost])) + s.held_c end
end
local function refusal(s)
  if s.tok_limit >= 0 and refuses(s.tok_used, tokens, s.tok_limit) then return 2
  elseif s.cost_limit >= 0 and refuses(s.cost_used, cost, s.cost_limit) then return 3
  elseif s.cap >= 0 and refuses(s.daily_used, cost, s.cap) then return 4
  end
  return 0
end

for _, s in pairs(scopes) do usage(s) end
local ws_held = num(redis.call('GET', KEYS[4]))
local credit_used = 0
if credit >= 0 then credit_used = num(redis.call('GET', KEYS[5])) + ws_held end
if denied == 0 then denied = refusal(key); if denied > 0 then by = 1 end end
if denied == 0 and ident then denied = refusal(ident); if denied > 0 then by = 2 end end
if denied == 0 and credit >= 0 and refuses(credit_used, cost, credit) then denied, by = 5, 3 end

-- Holds `tokens` and `cost` (at most what keeps the totals within MAX) on a scope; returns
-- the hold's member, by which finish.lua ends it.
local function hold(s)
  local ht, hc = room(s.held_t, tokens), room(s.held_c, cost)
  local member = ARGV[16] .. '|' .. int(ht) .. '|' .. int(hc)
  redis.call('ZADD', s.holds, ARGV[15], member)
  redis.call('HINCRBY', s.held, 't', int(ht))
  redis.call('HINCRBY', s.held, 'c', int(hc))
  extend(s.holds, hold_ttl)
  extend(s.held, hold_ttl)
  return member
end

local admitted = denied == 0 and mode ~= 'status'
if admitted then
  local seen = {}
  for _, win in ipairs(windows) do
    if not seen[win.log] then
      seen[win.log] = true
      push(win.log, win.total, now, win.w, win.g)
    end
  end
  if mode == 'admit' then
    charge(tokens, cost, key.tok, key.cost, 11, KEYS[5])
    if ident then charge(tokens, cost, ident.tok, ident.cost, 11, nil) end
  elseif mode == 'reserve' then
    local member = hold(key)
    local imember = ''
    if ident then imember = hold(ident) end
    local wmember = ''
    if cost > 0 then
      local whc = room(ws_held, cost)
      wmember = ARGV[16] .. '|0|' .. int(whc)
      redis.call('ZADD', KEYS[3], ARGV[15], wmember)
      redis.call('INCRBY', KEYS[4], int(whc))
      extend(KEYS[3], hold_ttl)
      extend(KEYS[4], hold_ttl)
    end
    -- Who owns it: finish.lua ends it only for this workspace and key. Where it was made:
    -- the identity (`ident`, absent without one) that settling charges.
    local fields = { 'km', member, 'wm', wmember, 'im', imember, 'deadline', ARGV[15],
      'ws', ARGV[18], 'key', ARGV[19] }
    if ident then
      table.insert(fields, 'ident')
      table.insert(fields, ARGV[23])
    end
    redis.call('HSET', KEYS[14], unpack(fields))
    redis.call('PEXPIRE', KEYS[14], hold_ttl)
  end
end

local function after(used, amount)
  if admitted then return used + amount end
  return used
end
local out = { denied, by, retry,
  int(after(key.tok_used, tokens)), int(after(key.cost_used, cost)),
  int(after(key.daily_used, cost)) }
if ident then
  table.insert(out, int(after(ident.tok_used, tokens)))
  table.insert(out, int(after(ident.cost_used, cost)))
  table.insert(out, int(after(ident.daily_used, cost)))
else
  table.insert(out, 0)
  table.insert(out, 0)
  table.insert(out, 0)
end
table.insert(out, int(after(credit_used, cost)))
for _, win in ipairs(windows) do
  local n = num(redis.call('GET', win.total))
  local at = n - win.lim
  if at < 0 then at = 0 end
  table.insert(out, int(n))
  table.insert(out, stamp_at(win.log, at) or '-1')
end
return out
