-- Token buckets for one request, checked and charged atomically: all or none.
-- The arithmetic is edge/ratelimit/bucket.py's (refill, take_all); keep them in step.
--
-- KEYS[i]      one bucket, a hash {t = tokens, u = time of t, in Redis TIME seconds}.
--              A missing key is a full bucket, so keys expire once full again.
-- ARGV[3i-2]   refill rate of KEYS[i], tokens per second (> 0)
-- ARGV[3i-1]   burst (capacity) of KEYS[i] (> 0)
-- ARGV[3i]     cost: tokens to take from KEYS[i]; a negative cost gives tokens back
--              (the client's refund across Cluster slots), never above burst.
--
-- Reply: one string of space-separated numbers:
--   "<admitted 1|0> <now> <tokens after 1> <time of tokens 1> <tokens after 2> ..."
-- "%.17g" loses no precision, and one string is much cheaper for the client to
-- parse than a nested array. The client derives remaining/reset/retry-after with
-- bucket.py.

-- Redis's clock, not the edges': edges with skewed clocks still agree.
local time = redis.call('TIME')
local now = tonumber(time[1]) + tonumber(time[2]) / 1000000

local n = #KEYS
local level = {}
local stamp = {}
local admitted = 1

for i = 1, n do
  local rate = tonumber(ARGV[3 * i - 2])
  local burst = tonumber(ARGV[3 * i - 1])
  local cost = tonumber(ARGV[3 * i])
  local state = redis.call('HMGET', KEYS[i], 't', 'u')
  local tokens = tonumber(state[1])
  local updated = tonumber(state[2])
  if tokens == nil or updated == nil then
    tokens, updated = burst, now
  elseif now > updated then
    tokens = math.min(burst, tokens + (now - updated) * rate)
    updated = now
  else
    -- TIME went backwards (a failover to a node whose clock is behind): refill
    -- nothing and keep the later stamp, so the gap is not credited twice.
    tokens = math.min(burst, tokens)
  end
  level[i] = tokens
  stamp[i] = updated
  if tokens < cost then
    admitted = 0
  end
end

local reply = { tostring(admitted), string.format('%.17g', now) }

for i = 1, n do
  local rate = tonumber(ARGV[3 * i - 2])
  local burst = tonumber(ARGV[3 * i - 1])
  local cost = tonumber(ARGV[3 * i])
  local tokens = level[i]
  if admitted == 1 then
    tokens = math.min(burst, tokens - cost)
    -- Expire exactly when the bucket would be full again: a missing key reads as full.
    local ttl = math.ceil(((stamp[i] - now) + (burst - tokens) / rate) * 1000)
    if ttl > 0 then
      redis.call('HSET', KEYS[i], 't', string.format('%.17g', tokens),
        'u', string.format('%.17g', stamp[i]))
      redis.call('PEXPIRE', KEYS[i], ttl)
    else
      redis.call('DEL', KEYS[i])
    end
  end
  -- A refused request writes nothing: refill is a function of time alone.
  reply[#reply + 1] = string.format('%.17g', tokens)
  reply[#reply + 1] = string.format('%.17g', stamp[i])
end

return table.concat(reply, ' ')
