-- Picks the task for each try of a request (balancer_by_lua) among the tasks of the
-- request's service (set by route() in the access phase) that the agent pushed
-- (configuration.lua), by the route's policy (balancing.lua), skipping a task that failed
-- within FAIL_TIMEOUT.
--
-- A try that fails (no connection, a timeout, a 502 or 503; see proxy_next_upstream)
-- takes its task out for FAIL_TIMEOUT seconds in this worker and hands the request to
-- the next task, up to MAX_TRIES tries in all, as nginx's own max_fails=1 would.

local ngx_balancer = require("ngx.balancer")
local configuration = require("configuration")
local balancing = require("balancing")
local sticky = require("sticky")

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
    for _, pool in pairs(pools) do
        for _, peer in ipairs(pool.peers) do
            if not known[peer.address] then
                balancing.forget(peer.address)
            end
        end
    end
    pools = fresh
end

function _M.init_worker()
    configuration.follow(configuration.current, take, "balancer")
end

-- The next task of the pool in turn that has not failed lately; any task when all have.
local function in_turn(pool, now)
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

-- The task the route's policy picks among those that have not failed lately; any task
-- when all have.
local function pick(pool, policy, now)
    if policy == "round_robin" then
        return in_turn(pool, now)
    end
    return balancing.lowest(pool, policy, function(peer)
        return (failed_until[peer.address] or 0) <= now
    end, now) or in_turn(pool, now)
end

-- The request's task: its sticky one on a first try, if it has one that is usable; else
-- the policy's pick.
local function chosen(pool, policy, now, retry)
    local mode = ngx.ctx.entry_sticky
    if mode and mode ~= "none" and not retry then
        local peer = sticky.pinned(pool, mode, ngx.ctx.entry_service, function(candidate)
            return (failed_until[candidate.address] or 0) <= now
        end)
        if peer then
            return peer
        end
    end
    return pick(pool, policy, now)
end

-- The last try's entry in a variable that has one a try ("a, b"): its last match of ``pattern``.
local function last_of(value, pattern)
    local last
    for item in string.gmatch(value or "", pattern) do
        last = item
    end
    return last
end

-- The task of the try that just failed: the last address in $upstream_addr.
local function last_tried()
    return last_of(ngx.var.upstream_addr, "[%d%.]+:%d+")
end

-- In the access phase: the request goes to ``service``'s tasks, chosen by ``policy`` unless
-- it is ``stickiness``'s (sticky.lua) to one at ``path``; with none at all, a 503 at once
-- rather than a try that cannot be.
function _M.route(service, policy, stickiness, path)
    ngx.ctx.entry_service = service
    ngx.ctx.entry_policy = policy
    ngx.ctx.entry_sticky = stickiness
    ngx.ctx.entry_path = path
    local pool = pools[service]
    if not pool or #pool.peers == 0 then
        return ngx.exit(ngx.HTTP_SERVICE_UNAVAILABLE)
    end
end

function _M.balance()
    local now = ngx.now()
    local pool = pools[ngx.ctx.entry_service]
    local retry = ngx_balancer.get_last_failure() ~= nil
    if retry then
        local failed = last_tried()
        if failed then
            failed_until[failed] = now + FAIL_TIMEOUT
            configuration.rest(failed, FAIL_TIMEOUT)
        end
    elseif pool and #pool.peers > 1 then
        ngx_balancer.set_more_tries(math.min(#pool.peers, MAX_TRIES) - 1)
    end
    local policy = ngx.ctx.entry_policy or "round_robin"
    local peer = pool and chosen(pool, policy, now, retry)
    if not peer then
        -- Only when the list emptied since the access phase checked it (see route).
        return ngx.exit(ngx.ERROR)
    end
    local ok, err = ngx_balancer.set_current_peer(peer.host, peer.port)
    if not ok then
        ngx.log(ngx.ERR, "balancer: cannot use ", peer.address, ": ", err)
        return ngx.exit(ngx.HTTP_INTERNAL_SERVER_ERROR)
    end
    ngx.ctx.entry_served = peer.address
    if balancing.counts(policy) then
        -- The try before this one, if any, ended without a response worth learning from.
        if ngx.ctx.entry_trying then
            balancing.ended(ngx.ctx.entry_trying, nil, now)
        end
        balancing.started(peer.address)
        ngx.ctx.entry_trying = peer.address
    end
end

-- The last response time in $upstream_response_time ("0.012, 0.004": one a try), in seconds.
local function last_response_time()
    return tonumber(last_of(ngx.var.upstream_response_time, "[%d%.]+"))
end

-- In the header filter: a route with sticky cookies names the task that answered.
function _M.header_filter()
    local address = ngx.ctx.entry_served
    if address and ngx.ctx.entry_sticky == "cookie" then
        sticky.set_cookie(ngx.ctx.entry_service, ngx.ctx.entry_path, address)
    end
end

-- In the log phase: the request's last try ended.
function _M.log()
    local address = ngx.ctx.entry_trying
    if address then
        ngx.ctx.entry_trying = nil
        balancing.ended(address, last_response_time(), ngx.now())
    end
end

return _M
