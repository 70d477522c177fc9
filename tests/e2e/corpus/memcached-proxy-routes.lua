-- Answers meta commands locally: the key and the flags the proxy parsed.
function mcp_config_pools(old)
    return {}
end
function mcp_config_routes(pools)
    mcp.attach(mcp.CMD_MG, function(r)
        return "HD k=" .. r:key() .. " v=" .. tostring(r:has_flag("v")) .. "\r\n"
    end)
end
