-- ngx.dynamic: the dynamic_upstream operations for Lua (embedded in the
-- nginx module; `require "ngx.dynamic"` needs no lua_package_path).
-- Every function returns its result, or nil and an error message.
local ffi = require "ffi"
local C = ffi.C
-- The request (or timer's fake request) the caller runs for: the change
-- log goes where its ngx.log lines go.
local get_request = require("resty.core.base").get_request

-- pcall: a second Lua VM in the same worker, or a re-require, must not
-- fail on declarations that already exist.
pcall(ffi.cdef, [[
typedef struct {
    unsigned char name[128];
    size_t name_len;
    int64_t weight, max_fails, fail_timeout, max_conns, conns, fails,
            current_weight, effective_weight, accessed, checked, rises, falls, last_check;
    unsigned char last_error[64];
    size_t last_error_len;
    int32_t backup, down, health;
} ndu_peer_t;
size_t ndu_peer_layout(size_t *out, size_t cap);
int ndu_list_zones(unsigned char *buf, size_t cap, size_t *len,
                   unsigned char *err, size_t err_cap, size_t *err_len);
int ndu_describe_zone(const char *zone, size_t zone_len, ndu_peer_t *peers,
                      size_t cap, size_t *count, unsigned char *err, size_t err_cap, size_t *err_len);
int ndu_change_peer(void *r, int op, const char *zone, size_t zone_len, const char *server, size_t server_len,
                    double weight, double max_fails, double fail_timeout, double max_conns,
                    int down, int backup, unsigned char *err, size_t err_cap, size_t *err_len);
]])

-- ndu_peer_t above must be the module's LuaPeer: its size and alignment,
-- then the offsets of these fields, in this order (see ndu_peer_layout).
local PEER_FIELDS = { "name", "name_len", "weight", "max_fails", "fail_timeout", "max_conns", "conns", "fails",
                      "current_weight", "effective_weight", "accessed", "checked", "rises", "falls", "last_check",
                      "last_error", "last_error_len", "backup", "down", "health" }
do
    local n = #PEER_FIELDS + 2
    local layout = ffi.new("size_t[?]", n)
    local ok = tonumber(C.ndu_peer_layout(layout, n)) == n
        and tonumber(layout[0]) == ffi.sizeof("ndu_peer_t") and tonumber(layout[1]) == ffi.alignof("ndu_peer_t")
    for i, field in ipairs(PEER_FIELDS) do
        ok = ok and tonumber(layout[i + 1]) == ffi.offsetof("ndu_peer_t", field)
    end
    if not ok then
        error("ngx.dynamic: ndu_peer_t does not match the module's LuaPeer (src/nginx/lua_c.rs)")
    end
end

-- ndu_peer_t's health: its upstream's checks' verdict (0: no checks).
local HEALTH = { "unchecked", "up", "down" }

-- The message buffer; its size goes with every call.
local ERR_CAP = 512
-- ndu_change_peer's operations.
local OP_ADD, OP_UPDATE, OP_REMOVE = 0, 1, 2
local err_buf = ffi.new("unsigned char[?]", ERR_CAP)
local err_len = ffi.new("size_t[1]")
local size = ffi.new("size_t[1]")

local _M = { _VERSION = "0.1" }

local function failed()
    return nil, ffi.string(err_buf, err_len[0])
end

local function check_string(value, what)
    if type(value) ~= "string" then
        return nil, what .. " must be a string"
    end
    return true
end

local function check_zone_server(zone, server)
    local ok, err = check_string(zone, "zone")
    if ok then
        ok, err = check_string(server, "server")
    end
    return ok, err
end

-- A number option: nil means "not given" (-1 for the C side).
local function number(value, what)
    if value == nil then
        return -1
    end
    if type(value) ~= "number" then
        return nil, what .. " must be a number"
    end
    if value < 0 then
        -- Negative numbers are invalid, not "not given": let the module
        -- refuse them with its own message.
        return 1e13
    end
    return value
end

-- A flag: nil (not given) or a boolean; 0, "false" and the like would be
-- true to Lua and mark a peer down (hunt 31).
local function flag(value, what)
    if value ~= nil and type(value) ~= "boolean" then
        return nil, what .. " must be a boolean"
    end
    return true
end

local NUMBERS = { "weight", "max_fails", "fail_timeout", "max_conns" }
local FLAGS = { "down", "backup" }
local KNOWN = {}
for _, list in ipairs({ NUMBERS, FLAGS }) do
    for _, key in ipairs(list) do
        KNOWN[key] = true
    end
end

-- The options of a change, checked as the query-string API checks its
-- arguments: an unknown key, `backup` on anything but an add, a flag that
-- is not a boolean are refused with its messages (they were ignored, or
-- taken for true: hunt 31).
local function options(opts, adding)
    for key in pairs(opts) do
        if not KNOWN[key] then
            -- Strings and numbers as they are, another key by its type (its
            -- __tostring may return anything, or raise: review 29).
            local shown = type(key) == "string" and key or type(key) == "number" and tostring(key)
                or "(" .. type(key) .. ")"
            shown = shown:gsub("%c", "?")
            if #shown > 64 then
                shown = shown:sub(1, 64) .. "..."
            end
            return nil, "unknown parameter " .. shown
        end
    end
    if opts.backup ~= nil and not adding then
        return nil, "backup is only accepted with add (a peer cannot move between lists)"
    end
    for _, key in ipairs(FLAGS) do
        local ok, err = flag(opts[key], key)
        if not ok then
            return nil, err
        end
    end
    local values = {}
    for _, key in ipairs(NUMBERS) do
        local v, err = number(opts[key], key)
        if not v then
            return nil, err
        end
        values[key] = v
    end
    return values
end

function _M.list_zones()
    local cap = 4096
    while true do
        local buf = ffi.new("unsigned char[?]", cap)
        if C.ndu_list_zones(buf, cap, size, err_buf, ERR_CAP, err_len) ~= 0 then
            return failed()
        end
        local len = tonumber(size[0])
        if len <= cap then
            local names = {}
            for name in ffi.string(buf, len):gmatch("[^\n]+") do
                names[#names + 1] = name
            end
            return names
        end
        cap = len
    end
end

-- Each zone's peer count at its last describe_zone: the next call makes
-- room for that many at once (a first try with room for 64 listed a big
-- zone twice: hunt 31). A zone a call does not find is dropped.
local last_count = {}

function _M.describe_zone(zone)
    local ok, err = check_string(zone, "zone")
    if not ok then
        return nil, err
    end
    local cap = math.max(64, (last_count[zone] or 0) + 16)
    while true do
        local peers = ffi.new("ndu_peer_t[?]", cap)
        if C.ndu_describe_zone(zone, #zone, peers, cap, size, err_buf, ERR_CAP, err_len) ~= 0 then
            last_count[zone] = nil
            return failed()
        end
        local count = tonumber(size[0])
        last_count[zone] = count
        if count <= cap then
            local out = {}
            for i = 0, count - 1 do
                local p = peers[i]
                local peer = {
                    name = ffi.string(p.name, math.min(tonumber(p.name_len), 128)),
                    weight = tonumber(p.weight),
                    max_fails = tonumber(p.max_fails),
                    fail_timeout = tonumber(p.fail_timeout),
                    max_conns = tonumber(p.max_conns),
                    conns = tonumber(p.conns),
                    fails = tonumber(p.fails),
                    current_weight = tonumber(p.current_weight),
                    effective_weight = tonumber(p.effective_weight),
                    accessed = tonumber(p.accessed),
                    checked = tonumber(p.checked),
                    backup = p.backup ~= 0,
                }
                if p.down ~= 0 then
                    peer.down = true
                end
                if p.health ~= 0 then
                    peer.health = HEALTH[p.health]
                    peer.rises = tonumber(p.rises)
                    peer.falls = tonumber(p.falls)
                    peer.last_check = tonumber(p.last_check)
                    peer.last_error = ffi.string(p.last_error, math.min(tonumber(p.last_error_len), 64))
                end
                out[#out + 1] = peer
            end
            return out
        end
        cap = count + 16
    end
end

-- add_peer(zone, server, weight, max_fails, fail_timeout, down)
-- add_peer(zone, server, { weight =, max_fails =, fail_timeout =, max_conns =, down =, backup = })
function _M.add_peer(zone, server, weight, max_fails, fail_timeout, down)
    local ok, err = check_zone_server(zone, server)
    if not ok then
        return nil, err
    end
    local opts
    if type(weight) == "table" then
        opts = weight
    else
        opts = { weight = weight, max_fails = max_fails, fail_timeout = fail_timeout, down = down }
    end
    local v, verr = options(opts, true)
    if not v then
        return nil, verr
    end
    if C.ndu_change_peer(get_request(), OP_ADD, zone, #zone, server, #server, v.weight, v.max_fails,
                         v.fail_timeout, v.max_conns, opts.down and 1 or 0, opts.backup and 1 or 0,
                         err_buf, ERR_CAP, err_len) ~= 0 then
        return failed()
    end
    return true
end

function _M.remove_peer(zone, server)
    local ok, err = check_zone_server(zone, server)
    if not ok then
        return nil, err
    end
    if C.ndu_change_peer(get_request(), OP_REMOVE, zone, #zone, server, #server, -1, -1, -1, -1, 0, 0,
                         err_buf, ERR_CAP, err_len) ~= 0 then
        return failed()
    end
    return true
end

-- update_peer(zone, server, { weight =, max_fails =, fail_timeout =, max_conns =, down = })
function _M.update_peer(zone, server, opts)
    local ok, err = check_zone_server(zone, server)
    if not ok then
        return nil, err
    end
    if type(opts) ~= "table" then
        return nil, "options must be a table"
    end
    local v, verr = options(opts, false)
    if not v then
        return nil, verr
    end
    local down = -1
    if opts.down ~= nil then
        down = opts.down and 1 or 0
    end
    if C.ndu_change_peer(get_request(), OP_UPDATE, zone, #zone, server, #server, v.weight, v.max_fails,
                         v.fail_timeout, v.max_conns, down, 0, err_buf, ERR_CAP, err_len) ~= 0 then
        return failed()
    end
    return true
end

-- set_peer_down(zone, server, down): down defaults to true.
function _M.set_peer_down(zone, server, down)
    if down == nil then
        down = true
    end
    return _M.update_peer(zone, server, { down = down })
end

return _M
