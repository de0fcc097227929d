-- The tasks requests go to, as the upstream agent pushes them: no reload for a task change.
--
-- The list lives in shared memory with a version that every change increments; each
-- worker's balancer compares the version a few times a second and takes the new list.
-- The configuration nginx starts with holds the tasks found at its start, so that it
-- serves from its first request; a reload keeps the list last pushed.

local _M = {}

local shared = ngx.shared.entrypoint_configuration
local ADDRESS = "^%d+%.%d+%.%d+%.%d+:%d+$"
local MOST_BACKENDS = 10000

-- The backends ("ip:port") nginx starts with, unless a list was pushed before a reload.
function _M.init(backends)
    shared:add("backends", table.concat(backends, "\n"))
    shared:add("version", 1)
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
        if not string.find(line, ADDRESS) then
            return nil, "not an ip:port: " .. string.sub(line, 1, 60)
        end
        backends[#backends + 1] = line
    end
    if #backends > MOST_BACKENDS then
        return nil, "more than " .. MOST_BACKENDS .. " backends"
    end
    return backends
end

-- GET: the backends, one per line. POST: replace them with the body's (one "ip:port" a line).
function _M.backends()
    if ngx.req.get_method() == "GET" then
        local _, backends = _M.current()
        ngx.print(backends, backends ~= "" and "\n" or "")
        return
    end
    if ngx.req.get_method() ~= "POST" then
        return ngx.exit(ngx.HTTP_NOT_ALLOWED)
    end
    ngx.req.read_body()
    local backends, err = parse(ngx.req.get_body_data() or "")
    if not backends then
        ngx.status = ngx.HTTP_BAD_REQUEST
        ngx.say(err)
        return ngx.exit(ngx.HTTP_BAD_REQUEST)
    end
    local ok, set_err = shared:set("backends", table.concat(backends, "\n"))
    if not ok then
        ngx.status = ngx.HTTP_INTERNAL_SERVER_ERROR
        ngx.say("cannot keep the backends: ", set_err)
        return ngx.exit(ngx.HTTP_INTERNAL_SERVER_ERROR)
    end
    shared:incr("version", 1, 0)
    ngx.say("ok")
end

return _M
