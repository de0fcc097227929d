-- Counts every proxied request, in the log phase (after the response).
--
-- Per service: the requests by status code, a histogram of the request durations
-- ($request_time: first byte read to last byte sent), and for every upstream try (a
-- retried request tried several tasks) its task, its status and its response time.
--
-- A request adds to this worker's own tables; a timer adds them to shared memory every
-- FLUSH_INTERVAL seconds, so that requests do not queue for the shared zone's lock.
-- Shared memory outlives a reload (SIGHUP), and an exiting worker adds its last counts
-- at once, so the counters start from zero only when nginx starts.
--
-- Requests in flight: a request starts in the access phase (start) and ends in the log
-- phase. Each worker keeps, per service, how many of its requests are in flight and the
-- time integral of that number (request-seconds); it adds the integral to a shared
-- counter at each flush, and its change of the count to a shared gauge. A counter's
-- increase over a window divided by the window's length is the mean number of requests
-- in flight over it (concurrency), including requests that have not ended yet.
--
-- What a request needs comes in one nginx variable, $entry_request (a map in nginx.conf):
-- "<status> <request time> <upstream addresses>|<upstream statuses>|<upstream times>".
-- Reading a variable costs more than all the rest of the counting (the call into nginx
-- runs in LuaJIT's interpreter), so one is read instead of six.

local _M = {}

local FLUSH_INTERVAL = 1

local counters = ngx.shared.entrypoint_requests
local find, gmatch, gsub, match = string.find, string.gmatch, string.gsub, string.match
local edges = {}
local services = {}
local pending = {}
local flushing = false
-- Per service: this worker's requests in flight, their request-seconds not yet flushed,
-- when those were last brought up to date, and the count the shared gauge has from it.
local busy = {}

-- The histograms' upper bucket edges in seconds, ascending (a last, infinite bucket
-- follows), and the services counted, which are reported from the start with zero counts.
function _M.init(bucket_edges, service_names)
    edges = bucket_edges
    services = service_names
end

function _M.edges()
    return edges
end

function _M.services()
    return services
end

-- The bucket a duration falls in: the first whose edge is at least the duration.
local function bucket(seconds)
    local low, high = 1, #edges + 1
    while low < high do
        local middle = math.floor((low + high) / 2)
        if seconds <= edges[middle] then
            high = middle
        else
            low = middle + 1
        end
    end
    return low
end

local function add(key, by)
    local _, err, forcible = counters:incr(key, by, 0)
    if err or forcible then
        -- The zone is full (err) or made room by dropping older keys (forcible): counted so
        -- that the metrics say so instead of silently losing requests.
        counters:incr("lost", 1, 0)
    end
end

local function add_all(prefix, amounts)
    for key, by in pairs(amounts) do
        add(prefix .. key, by)
    end
end

-- This worker's in-flight record of ``service``, its request-seconds brought up to now.
local function settled(service)
    local now = ngx.now()
    local b = busy[service]
    if not b then
        b = { flight = 0, seconds = 0, since = now, shared = 0 }
        busy[service] = b
    else
        b.seconds = b.seconds + b.flight * (now - b.since)
        b.since = now
    end
    return b
end

local function flush_busy()
    for service in pairs(busy) do
        local b = settled(service)
        if b.seconds > 0 then
            add("b\t" .. service, b.seconds)
            b.seconds = 0
        end
        if b.flight ~= b.shared then
            add("i\t" .. service, b.flight - b.shared)
            b.shared = b.flight
        end
    end
end

local function flush(premature)
    if premature then
        -- The worker is exiting (reload or stop): from now on every request adds its own counts.
        flushing = false
    end
    flush_busy()
    local batch = pending
    pending = {}
    for service, t in pairs(batch) do
        add_all("r\t" .. service .. "\t", t.codes)
        add_all("d\t" .. service .. "\t", t.durations)
        add("s\t" .. service, t.seconds)
        for address, statuses in pairs(t.tries) do
            add_all("t\t" .. service .. "\t" .. address .. "\t", statuses)
        end
        add_all("u\t" .. service .. "\t", t.upstream)
        add("v\t" .. service, t.upstream_seconds)
    end
end

-- Starts this worker's timer; at exit (reload or stop) it fires once more, early (premature).
function _M.init_worker()
    local ok, err = ngx.timer.every(FLUSH_INTERVAL, flush)
    if ok then
        flushing = true
    else
        ngx.log(ngx.ERR, "request counters: no flush timer, counting straight into shared memory: ", err)
    end
end

local function tally(service)
    local t = pending[service]
    if not t then
        t = { codes = {}, durations = {}, seconds = 0, tries = {}, upstream = {}, upstream_seconds = 0 }
        pending[service] = t
    end
    return t
end

local function increment(map, key)
    map[key] = (map[key] or 0) + 1
end

local function try(t, address, status, response_time)
    -- An address with no port is the upstream group's name: no live task was there to try.
    if address and find(address, ":", 1, true) then
        local statuses = t.tries[address]
        if not statuses then
            statuses = {}
            t.tries[address] = statuses
        end
        increment(statuses, status or "-")
        local seconds = tonumber(response_time)
        if seconds then
            increment(t.upstream, bucket(seconds))
            t.upstream_seconds = t.upstream_seconds + seconds
        end
    end
end

-- The values of a multi-valued upstream variable: "a, b : c" (tries, then internal
-- redirects; an address has a colon of its own, the separator has spaces around it).
local function split(value)
    local parts = {}
    if value then
        for part in gmatch(gsub(value, " : ", ", "), "[^,]+") do
            parts[#parts + 1] = match(part, "^%s*(.-)%s*$")
        end
    end
    return parts
end

-- The requests counted for ``service`` so far (the last second's may still be in the workers).
function _M.requests(service)
    local total = 0
    local prefix = "r\t" .. service .. "\t"
    for _, key in ipairs(counters:get_keys(0)) do
        if string.sub(key, 1, #prefix) == prefix then
            total = total + (counters:get(key) or 0)
        end
    end
    return total
end

-- A request for ``service`` has started (access phase): one more in flight.
function _M.start(service)
    local b = settled(service)
    b.flight = b.flight + 1
    ngx.ctx.entry_in_flight = true
end

-- Counts the request just answered under ``service``'s name.
function _M.log(service)
    if ngx.ctx.entry_in_flight then
        local b = settled(service)
        b.flight = b.flight - 1
    end
    local status, request_time, addresses, statuses, times =
        match(ngx.var.entry_request, "^(%d+) (%S+) ([^|]*)|([^|]*)|(.*)$")
    if not status then
        return
    end
    local t = tally(service)
    local seconds = tonumber(request_time) or 0
    increment(t.codes, status)
    increment(t.durations, bucket(seconds))
    t.seconds = t.seconds + seconds

    if addresses == "" then
        -- No upstream was tried (the request was answered by nginx itself).
    elseif not find(addresses, ",", 1, true) and not find(addresses, " : ", 1, true) then
        try(t, addresses, statuses, times)
    else
        statuses, times = split(statuses), split(times)
        for index, address in ipairs(split(addresses)) do
            try(t, address, statuses[index], times[index])
        end
    end
    if not flushing then
        -- This worker's timer will not fire again: no count may wait for it.
        flush()
    end
end

return _M
