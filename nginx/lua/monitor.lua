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

local _M = {}

local FLUSH_INTERVAL = 1

local counters = ngx.shared.entrypoint_requests
local find, gmatch, gsub, match = string.find, string.gmatch, string.gsub, string.match
local edges = {}
local pending = {}
local flushing = false

-- The histograms' upper bucket edges in seconds, ascending; a last, infinite bucket follows.
function _M.init(bucket_edges)
    edges = bucket_edges
end

function _M.edges()
    return edges
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

local function flush()
    local batch = pending
    pending = {}
    for service, t in pairs(batch) do
        add_all("r\t" .. service .. "\t", t.codes)
        add_all("d\t" .. service .. "\t", t.durations)
        add("s\t" .. service, t.seconds)
        add_all("t\t" .. service .. "\t", t.tries)
        add_all("u\t" .. service .. "\t", t.upstream)
        add("v\t" .. service, t.upstream_seconds)
    end
end

-- Starts this worker's timer; at exit (reload or stop) it fires once more, early.
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
        increment(t.tries, address .. "\t" .. (status or "-"))
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

function _M.log()
    local var = ngx.var
    local service = var.entry_service
    if not service or service == "" then
        return
    end
    local t = tally(service)
    local seconds = tonumber(var.request_time) or 0
    increment(t.codes, ngx.status)
    increment(t.durations, bucket(seconds))
    t.seconds = t.seconds + seconds

    local addresses = var.upstream_addr
    if addresses and not find(addresses, ",", 1, true) and not find(addresses, " : ", 1, true) then
        try(t, addresses, var.upstream_status, var.upstream_response_time)
    elseif addresses then
        local statuses, times = split(var.upstream_status), split(var.upstream_response_time)
        for index, address in ipairs(split(addresses)) do
            try(t, address, statuses[index], times[index])
        end
    end
    if not flushing or ngx.worker.exiting() then
        -- This worker's timer will not fire again: no count may wait for it.
        flush()
    end
end

return _M
