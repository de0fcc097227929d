-- Limits each service's request rate to what its running tasks can serve (access phase).
--
-- The agent pushes every limited service's rate (requests per second, the capacity of
-- one task times the tasks) and burst (requests that may arrive at once above the rate)
-- to configuration.lua; a service it pushes no limit for is not limited.
--
-- The limit is a GCRA (a leaky bucket kept as one number): the theoretical arrival time
-- of the next request, shared by all workers and moved with the shared zone's atomic
-- incr. A request that would move it more than the burst ahead of now is refused at
-- once with 503 and Retry-After, before any task is tried, rather than queued until
-- it times out. Refused requests count as errors in the request counters: the service
-- is short of replicas, and the autoscaler is told so.

local configuration = require("configuration")

local _M = {}

local buckets = ngx.shared.entrypoint_rate
local limits = {}

-- Per service, its rate (requests per second) and burst (requests), from the pushed lines.
local function parsed(text)
    local found = {}
    for service, rate, burst in string.gmatch(text or "", "(%S+) (%S+) (%S+)") do
        found[service] = { rate = tonumber(rate), burst = tonumber(burst) }
    end
    return found
end

local function take(text)
    local fresh = {}
    for service, limit in pairs(parsed(text)) do
        fresh[service] = { interval = 1 / limit.rate, tolerance = limit.burst / limit.rate }
    end
    limits = fresh
end

function _M.init_worker()
    configuration.follow(configuration.rate_limits, take, "ratelimit")
end

function _M.admit(service)
    local limit = limits[service]
    if not limit then
        return
    end
    local now = ngx.now()
    local key = "tat " .. service
    local tat, err = buckets:incr(key, limit.interval, now)
    if not tat then
        ngx.log(ngx.ERR, "ratelimit: letting the request through, the bucket cannot be kept: ", err)
        return
    end
    if tat - limit.interval < now then
        -- The bucket had drained: the next arrival is due one interval from now. Two workers
        -- doing this at once lose one increment, letting one request more through.
        buckets:set(key, now + limit.interval)
        return
    end
    local ahead = tat - now - limit.tolerance
    if ahead <= 0 then
        return
    end
    buckets:incr(key, -limit.interval)
    buckets:incr("refused " .. service, 1, 0)
    ngx.header["Retry-After"] = math.max(1, math.ceil(ahead))
    return ngx.exit(ngx.HTTP_SERVICE_UNAVAILABLE)
end

-- The service's limit as pushed: rate (requests per second) and burst (requests); nil if none.
function _M.limit(service)
    local _, text = configuration.rate_limits()
    local limit = parsed(text)[service]
    if limit then
        return limit.rate, limit.burst
    end
end

-- Requests refused for the service since nginx started.
function _M.refused(service)
    return buckets:get("refused " .. service) or 0
end

return _M
