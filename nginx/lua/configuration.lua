-- What the upstream agent pushes, without a reload: the tasks requests go to, and each
-- service's rate limit.
--
-- The list lives in shared memory with a version that every change increments; each
-- worker's balancer compares the version a few times a second and takes the new list.
-- The configuration nginx starts with holds the tasks found at its start, so that it
-- serves from its first request; a reload keeps the list last pushed.

local _M = {}

local shared = ngx.shared.entrypoint_configuration
local BACKEND = "^[%w][%w_.-]* %d+%.%d+%.%d+%.%d+:%d+$"
local MOST_BACKENDS = 10000

-- The backends ("<service> <ip>:<port>") nginx starts with, unless a list was pushed before.
function _M.init(backends)
    shared:add("backends", table.concat(backends, "\n"))
    shared:add("version", 1)
    shared:add("rate_limits", "")
    shared:add("rate_limits_version", 1)
end

local SYNC_INTERVAL = 0.2

-- Each worker keeps its own copy of what was pushed: ``take(text)`` is called with what
-- ``read()`` gives (a version and a text) now, and every SYNC_INTERVAL seconds when the
-- version changed.
function _M.follow(read, take, what)
    local seen
    local function sync()
        local version, text = read()
        if version ~= seen then
            take(text or "")
            seen = version
        end
    end
    sync()
    local ok, err = ngx.timer.every(SYNC_INTERVAL, sync)
    if not ok then
        ngx.log(ngx.ERR, what, ": no sync timer, what was pushed last stays: ", err)
    end
end

-- A backend failed a try: it rests ``seconds`` (for /nginx/status; each worker keeps its own).
function _M.rest(address, seconds)
    shared:set("resting " .. address, ngx.now() + seconds, seconds)
end

-- When the backend may be tried again (seconds since the epoch), if it rests now.
function _M.resting_until(address)
    return shared:get("resting " .. address)
end

-- The version of the list and the list itself, newline-separated.
function _M.current()
    return shared:get("version"), shared:get("backends")
end

local function parse(body)
    local backends = {}
    for line in string.gmatch(body, "[^\n]+") do
        if not string.find(line, BACKEND) then
            return nil, "not a service and an ip:port: " .. string.sub(line, 1, 60)
        end
        backends[#backends + 1] = line
    end
    if #backends > MOST_BACKENDS then
        return nil, "more than " .. MOST_BACKENDS .. " backends"
    end
    return backends
end

local SERVICE = "^[%w][%w_.-]*$"
local MOST_RATE = 1e9

-- "<service> <rate> <burst>" lines: a name, requests per second and requests, both finite.
local function parse_rate_limits(body)
    local limits = {}
    for line in string.gmatch(body, "[^\n]+") do
        local service, rate, burst = string.match(line, "^(%S+) (%S+) (%S+)$")
        rate, burst = tonumber(rate), tonumber(burst)
        if not (service and string.find(service, SERVICE) and rate and burst
                and rate > 0 and rate <= MOST_RATE and burst >= 1 and burst <= MOST_RATE) then
            return nil, "not a service, a rate in (0, 1e9] and a burst in [1, 1e9]: " .. string.sub(line, 1, 60)
        end
        limits[#limits + 1] = string.format("%s %.6g %.6g", service, rate, burst)
    end
    return limits
end

-- The version of the rate limits and the limits, "<service> <rate> <burst>" a line.
function _M.rate_limits()
    return shared:get("rate_limits_version"), shared:get("rate_limits")
end

local function refuse(status, ...)
    ngx.status = status
    ngx.say(...)
    return ngx.exit(status)
end

-- GET: the ``key``'s lines. POST: replace them with the body's, if ``parse`` takes it.
local function pushed(key, version_key, parse)
    if ngx.req.get_method() == "GET" then
        local text = shared:get(key) or ""
        ngx.print(text, text ~= "" and "\n" or "")
        return
    end
    if ngx.req.get_method() ~= "POST" then
        return ngx.exit(ngx.HTTP_NOT_ALLOWED)
    end
    ngx.req.read_body()
    local lines, err = parse(ngx.req.get_body_data() or "")
    if not lines then
        return refuse(ngx.HTTP_BAD_REQUEST, err)
    end
    local ok, set_err = shared:set(key, table.concat(lines, "\n"))
    if not ok then
        return refuse(ngx.HTTP_INTERNAL_SERVER_ERROR, "cannot keep the ", key, ": ", set_err)
    end
    shared:incr(version_key, 1, 0)
    ngx.say("ok")
end

-- GET: the backends, one per line. POST: replace them with the body's
-- ("<service> <ip>:<port>" a line, every service's at once).
function _M.backends()
    return pushed("backends", "version", parse)
end

-- GET: the rate limits. POST: replace them with the body's ("<service> <rate> <burst>" a
-- line); a service with no line is not limited.
function _M.set_rate_limits()
    return pushed("rate_limits", "rate_limits_version", parse_rate_limits)
end

return _M
