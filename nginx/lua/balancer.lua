-- Picks the task for each try of a request (balancer_by_lua): round robin over the tasks
-- of the request's service (set by route() in the access phase) that the agent pushed
-- (configuration.lua), skipping a task that failed within FAIL_TIMEOUT.
--
-- A try that fails (no connection, a timeout, a 502 or 503; see proxy_next_upstream)
-- takes its task out for FAIL_TIMEOUT seconds in this worker and hands the request to
-- the next task, up to MAX_TRIES tries in all, as nginx's own max_fails=1 would.

local ngx_balancer = require("ngx.balancer")
local configuration = require("configuration")

local _M = {}

local FAIL_TIMEOUT = 5
local MAX_TRIES = 3

local pools = {}
local failed_until = {}

-- Per service, its tasks and whose turn is next.
local function take(backends)
    local fresh, known = {}, {}
    for service, address in string.gmatch(backends, "(%S+) (%S+)") do
        local pool = fresh[service]
        if not pool then
            pool = { peers = {}, next_peer = pools[service] and pools[service].next_peer or 1 }
            fresh[service] = pool
        end
        local host, port = string.match(address, "^(.+):(%d+)$")
        pool.peers[#pool.peers + 1] = { address = address, host = host, port = tonumber(port) }
        known[address] = true
    end
    for address in pairs(failed_until) do
        if not known[address] then
            failed_until[address] = nil
        end
    end
    pools = fresh
end

function _M.init_worker()
    configuration.follow(configuration.current, take, "balancer")
end

-- The next task of the pool in turn that has not failed lately; any task when all have.
local function pick(pool, now)
    local peers = pool.peers
    local count = #peers
    local chosen
    for _ = 1, count do
        if pool.next_peer > count then
            pool.next_peer = 1
        end
        local peer = peers[pool.next_peer]
        pool.next_peer = pool.next_peer + 1
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

-- In the access phase: the request goes to ``service``'s tasks; with none at all, a 503 at
-- once rather than a try that cannot be.
function _M.route(service)
    ngx.ctx.entry_service = service
    local pool = pools[service]
    if not pool or #pool.peers == 0 then
        return ngx.exit(ngx.HTTP_SERVICE_UNAVAILABLE)
    end
end

function _M.balance()
    local now = ngx.now()
    local pool = pools[ngx.ctx.entry_service]
    if ngx_balancer.get_last_failure() then
        local failed = last_tried()
        if failed then
            failed_until[failed] = now + FAIL_TIMEOUT
            configuration.rest(failed, FAIL_TIMEOUT)
        end
    elseif pool and #pool.peers > 1 then
        ngx_balancer.set_more_tries(math.min(#pool.peers, MAX_TRIES) - 1)
    end
    local peer = pool and pick(pool, now)
    if not peer then
        -- Only when the list emptied since the access phase checked it (see route).
        return ngx.exit(ngx.ERROR)
    end
    local ok, err = ngx_balancer.set_current_peer(peer.host, peer.port)
    if not ok then
        ngx.log(ngx.ERR, "balancer: cannot use ", peer.address, ": ", err)
        return ngx.exit(ngx.HTTP_INTERNAL_SERVER_ERROR)
    end
end

return _M
