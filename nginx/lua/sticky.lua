-- Which task a client keeps going to (the label entrypoint.sticky): ``cookie`` or
-- ``client_address``; ``none`` leaves every request to the route's balancing policy.
--
-- cookie: the first answer sets a cookie naming the task by a hash of its address (the
-- address itself stays inside the swarm). A later request with it goes to that task while
-- the task is up and has not failed lately; otherwise the route's policy picks another and
-- the cookie is replaced in the same answer. A task leaving on scale-down is taken out of
-- the list first, so its clients move before it stops.
--
-- client_address: rendezvous hashing of the client's address over the tasks: every worker
-- picks the same task without shared state, and a task that leaves moves only its own
-- clients.

local _M = {}

-- The name of a task in a cookie: eight hex digits of its address's CRC-32.
function _M.task_name(address)
    return string.format("%08x", ngx.crc32_long(address))
end

-- The route's cookie: one a route, so that two services' tasks never mix.
function _M.cookie_name(service)
    return "entrypoint_" .. string.gsub(service, "[^%w_]", "_")
end

-- The task named in the request's cookie for ``service``, if any; read once a request,
-- since both the balancer and the header filter ask.
local function named_in_cookie(service)
    local named = ngx.ctx.entry_cookie_task
    if named == nil then
        local cookies = ngx.var.http_cookie
        named = cookies and string.match("; " .. cookies,
            ";%s*" .. _M.cookie_name(service) .. "=(%x%x%x%x%x%x%x%x)") or false
        ngx.ctx.entry_cookie_task = named
    end
    return named or nil
end

-- The sticky task of the request among ``pool``'s usable ones; nil: the policy picks.
function _M.pinned(pool, mode, service, usable)
    if mode == "cookie" then
        local wanted = named_in_cookie(service)
        if not wanted then
            return nil
        end
        for _, peer in ipairs(pool.peers) do
            if _M.task_name(peer.address) == wanted and usable(peer) then
                return peer
            end
        end
        return nil
    end
    if mode == "client_address" then
        local client = ngx.var.remote_addr or ""
        local best, best_weight
        for _, peer in ipairs(pool.peers) do
            if usable(peer) then
                local weight = ngx.crc32_long(client .. " " .. peer.address)
                if not best_weight or weight > best_weight then
                    best, best_weight = peer, weight
                end
            end
        end
        return best
    end
    return nil
end

-- In the header filter: the answer names the task that served it, if the cookie did not.
function _M.set_cookie(service, path, address)
    if named_in_cookie(service) == _M.task_name(address) then
        return
    end
    local cookie = string.format("%s=%s; Path=%s; HttpOnly; SameSite=Lax",
        _M.cookie_name(service), _M.task_name(address), path)
    local present = ngx.header["Set-Cookie"]
    if type(present) == "table" then
        present[#present + 1] = cookie
        ngx.header["Set-Cookie"] = present
    elseif present then
        ngx.header["Set-Cookie"] = { present, cookie }
    else
        ngx.header["Set-Cookie"] = cookie
    end
end

return _M
