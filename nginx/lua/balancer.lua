-- Picks the task for each try of a request (balancer_by_lua): round robin over the tasks
-- the agent pushed (configuration.lua), skipping a task that failed within FAIL_TIMEOUT.
--
-- A try that fails (no connection, a timeout, a 502 or 503; see proxy_next_upstream)
-- takes its task out for FAIL_TIMEOUT seconds in this worker and hands the request to
-- the next task, up to MAX_TRIES tries in all, as nginx's own max_fails=1 would.

local ngx_balancer = require("ngx.balancer")
local configuration = require("configuration")

local _M = {}

local FAIL_TIMEOUT = 5
local MAX_TRIES = 3

local peers = {}
local next_peer = 1
local failed_until = {}

local function take(backends)
    local fresh, known = {}, {}
    for address in string.gmatch(backends, "[^\n]+") do
        local host, port = string.match(address, "^(.+):(%d+)$")
        fresh[#fresh + 1] = { address = address, host = host, port = tonumber(port) }
        known[address] = true
    end
    for address in pairs(failed_until) do
        if not known[address] then
            failed_until[address] = nil
        end
    end
    peers = fresh
end

function _M.init_worker()
    configuration.follow(configuration.current, take, "balancer")
end

-- The next task in turn that has not failed lately; any task when all have.
local function pick(now)
    local count = #peers
    local chosen
    for _ = 1, count do
        if next_peer > count then
            next_peer = 1
        end
        local peer = peers[next_peer]
        next_peer = next_peer + 1
        chosen = chosen or peer
        if (failed_until[peer.address] or 0) <= now then
            return peer
        end
    end
    return chosen
end

-- The task of the try that just failed: the last address in $upstream_addr.
local function last_tried()
    local last
    for address in string.gmatch(ngx.var.upstream_addr or "", "[%d%.]+:%d+") do
        last = address
    end
    return last
end

-- In the access phase: with no task at all, a 503 at once rather than a try that cannot be.
function _M.refuse_without_tasks()
    if #peers == 0 then
        return ngx.exit(ngx.HTTP_SERVICE_UNAVAILABLE)
    end
end

function _M.balance()
    local now = ngx.now()
    if ngx_balancer.get_last_failure() then
        local failed = last_tried()
        if failed then
            failed_until[failed] = now + FAIL_TIMEOUT
            configuration.rest(failed, FAIL_TIMEOUT)
        end
    elseif #peers > 1 then
        ngx_balancer.set_more_tries(math.min(#peers, MAX_TRIES) - 1)
    end
    local peer = pick(now)
    if not peer then
        -- Only when the list emptied since the access phase checked it (see refuse_without_tasks).
        return ngx.exit(ngx.ERROR)
    end
    local ok, err = ngx_balancer.set_current_peer(peer.host, peer.port)
    if not ok then
        ngx.log(ngx.ERR, "balancer: cannot use ", peer.address, ": ", err)
        return ngx.exit(ngx.HTTP_INTERNAL_SERVER_ERROR)
    end
end

return _M
