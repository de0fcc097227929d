-- GET /nginx/status: nginx's connections, and per service its requests and tasks, as JSON.

local balancing = require("balancing")
local configuration = require("configuration")
local monitor = require("monitor")
local ratelimit = require("ratelimit")

local _M = {}

-- Its requests in flight and average response time, as least_conn and ewma see them.
local function load(address, now)
    local flight, average = balancing.state(address, now)
    return string.format('"in_flight": %d, "response_ewma_seconds": %s',
        flight, average and string.format("%.4f", average) or "null")
end

local function server(address, now)
    local until_time = configuration.resting_until(address)
    if until_time and until_time > now then
        return string.format('{"address": "%s", "state": "resting", "resting_seconds": %.1f, %s}',
            address, until_time - now, load(address, now))
    end
    return string.format('{"address": "%s", "state": "up", %s}', address, load(address, now))
end

local function rate_limit(service)
    local rate, burst = ratelimit.limit(service)
    if not rate then
        return "null"
    end
    return string.format('{"requests_per_second": %.6g, "burst": %.6g, "refused": %d}',
        rate, burst, ratelimit.refused(service))
end

function _M.write()
    local now = ngx.now()
    local var = ngx.var
    local servers = {}
    local _, backends = configuration.current()
    for service, address in string.gmatch(backends or "", "(%S+) (%S+)") do
        servers[service] = servers[service] or {}
        table.insert(servers[service], server(address, now))
    end
    local services = {}
    for _, service in ipairs(monitor.services()) do
        services[#services + 1] = string.format(
            '"%s": {"requests": %d, "servers": [%s], "rate_limit": %s}',
            service, monitor.requests(service), table.concat(servers[service] or {}, ", "), rate_limit(service)
        )
    end
    ngx.header["Content-Type"] = "application/json"
    ngx.say(string.format(
        '{"connections": {"active": %d, "reading": %d, "writing": %d, "waiting": %d}, "services": {%s}}',
        tonumber(var.connections_active) or 0,
        tonumber(var.connections_reading) or 0,
        tonumber(var.connections_writing) or 0,
        tonumber(var.connections_waiting) or 0,
        table.concat(services, ", ")
    ))
end

return _M
