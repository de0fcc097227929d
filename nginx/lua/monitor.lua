-- Counts every proxied request in shared memory, in the log phase (after the response).
--
-- Per service: the requests by status code, a histogram of the request durations
-- ($request_time: first byte read to last byte sent), and for every upstream try (a
-- retried request tried several tasks) its task, its status and its response time.
-- Shared memory outlives a reload (SIGHUP): the counters start from zero only when nginx
-- starts. Nothing here blocks: an increment is a few microseconds under the zone's lock.

local _M = {}

local counters = ngx.shared.entrypoint_requests
local edges = {}

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

local function count(key, by)
    local _, err, forcible = counters:incr(key, by, 0)
    if err or forcible then
        -- The zone is full (err) or made room by dropping older keys (forcible): counted so
        -- that the metrics say so instead of silently losing requests.
        counters:incr("lost", 1, 0)
    end
end

-- The values of a multi-valued upstream variable: "a, b : c" (tries, then internal
-- redirects; an address has a colon of its own, the separator has spaces around it).
local function split(value)
    local parts = {}
    if value and value ~= "" then
        for part in string.gmatch(string.gsub(value, " : ", ", "), "[^,]+") do
            parts[#parts + 1] = string.match(part, "^%s*(.-)%s*$")
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
    local seconds = tonumber(var.request_time) or 0
    count("r\t" .. service .. "\t" .. var.status, 1)
    count("d\t" .. service .. "\t" .. bucket(seconds), 1)
    count("s\t" .. service, seconds)

    local addresses = split(var.upstream_addr)
    local statuses = split(var.upstream_status)
    local times = split(var.upstream_response_time)
    for index, address in ipairs(addresses) do
        -- An address with no port is the upstream group's name: no live task was there to try.
        if string.find(address, ":", 1, true) then
            count("t\t" .. service .. "\t" .. address .. "\t" .. (statuses[index] or "-"), 1)
            local upstream_seconds = tonumber(times[index])
            if upstream_seconds then
                count("u\t" .. service .. "\t" .. bucket(upstream_seconds), 1)
                count("v\t" .. service, upstream_seconds)
            end
        end
    end
end

return _M
