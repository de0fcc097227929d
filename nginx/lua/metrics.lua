-- Writes the counters that monitor.lua keeps as Prometheus text, computed when asked.

local monitor = require("monitor")
local ratelimit = require("ratelimit")

local _M = {}

local counters = ngx.shared.entrypoint_requests

local function label(value)
    return (string.gsub(value, '[\\"\n]', { ["\\"] = "\\\\", ['"'] = '\\"', ["\n"] = "\\n" }))
end

local function sorted_keys(map)
    local keys = {}
    for key in pairs(map) do
        keys[#keys + 1] = key
    end
    table.sort(keys)
    return keys
end

local function histogram(lines, name, help, buckets, sums)
    local edges = monitor.edges()
    lines[#lines + 1] = "# HELP " .. name .. " " .. help
    lines[#lines + 1] = "# TYPE " .. name .. " histogram"
    for _, service in ipairs(sorted_keys(buckets)) do
        local counts, total, labels = buckets[service], 0, 'service="' .. label(service) .. '"'
        for index = 1, #edges + 1 do
            total = total + (counts[index] or 0)
            local edge = edges[index] and string.format("%.6g", edges[index]) or "+Inf"
            lines[#lines + 1] = string.format('%s_bucket{%s,le="%s"} %d', name, labels, edge, total)
        end
        lines[#lines + 1] = string.format("%s_sum{%s} %.6f", name, labels, sums[service] or 0)
        lines[#lines + 1] = string.format("%s_count{%s} %d", name, labels, total)
    end
end

local function counter(lines, name, help, values, format)
    lines[#lines + 1] = "# HELP " .. name .. " " .. help
    lines[#lines + 1] = "# TYPE " .. name .. " counter"
    local line = "%s{%s} " .. (format or "%d")
    for _, labels in ipairs(sorted_keys(values)) do
        lines[#lines + 1] = string.format(line, name, labels, values[labels])
    end
end

local function gauge(lines, name, help)
    lines[#lines + 1] = "# HELP " .. name .. " " .. help
    lines[#lines + 1] = "# TYPE " .. name .. " gauge"
end

-- Each limited service's limit as pushed, and the requests it refused.
local function rate_limits(lines)
    local limited = {}
    for _, service in ipairs(monitor.services()) do
        local rate, burst = ratelimit.limit(service)
        if rate then
            limited[#limited + 1] = { 'service="' .. label(service) .. '"', rate, burst }
        end
    end
    gauge(lines, "entrypoint_rate_limit_requests_per_second",
        "The service's rate limit: the capacity of one task times the tasks running.")
    for _, entry in ipairs(limited) do
        lines[#lines + 1] = string.format("entrypoint_rate_limit_requests_per_second{%s} %.6g", entry[1], entry[2])
    end
    gauge(lines, "entrypoint_rate_limit_burst_requests", "Requests that may arrive at once above the rate limit.")
    for _, entry in ipairs(limited) do
        lines[#lines + 1] = string.format("entrypoint_rate_limit_burst_requests{%s} %.6g", entry[1], entry[3])
    end
    local refused = {}
    for _, service in ipairs(monitor.services()) do
        refused['service="' .. label(service) .. '"'] = ratelimit.refused(service)
    end
    counter(lines, "entrypoint_rate_limited_requests_total",
        "Requests refused with 503 for being above the service's rate limit.", refused)
end

function _M.write()
    local requests, tries, in_flight_seconds, in_flight = {}, {}, {}, {}
    local durations, duration_sums, upstream, upstream_sums = {}, {}, {}, {}
    local lost = 0
    for _, key in ipairs(counters:get_keys(0)) do
        local value = counters:get(key)
        local f = {}
        for field in string.gmatch(key, "[^\t]+") do
            f[#f + 1] = field
        end
        if value == nil then
            -- expired or dropped between the listing and the read
        elseif f[1] == "r" then
            requests['service="' .. label(f[2]) .. '",code="' .. label(f[3]) .. '"'] = value
        elseif f[1] == "t" then
            local labels = 'service="%s",upstream="%s",status="%s"'
            tries[string.format(labels, label(f[2]), label(f[3]), label(f[4]))] = value
        elseif f[1] == "d" or f[1] == "u" then
            local into = f[1] == "d" and durations or upstream
            into[f[2]] = into[f[2]] or {}
            into[f[2]][tonumber(f[3])] = value
        elseif f[1] == "s" then
            duration_sums[f[2]] = value
        elseif f[1] == "v" then
            upstream_sums[f[2]] = value
        elseif f[1] == "b" then
            in_flight_seconds['service="' .. label(f[2]) .. '"'] = value
        elseif f[1] == "i" then
            in_flight['service="' .. label(f[2]) .. '"'] = value
        elseif f[1] == "lost" then
            lost = value
        end
    end
    for _, service in ipairs(monitor.services()) do
        -- A service is reported before its first request, with empty histograms and none in flight.
        durations[service] = durations[service] or {}
        upstream[service] = upstream[service] or {}
        local labels = 'service="' .. label(service) .. '"'
        in_flight_seconds[labels] = in_flight_seconds[labels] or 0
        in_flight[labels] = in_flight[labels] or 0
    end
    local lines = {}
    counter(lines, "entrypoint_requests_total", "Requests answered, by service and status code.", requests)
    histogram(lines, "entrypoint_request_duration_seconds",
        "Time from the first byte of a request read to the last byte of its response sent.",
        durations, duration_sums)
    histogram(lines, "entrypoint_upstream_response_duration_seconds",
        "Time a task took to answer one try of a request (a retried request has several).",
        upstream, upstream_sums)
    counter(lines, "entrypoint_upstream_tries_total",
        "Tries of requests at a task, by the task's address and its status (502: no answer).", tries)
    counter(lines, "entrypoint_requests_in_flight_seconds_total",
        "Requests in flight, integrated over time: its rate is the mean number of requests in flight.",
        in_flight_seconds, "%.6f")
    gauge(lines, "entrypoint_requests_in_flight", "Requests in flight now (as of each worker's last second).")
    for _, labels in ipairs(sorted_keys(in_flight)) do
        lines[#lines + 1] = string.format("entrypoint_requests_in_flight{%s} %d", labels, in_flight[labels])
    end
    rate_limits(lines)
    lines[#lines + 1] = "# HELP entrypoint_lost_counts_total Counts not kept because the shared memory was full."
    lines[#lines + 1] = "# TYPE entrypoint_lost_counts_total counter"
    lines[#lines + 1] = "entrypoint_lost_counts_total " .. string.format("%d", lost)
    ngx.header["Content-Type"] = "text/plain; version=0.0.4; charset=utf-8"
    ngx.print(table.concat(lines, "\n"), "\n")
end

return _M
