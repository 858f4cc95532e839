-- Token buckets, checked and charged atomically: a batch of calls, each all or none.
-- The arithmetic is edge/ratelimit/bucket.py's (refill, take_all); keep them in step.
--
-- One EVALSHA carries every call of one pipelined batch (of one Cluster slot), so
-- that the client packs and parses one command instead of one per request. Each
-- call is one request's buckets, decided as if it ran alone, in order.
--
-- KEYS         the buckets of every call, call after call. A bucket is a hash
--              {t = tokens, u = time of t, in Redis TIME seconds}; a missing key
--              is a full bucket, so keys expire once full again.
-- ARGV[c]      call c, one string of numbers: "<n> <rate> <burst> <cost> ...",
--              n = its number of keys (the next n of KEYS), then per key its refill
--              rate (tokens per second, > 0), burst (capacity, > 0) and cost: the
--              tokens to take; a negative cost gives tokens back (the client's
--              refund across Cluster slots), never above burst.
--
-- Reply: one string, one line per call, in order:
--   "<admitted 1|0> <now> <tokens after 1> <time of tokens 1> <tokens after 2> ..."
-- or "E <error>" when a key of that call cannot be read (say, not a hash): that
-- call changes nothing, and the other calls go on. "%.17g" loses no precision, and
-- one string is much cheaper for the client to parse than nested arrays. The
-- client derives remaining/reset/retry-after with bucket.py.

-- Redis's clock, not the edges': edges with skewed clocks still agree.
local time = redis.call('TIME')
local now = tonumber(time[1]) + tonumber(time[2]) / 1000000
local now_text = string.format('%.17g', now)

local lines = {}
local first = 0 -- KEYS before this call's

for c = 1, #ARGV do
  local spec = {}
  for number in string.gmatch(ARGV[c], '%S+') do
    spec[#spec + 1] = tonumber(number)
  end
  local n = spec[1]
  local level = {}
  local stamp = {}
  local admitted = 1
  local failure = nil

  for i = 1, n do
    local rate, burst, cost = spec[3 * i - 1], spec[3 * i], spec[3 * i + 1]
    local state = redis.pcall('HMGET', KEYS[first + i], 't', 'u')
    if type(state) == 'table' and state.err then
      failure = state.err
      break
    end
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

  if failure then
    lines[c] = 'E ' .. string.gsub(failure, '%s+', ' ')
  else
    local reply = { tostring(admitted), now_text }
    for i = 1, n do
      local rate, burst, cost = spec[3 * i - 1], spec[3 * i], spec[3 * i + 1]
      local key = KEYS[first + i]
      local tokens = level[i]
      if admitted == 1 then
        tokens = math.min(burst, tokens - cost)
        -- Expire exactly when the bucket would be full again: a missing key reads as full.
        local ttl = math.ceil(((stamp[i] - now) + (burst - tokens) / rate) * 1000)
        if ttl > 0 then
          redis.call('HSET', key, 't', string.format('%.17g', tokens),
            'u', string.format('%.17g', stamp[i]))
          redis.call('PEXPIRE', key, ttl)
        else
          redis.call('DEL', key)
        end
      end
      -- A refused call writes nothing: refill is a function of time alone.
      reply[#reply + 1] = string.format('%.17g', tokens)
      reply[#reply + 1] = string.format('%.17g', stamp[i])
    end
    lines[c] = table.concat(reply, ' ')
  end
  first = first + n
end

return table.concat(lines, '\n')
