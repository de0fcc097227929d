-- How a route chooses among its tasks: round_robin, least_conn or ewma (the label
-- entrypoint.balance, or BALANCE for the entry point's own route).
--
-- least_conn and ewma read each task's requests in flight and ewma its moving average of
-- response time from shared memory, so that every worker sees the requests of all: with
-- per-worker counts, each worker would see only its share of a slow task's backlog.
--
-- ewma is ingress-nginx's: the average decays towards each new response time with a time
-- constant of DECAY_SECONDS, and towards zero while a task gets no request, so that a task
-- that was slow is tried again after a while. A task's score is its average times its
-- requests in flight plus one; the lowest score wins. A task never measured scores zero
-- and is tried first.

local _M = {}

local shared = ngx.shared.entrypoint_balancing

local DECAY_SECONDS = 10

local function in_flight(address)
    return shared:get("flight " .. address) or 0
end

-- The average response time of ``address`` now, decayed towards ``sample`` (seconds).
local function decayed(address, sample, now)
    local average = shared:get("ewma " .. address)
    if not average then
        return sample
    end
    local elapsed = math.max(0, now - (shared:get("touched " .. address) or now))
    local weight = math.exp(-elapsed / DECAY_SECONDS)
    return average * weight + sample * (1 - weight)
end

local SCORES = {
    least_conn = function(address)
        return in_flight(address)
    end,
    ewma = function(address, now)
        return decayed(address, 0, now) * (in_flight(address) + 1)
    end,
}

-- The usable task (see ``usable``) with the lowest score, starting the scan at the pool's
-- turn so that ties go round; nil when none is usable.
function _M.lowest(pool, policy, usable, now)
    local score = SCORES[policy]
    local peers = pool.peers
    local count = #peers
    local best, best_score
    local start = pool.next_peer
    for offset = 0, count - 1 do
        local peer = peers[(start + offset - 1) % count + 1]
        if usable(peer) then
            local peer_score = score(peer.address, now)
            if not best_score or peer_score < best_score then
                best, best_score = peer, peer_score
            end
        end
    end
    pool.next_peer = start % count + 1
    return best
end

function _M.counts(policy)
    return SCORES[policy] ~= nil
end

-- A try of a request starts on ``address``.
function _M.started(address)
    shared:incr("flight " .. address, 1, 0)
end

-- A try on ``address`` ended, after ``seconds`` (nil: no response time to learn from).
function _M.ended(address, seconds, now)
    local left = shared:incr("flight " .. address, -1, 0)
    if left and left < 0 then
        shared:set("flight " .. address, 0)
    end
    if seconds then
        shared:set("ewma " .. address, decayed(address, seconds, now))
        shared:set("touched " .. address, now)
    end
end

-- A task gone from every route: its counts go with it.
function _M.forget(address)
    shared:delete("flight " .. address)
    shared:delete("ewma " .. address)
    shared:delete("touched " .. address)
end

-- For /nginx/status: the task's requests in flight and average response time (seconds).
function _M.state(address, now)
    return in_flight(address), shared:get("ewma " .. address) and decayed(address, 0, now)
end

return _M
